from .metrics import Accuracy, knn_predict, topk_accuracy

__all__ = ['Accuracy', 'knn_predict', 'topk_accuracy']

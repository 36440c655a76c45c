"""k-NN evaluation of frozen features: a test loop for ``tools/test.py`` and a hook for pretraining runs.

The hook gives a cheap representation-quality curve during pretraining (no linear probe): every ``interval`` epochs
it embeds a labelled bank and a query set with the current encoder and reports weighted k-NN accuracy.
"""

import torch
from mmengine.dist import all_gather_object, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import TestLoop

from mimlab.engine.parallel.fsdp import gathered_root
from mimlab.evaluation import knn_predict, topk_accuracy
from mimlab.registry import HOOKS, LOOPS


def pool_features(feats, feature: str = 'mean') -> torch.Tensor:
    """Turn a backbone output into one vector per image.

    Args:
        feats: tuple from ``extract_feat``; its last entry is (B, D), (B, N, D) tokens with a leading cls token, or a
            (B, D, H, W) feature map.
        feature: 'mean' (average of patch tokens / spatial positions) or 'cls' (the cls token of a token sequence).
    """
    x = feats[-1] if isinstance(feats, (tuple, list)) else feats
    if x.dim() == 2:
        return x
    if x.dim() == 4:
        return x.mean(dim=(2, 3))  # (B, D, H, W) -> (B, D)
    return x[:, 0] if feature == 'cls' else x[:, 1:].mean(dim=1)  # (B, 1 + L, D) -> (B, D)


@torch.no_grad()
def extract_dataset_features(model, dataloader, feature: str = 'mean') -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of every sample the dataloader yields, gathered from all ranks. Returns (N, D), (N,)."""
    was_training = model.training
    model.eval()
    feats, labels = [], []
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        feats.append(pool_features(model.extract_feat(data['inputs']), feature).float().cpu())
        labels.append(torch.cat([s.gt_label for s in data['data_samples']]).cpu())
    model.train(was_training)
    feats, labels = torch.cat(feats), torch.cat(labels)
    if get_world_size() > 1:
        gathered = all_gather_object((feats, labels))
        feats = torch.cat([f for f, _ in gathered])
        labels = torch.cat([lab for _, lab in gathered])
    return feats, labels


def knn_accuracy(model, bank_loader, query_loader, k=20, temperature=0.07, feature='mean') -> dict:
    bank, bank_labels = extract_dataset_features(model, bank_loader, feature)
    query, query_labels = extract_dataset_features(model, query_loader, feature)
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    scores = knn_predict(query, bank, bank_labels, num_classes, k=k, temperature=temperature)
    acc = topk_accuracy(scores, query_labels, (1, 5))
    return {'knn/top1': acc[1], 'knn/top5': acc[5]}


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


@LOOPS.register_module()
class KNNTestLoop(TestLoop):
    """``test_cfg=dict(type='KNNTestLoop', bank_dataloader=dict(...), k=20, temperature=0.07)``: the test
    dataloader is the query set; reports ``knn/top1`` and ``knn/top5``. No trained head is needed."""

    def __init__(
        self, runner, dataloader, evaluator=None, bank_dataloader=None, k=20, temperature=0.07, feature='mean'
    ):
        super().__init__(runner, dataloader, evaluator if evaluator is not None else [], fp16=False)
        if bank_dataloader is None:
            raise ValueError('KNNTestLoop needs bank_dataloader (the labelled training subset)')
        self.bank_dataloader = runner.build_dataloader(bank_dataloader, seed=runner.seed)
        self.k, self.temperature, self.feature = k, temperature, feature

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        model = self.runner.model
        with gathered_root(model):  # a sharded model: every rank gathers the weights outside its blocks
            metrics = knn_accuracy(
                _unwrap(model), self.bank_dataloader, self.dataloader, self.k, self.temperature, self.feature
            )
        self.runner.logger.info('kNN: ' + ', '.join(f'{k}={v:.2f}' for k, v in metrics.items()))
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics


@HOOKS.register_module()
class KNNHook(Hook):
    """Weighted k-NN accuracy of the encoder every ``interval`` epochs of a (pretraining) run.

    Args:
        bank_dataloader: Dataloader config of the labelled bank (a training subset).
        query_dataloader: Dataloader config of the held-out queries.
        interval: Epochs between evaluations (also after the last epoch).
        k, temperature: k-NN parameters (20 and 0.07, as DINO / NPID).
        feature: 'mean' of patch tokens or 'cls'.
    """

    priority = 'LOW'

    def __init__(self, bank_dataloader, query_dataloader, interval=1, k=20, temperature=0.07, feature='mean'):
        self.bank_cfg, self.query_cfg = bank_dataloader, query_dataloader
        self.interval, self.k, self.temperature, self.feature = interval, k, temperature, feature
        self._loaders = None

    def after_train_epoch(self, runner) -> None:
        if not (self.every_n_epochs(runner, self.interval) or self.is_last_train_epoch(runner)):
            return
        if self._loaders is None:
            self._loaders = (
                runner.build_dataloader(self.bank_cfg, seed=runner.seed),
                runner.build_dataloader(self.query_cfg, seed=runner.seed),
            )
        with gathered_root(runner.model):  # a sharded model: every rank gathers the weights outside its blocks
            metrics = knn_accuracy(_unwrap(runner.model), *self._loaders, self.k, self.temperature, self.feature)
        for key, value in metrics.items():
            runner.message_hub.update_scalar(f'train/{key}', value)
        runner.logger.info(f'Epoch {runner.epoch}: ' + ', '.join(f'{k}={v:.2f}' for k, v in metrics.items()))

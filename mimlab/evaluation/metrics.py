"""Top-k accuracy and k-nearest-neighbour classification of frozen features.

Legend: ``N`` query samples, ``M`` memory-bank samples, ``D`` feature width, ``K`` classes, ``k`` neighbours.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric

from mimlab.registry import METRICS


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, topk: Sequence[int] = (1,)) -> dict[int, float]:
    """Percentage of rows whose label is among the ``k`` highest scores. scores (N, K), labels (N,)."""
    maxk = min(max(topk), scores.shape[1])
    pred = scores.topk(maxk, dim=1).indices  # (N, maxk)
    hit = pred == labels.view(-1, 1)
    return {k: hit[:, : min(k, maxk)].any(dim=1).float().mean().item() * 100 for k in topk}


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy (%) of ``pred_score`` against ``gt_label``; reports ``accuracy/top1``, ``accuracy/top5``."""

    default_prefix = 'accuracy'

    def __init__(self, topk: int | Sequence[int] = (1,), collect_device: str = 'cpu', prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk,) if isinstance(topk, int) else tuple(topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'gt_label' not in sample:
                raise ValueError('Accuracy needs gt_label in the data samples: evaluate on a labelled split')
            self.results.append(dict(score=sample['pred_score'].cpu(), label=sample['gt_label'].cpu()))

    def compute_metrics(self, results: list) -> dict:
        scores = torch.stack([r['score'] for r in results])
        labels = torch.cat([r['label'] for r in results])
        return {f'top{k}': v for k, v in topk_accuracy(scores, labels, self.topk).items()}


def knn_predict(
    query: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """Weighted k-NN class scores (Wu et al. 2018, as DINO's evaluation).

    Cosine similarity to the bank, the ``k`` most similar vote for their class with weight ``exp(sim / T)``.

    Args:
        query: (N, D) features. bank: (M, D) features. bank_labels: (M,).

    Returns:
        (N, K) vote scores.
    """
    query = F.normalize(query.float(), dim=1)
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, bank.shape[0])
    out = []
    for start in range(0, query.shape[0], chunk):
        sim = query[start : start + chunk] @ bank.T  # (n, M)
        top_sim, top_idx = sim.topk(k, dim=1)  # (n, k)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, device=sim.device)
        votes.scatter_add_(1, bank_labels[top_idx], weights)  # (n, K)
        out.append(votes)
    return torch.cat(out)

"""Image classifier for linear probing and fine-tuning pretrained encoders (mmpretrain ``ImageClassifier`` keys).

Legend: ``B`` batch, ``D`` feature width, ``K`` classes.

Batch-level training augments run on the device after normalisation, in the order of the official MAE fine-tuning
recipe: RandomErasing (timm, per sample, 'pixel' mode = normal noise in normalised space) and then Mixup/CutMix
(timm, which also applies label smoothing to the mixed soft targets).
"""

import torch
from mmengine.model import BaseModel
from timm.data import Mixup
from timm.data.random_erasing import RandomErasing

from mimlab.registry import MODELS
from mimlab.structures import DataSample

from .base import _build, build_data_preprocessor


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """backbone -> optional neck -> head.

    Args:
        backbone: Encoder config; load pretraining weights with
            ``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')``.
        neck: e.g. :class:`ClsBatchNormNeck` for MAE's linear probe.
        head: :class:`LinearClsHead` or :class:`VisionTransformerClsHead`.
        train_cfg: ``dict(augments=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, switch_prob=0.5),
            random_erasing=dict(probability=0.25, mode='pixel'))``; either may be omitted.
        data_preprocessor: Defaults to :class:`MIMDataPreprocessor` (ImageNet mean/std, BGR->RGB).
        init_cfg: Init config of the whole model.
    """

    def __init__(self, backbone, neck=None, head=None, train_cfg=None, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=build_data_preprocessor(data_preprocessor), init_cfg=init_cfg)
        self.backbone = _build(backbone)
        self.neck = _build(neck)
        if head is None:
            raise ValueError('ImageClassifier needs a head')
        self.head = _build(head)
        train_cfg = dict(train_cfg or {})
        augments = train_cfg.get('augments')
        self.mixup = Mixup(num_classes=self.head.num_classes, **augments) if augments else None
        erasing = train_cfg.get('random_erasing')
        self.random_erasing = RandomErasing(device='cpu', **erasing) if erasing else None

    def extract_feat(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.backbone(inputs)
        return self.neck(feats) if self.neck is not None else feats

    @staticmethod
    def _targets(data_samples: list[DataSample], device) -> torch.Tensor:
        if not data_samples or 'gt_label' not in data_samples[0]:
            raise ValueError('training a classifier needs gt_label in every data sample (a labelled dataset)')
        return torch.cat([s.gt_label for s in data_samples]).to(device)  # (B,)

    def loss(self, inputs: torch.Tensor, data_samples: list[DataSample]) -> dict:
        """Args: inputs normalised (B, 3, H, W). Returns: dict(loss=...)."""
        targets = self._targets(data_samples, inputs.device)
        if self.random_erasing is not None:
            self.random_erasing.device = inputs.device
            inputs = self.random_erasing(inputs)
        if self.mixup is not None:
            if inputs.shape[0] % 2:
                raise ValueError(f'Mixup/CutMix needs an even batch size, got {inputs.shape[0]}; set drop_last=True')
            inputs, targets = self.mixup(inputs, targets)  # targets (B,) -> soft (B, K), smoothing included
        return self.head.loss(self.extract_feat(inputs), targets)

    def predict(self, inputs: torch.Tensor, data_samples: list[DataSample] | None = None) -> list[DataSample]:
        scores = self.head(self.extract_feat(inputs)).float().softmax(dim=-1)  # (B, K)
        labels = scores.argmax(dim=-1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(scores.shape[0])]
        for sample, score, label in zip(data_samples, scores, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        """``mode='tensor'`` returns the head's raw output (logits (B, K)), as mmpretrain's ``ImageClassifier`` does;
        the features before the head are :meth:`extract_feat`."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))  # (B, K)
        raise ValueError(f'unknown mode {mode!r}')

    def get_layer_depth(self, param_name: str) -> tuple[int, int]:
        return self.backbone.get_layer_depth(param_name, prefix='backbone.')

    def no_weight_decay(self) -> set[str]:
        return (
            {f'backbone.{n}' for n in self.backbone.no_weight_decay()}
            if hasattr(self.backbone, 'no_weight_decay')
            else set()
        )

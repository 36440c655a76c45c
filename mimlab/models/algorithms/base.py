"""The base of every pretraining algorithm: backbone, optional neck / head / target generator."""

import torch
from mmengine.model import BaseModel
from torch import nn

from mimlab.registry import MODELS


def _build(cfg, default_args: dict | None = None):
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    return MODELS.build(cfg, default_args=default_args)


def build_data_preprocessor(cfg) -> nn.Module:
    """The model's data preprocessor, :class:`MIMDataPreprocessor` (ImageNet mean/std, BGR->RGB) by default.

    Built from mimlab's registry here rather than by mmengine's ``BaseModel`` (which uses the root registry and would
    need the default scope to be set).
    """
    return _build(cfg if cfg is not None else dict(type='MIMDataPreprocessor'))


def reconstruction_outputs(inputs, target, pred, mask, masked) -> dict:
    """The dict every algorithm's ``reconstruct`` returns (all (B, C, H, W), in the input's normalised space).

    Args:
        inputs: The normalised input images.
        target: The image the model learns to predict (the input, or the target generator's version of it).
        pred: The model's prediction as an image.
        mask: (B, 1, H, W), 1 where the model had to predict (removed, replaced or mixed-in pixels).
        masked: What the encoder was given instead of the input.

    Returns:
        dict with those, plus ``pasted``: the input with its masked pixels replaced by the prediction.
    """
    mask = mask.to(inputs.dtype)
    return dict(target=target, masked=masked, pred=pred, pasted=inputs * (1 - mask) + pred * mask, mask=mask)


class BaseAlgorithm(BaseModel):
    """``forward(inputs, data_samples, mode)`` with ``mode`` 'loss' (a dict of losses) or 'tensor' (features).

    State-dict prefixes ``backbone.``, ``neck.``, ``head.``, ``target_generator.`` follow mmpretrain/mmselfsup so
    their checkpoints load strictly.

    Args:
        backbone: Config or module of the (masked) encoder.
        neck: Decoder config/module, or None.
        head: Loss head config/module, or None.
        target_generator: A module turning the normalised input into the reconstruction target (e.g. PixMIM's
            low-pass filter), or None for the input itself.
        data_preprocessor: Defaults to :class:`MIMDataPreprocessor` with ImageNet mean/std and BGR->RGB.
        init_cfg: mmengine init config of the whole model (e.g. ``Pretrained``).
    """

    def __init__(self, backbone, neck=None, head=None, target_generator=None, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=build_data_preprocessor(data_preprocessor), init_cfg=init_cfg)
        self.backbone = _build(backbone)
        self.neck = _build(neck, self._neck_defaults())
        self.head = _build(head, self._head_defaults())
        self.target_generator = _build(target_generator)

    def _neck_defaults(self) -> dict | None:
        """Values the neck can take from the backbone instead of restating them in configs."""
        return None

    def _head_defaults(self) -> dict | None:
        return None

    @property
    def with_neck(self) -> bool:
        return self.neck is not None

    def extract_feat(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Plain (unmasked) encoder features of normalised inputs (B, 3, H, W)."""
        return self.backbone(inputs)

    def make_target(self, inputs: torch.Tensor) -> torch.Tensor:
        """The image to reconstruct: the input itself, or the target generator's version of it (PixMIM plug-in)."""
        if self.target_generator is None:
            return inputs
        return self.target_generator(inputs, mean=self.data_preprocessor.mean, std=self.data_preprocessor.std)

    def loss(self, inputs: torch.Tensor, data_samples=None) -> dict:
        raise NotImplementedError

    def reconstruct(self, inputs: torch.Tensor, data_samples=None) -> dict:
        """The model's reconstruction of normalised inputs (B, 3, H, W), for :mod:`mimlab.visualization`: a dict
        as :func:`reconstruction_outputs` builds it. Draws masks as in training (seed the global RNG first for a
        repeatable picture); ``data_samples`` carry the masks of algorithms that take them from the pipeline."""
        raise NotImplementedError(f'{type(self).__name__} has no reconstruct()')

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(inputs)
        raise RuntimeError(
            f'{type(self).__name__} is a pretraining algorithm and has no {mode!r} mode: it has no trained '
            'classification head. Evaluate its encoder with a linear-probe or fine-tune config instead.'
        )

    def get_layer_depth(self, param_name: str) -> tuple[int, int]:
        return self.backbone.get_layer_depth(param_name, prefix='backbone.')

    def no_weight_decay(self) -> set[str]:
        """Full names of parameters exempt from weight decay besides 1-D ones (from each submodule)."""
        names = set()
        for prefix, module in self.named_children():
            if hasattr(module, 'no_weight_decay'):
                names |= {f'{prefix}.{n}' for n in module.no_weight_decay()}
        return names

"""Models built from a config for the tools that look at them: speed, FLOPs, schedules, reconstructions."""

import copy

from torch import nn

__all__ = ['build_model_without_pretrained', 'train_image_size']


def build_model_without_pretrained(cfg) -> nn.Module:
    """``cfg.model`` built and initialised as mmengine's Runner builds it (a top-level ``data_preprocessor`` moved
    into the model), minus any ``Pretrained`` init: speed and FLOPs do not depend on the weights. On the CPU."""
    from mimlab.registry import MODELS

    model_cfg = _without_pretrained(copy.deepcopy(cfg.model))
    if cfg.get('data_preprocessor') is not None:  # what mmengine's Runner does with a top-level preprocessor
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _without_pretrained(cfg):
    """A copy of a model config without ``init_cfg=dict(type='Pretrained', ...)`` (speed needs no weights)."""
    if isinstance(cfg, dict):
        out = {}
        for k, v in cfg.items():
            if k == 'init_cfg' and isinstance(v, dict) and v.get('type') == 'Pretrained':
                continue
            out[k] = _without_pretrained(v)
        return out
    if isinstance(cfg, list):
        return [_without_pretrained(v) for v in cfg]
    return cfg


def train_image_size(cfg, model: nn.Module) -> tuple[int, int]:
    """(H, W) of the training images: the train pipeline's crop/resize ``scale`` (or a mask generator's
    ``input_size``), else the ViT's patch grid, else 224."""
    pipeline = ((cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    for t in pipeline:
        size = t.get('scale', t.get('input_size')) if isinstance(t, dict) else None
        if isinstance(size, int):
            return size, size
        if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) for v in size):
            return int(size[1]), int(size[0])  # mmcv's scale is (w, h)
    bb = getattr(model, 'backbone', None)
    if hasattr(bb, 'patch_resolution') and hasattr(bb, 'patch_size'):
        return bb.patch_resolution[0] * bb.patch_size, bb.patch_resolution[1] * bb.patch_size
    return 224, 224

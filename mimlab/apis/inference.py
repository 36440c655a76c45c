"""Classify one image with a model from :func:`~mimlab.apis.get_model`, through its config's test pipeline."""

import os.path as osp
from pathlib import Path

import numpy as np
import torch
from mmengine.dataset import default_collate
from torch import nn


def _test_pipeline(cfg) -> list[dict]:
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline')
    if not pipeline:
        raise ValueError('the model config has no test pipeline (test_dataloader.dataset.pipeline or test_pipeline)')
    return [dict(t) for t in pipeline]


@torch.no_grad()
def inference_model(model: nn.Module, image: 'str | Path | np.ndarray') -> dict:
    """Classify one image the way the config's test loop would: test pipeline, data preprocessor, ``predict``.

    Args:
        model: A classifier built by :func:`~mimlab.apis.get_model` (it carries ``model.cfg``), e.g. a fine-tuned or
            linear-probe entry of the zoo.
        image: An image file, or an (H, W, 3) uint8 array in BGR order (what ``cv2.imread`` / mmcv's
            ``LoadImageFromFile`` give).

    Returns:
        ``dict(pred_label=int, pred_score=float, pred_scores=(K,) float32 array)`` plus ``pred_class`` (str) when
        the config's test dataset names its classes.

    Raises:
        TypeError: for a model without ``cfg`` or without a classification head (a pretraining algorithm).
        FileNotFoundError: naming a missing image file.
        ValueError: for an unreadable image file or an array that is not (H, W, 3) uint8.
    """
    from mimlab.registry import TRANSFORMS

    from .setup_env import register_all_modules

    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise TypeError(f'{type(model).__name__} has no .cfg: build it with mimlab.apis.get_model')
    if not (hasattr(model, 'predict') and hasattr(model, 'head')):
        raise TypeError(
            f'{type(model).__name__} is not a classifier (no predict/head): use a fine-tuned or linear-probe model, '
            'e.g. list_models(task="Image Classification")'
        )
    register_all_modules(init_default_scope=False)
    pipeline = _test_pipeline(cfg)
    loads_files = pipeline[0]['type'] in ('LoadImageFromFile', 'mmcv.LoadImageFromFile')

    if isinstance(image, (str, Path)):
        path = str(image)
        if not osp.isfile(path):
            raise FileNotFoundError(f'image {path} does not exist')
        if loads_files:
            results = dict(img_path=path)
        else:  # pipelines of in-memory datasets start after decoding
            import mmcv

            img = mmcv.imread(path)  # (H, W, 3) uint8 BGR
            if img is None:
                raise ValueError(f'cannot decode image {path}')
            results = dict(img_path=path, img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'expected an (H, W, 3) uint8 BGR image, got shape {image.shape} and dtype {image.dtype}')
        if loads_files:
            pipeline = pipeline[1:]
        results = dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2])
    else:
        raise TypeError(f'image must be a file path or an (H, W, 3) uint8 array, got {type(image).__name__}')

    for t in pipeline:
        results = TRANSFORMS.build(t)(results)
        if results is None:
            raise ValueError(f'the test pipeline dropped the image at {t["type"]}')
    batch = default_collate([results])  # inputs (1, 3, H, W) uint8
    model.eval()
    sample = model.test_step(batch)[0]
    scores = sample.pred_score.float().cpu()  # (K,)
    out = dict(
        pred_label=int(sample.pred_label.item()),
        pred_score=float(scores.max()),
        pred_scores=scores.numpy(),
    )
    classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    if classes:
        out['pred_class'] = classes[out['pred_label']]
    return out

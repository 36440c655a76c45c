"""What a config's data pipeline hands the model, behind ``tools/visualization/browse_dataset.py``.

Sample ``i`` is ``dataset[i]``, the pipeline run as a DataLoader worker runs it, up to and including ``PackInputs``:
``inputs`` is (C, H, W) uint8 in the loader's channel order. It is shown in RGB: its channels are reversed when the
model's data preprocessor converts BGR to RGB (``to_rgb``, the default: ``LoadImageFromFile`` and the built-in
dataset give BGR). A mask from the pipeline's mask generator (SimMIM, A2MIM: ``DataSample.mask``, 1 = masked, at the
patch or mask-site grid) is drawn as a second picture, the image with its masked cells darkened. The ``original``
picture is the image as loaded: the built-in dataset's rendered image, or the file decoded as ``LoadImageFromFile``
decodes it (cv2, BGR), shrunk for display when its longer side exceeds ``max_original``.
"""

import copy

import numpy as np

from mimlab.apis import register_all_modules
from mimlab.visualization import darken_masked, isolated_rng

PHASES = ('train', 'val', 'test')


def phase_dataset(cfg, phase: str = 'train'):
    """The dataset of ``cfg.<phase>_dataloader``, built with its pipeline.

    Raises:
        ValueError: The config has no such dataloader (or it is None, or has no dataset), or the dataset cannot be
            built (e.g. its files are missing); the message names the config key.
    """
    from mmengine.registry import DefaultScope

    from mimlab.registry import DATASETS

    if phase not in PHASES:
        raise ValueError(f'phase must be one of {PHASES}, got {phase!r}')
    key = f'{phase}_dataloader'
    loader = cfg.get(key)
    if not loader or not loader.get('dataset'):
        have = [k for k in (f'{p}_dataloader' for p in PHASES) if (cfg.get(k) or {}).get('dataset')]
        raise ValueError(
            f'the config has no {key}'
            + ('' if loader is None else '.dataset')
            + f' to browse (it has: {", ".join(have) or "no dataloader with a dataset"})'
        )
    register_all_modules(init_default_scope=False)
    try:
        with DefaultScope.overwrite_default_scope('mimlab'):  # the pipeline's transforms are built from mmengine's
            return DATASETS.build(copy.deepcopy(loader['dataset']))
    except Exception as e:  # noqa: BLE001 - re-raised naming the config key
        raise ValueError(f'cannot build {key}.dataset ({loader["dataset"].get("type")}): {e}') from e


def loader_gives_bgr(cfg) -> bool:
    """Whether the loader's images are BGR, read off the model's data preprocessor: True when it converts BGR to
    RGB (``to_rgb``; mimlab's default preprocessor does), False when it takes the images as they are (e.g.
    ``GPUDecodeDataPreprocessor``, whose decoder gives RGB)."""
    from mimlab.models.algorithms.base import build_data_preprocessor

    model = cfg.get('model') or {}
    pre = build_data_preprocessor(copy.deepcopy(model.get('data_preprocessor') or cfg.get('data_preprocessor')))
    return bool(getattr(pre, 'to_rgb', getattr(pre, '_channel_conversion', True)))


def _as_rgb_uint8(chw, bgr: bool) -> np.ndarray:
    """A packed (C, H, W) image (tensor or array) -> (H, W, 3) uint8 RGB."""
    x = np.asarray(chw.detach().cpu() if hasattr(chw, 'detach') else chw)
    if x.ndim != 3:
        raise ValueError(
            f'inputs of shape {tuple(x.shape)} are not a (C, H, W) image: a pipeline that packs encoded bytes '
            '(PackEncodedWithCrop) is decoded by the model on the device; browse a pipeline that decodes on the CPU'
        )
    img = x.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if img.dtype != np.uint8:
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if img.shape[2] == 1:
        img = img.repeat(3, axis=2)
    return np.ascontiguousarray(img[..., ::-1] if bgr else img)


def _mask_grid(mask) -> np.ndarray:
    """A sample's mask as (h, w): (1, h, w) squeezed; a flat (L,) mask of a square grid reshaped."""
    m = np.asarray(mask.detach().cpu() if hasattr(mask, 'detach') else mask)
    if m.ndim == 1:
        side = int(round(len(m) ** 0.5))
        if side * side != len(m):
            raise ValueError(f'a flat mask of {len(m)} cells is not a square grid: cannot place it on the image')
        return m.reshape(side, side)  # (L,) -> (h, w)
    return m.reshape(m.shape[-2:])  # (1, h, w) -> (h, w)


def _loaded_image(dataset, idx: int) -> np.ndarray | None:
    """Sample ``idx`` as loaded (channel order as loaded): the dataset's own ``img``, or its file decoded as
    ``LoadImageFromFile`` does by default; None when neither exists."""
    import mmcv
    from mmengine import fileio

    info = dataset.get_data_info(idx)
    if info.get('img') is not None:
        return info['img']
    if info.get('img_path'):
        return mmcv.imfrombytes(fileio.get(info['img_path']), flag='color')
    return None


def browse_samples(
    cfg,
    phase: str = 'train',
    num: int = 8,
    seed: int | None = 0,
    original: bool = False,
    max_original: int = 512,
) -> list[dict]:
    """Run the first ``num`` samples of a phase's dataset through its pipeline.

    Args:
        cfg: A config with ``<phase>_dataloader.dataset``.
        phase: 'train', 'val' or 'test'.
        num: Samples, from index 0 (fewer when the dataset is shorter).
        seed: Seed of the random transforms (crops, flips, masks), inside :func:`isolated_rng`; None: the current
            random state.
        original: Also return the image as loaded.
        max_original: The loaded image is shrunk (area interpolation) until its longer side is at most this.

    Returns:
        One dict per sample: ``index``; ``title`` ('#i' and the class name when the sample has a label);
        ``image`` (H, W, 3) uint8 RGB, the packed input; ``masked`` the image with its masked cells darkened, or
        None without a mask; ``original`` (h, w, 3) uint8 RGB or None.
    """
    import cv2

    dataset = phase_dataset(cfg, phase)
    bgr = loader_gives_bgr(cfg)
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    out = []
    with isolated_rng(seed):
        for idx in range(min(num, len(dataset))):
            packed = dataset[idx]
            sample = packed.get('data_samples')
            image = _as_rgb_uint8(packed['inputs'], bgr)
            mask = getattr(sample, 'mask', None)
            title = f'#{idx}'
            if getattr(sample, 'gt_label', None) is not None and sample.gt_label.numel() == 1:
                label = int(sample.gt_label)
                title += f' {classes[label]}' if classes is not None and label < len(classes) else f' label {label}'
            item = dict(index=idx, title=title, image=image, original=None)
            item['masked'] = None if mask is None else darken_masked(image, _mask_grid(mask))
            if original:
                loaded = _loaded_image(dataset, idx)
                if loaded is not None:
                    if loaded.ndim == 2:
                        loaded = loaded[..., None].repeat(3, axis=2)
                    f = max_original / max(loaded.shape[:2])
                    if f < 1:
                        size = (max(1, round(loaded.shape[1] * f)), max(1, round(loaded.shape[0] * f)))  # cv2's (w, h)
                        loaded = cv2.resize(loaded, size, interpolation=cv2.INTER_AREA)
                    item['original'] = np.ascontiguousarray(loaded[..., ::-1] if bgr else loaded)
            out.append(item)
    return out

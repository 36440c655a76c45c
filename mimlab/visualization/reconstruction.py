"""Reconstruction grids: what a MIM model was shown and what it predicted, one row per image.

Columns, left to right: ``original`` (the input), ``target`` (only when a target generator changes it, e.g. PixMIM's
low-pass image), ``masked`` (what the encoder got: removed pixels at the mean colour, A2MIM's mean-RGB fill, MixMIM's
mixed image), ``reconstruction`` (the prediction over the whole image) and ``reconstruction + visible`` (the input
with its masked pixels replaced by the prediction). Every algorithm's ``reconstruct`` returns these as normalised
(B, C, H, W) tensors (:func:`~mimlab.models.algorithms.base.reconstruction_outputs`); here they become one uint8 RGB
image.
"""

import contextlib
import io
import os.path as osp
import random

import numpy as np
import torch
from mmengine.model import is_model_wrapper
from PIL import Image, ImageDraw, ImageFont
from torch import nn

COLUMNS = (
    ('original', 'inputs'),
    ('target', 'target'),
    ('masked', 'masked'),
    ('reconstruction', 'pred'),
    ('reconstruction + visible', 'pasted'),
)


def to_uint8(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> np.ndarray:
    """Normalised RGB images (B, 3, H, W) -> uint8 (B, H, W, 3): ``x * std + mean``, rounded and clipped to 0-255.

    Args:
        images: Normalised images.
        mean: Per-channel mean in 0-255 units, broadcastable to ``images`` (e.g. (1, 3, 1, 1)).
        std: Per-channel std in 0-255 units.
    """
    x = images.detach().float().cpu() * std.float().cpu() + mean.float().cpu()
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def reconstruction_grid(
    inputs: torch.Tensor,
    outputs: dict,
    mean: torch.Tensor,
    std: torch.Tensor,
    min_tile: int = 128,
    gap: int = 4,
    titles: bool = True,
) -> np.ndarray:
    """One RGB image: a row per input image, a column per panel (see the module docstring).

    Args:
        inputs: Normalised input images (B, 3, H, W).
        outputs: A model's ``reconstruct(inputs, ...)`` result.
        mean, std: The data preprocessor's normalisation (0-255 units, RGB).
        min_tile: Small images are enlarged by an integer factor (nearest neighbour, pixels stay visible as squares)
            until a tile is at least this wide (and as wide as the longest word of a title).
        gap: White pixels between tiles.
        titles: A header naming the columns (titles wrap onto more lines in narrow tiles).

    Returns:
        (rows, cols, 3) uint8 RGB array.
    """
    panels = dict(outputs, inputs=inputs)
    shown = [(title, key) for title, key in COLUMNS if key != 'target' or not torch.equal(panels['target'], inputs)]
    tiles = [to_uint8(panels[key], mean, std) for _, key in shown]  # each (B, H, W, 3)
    B, H, W, _ = tiles[0].shape
    font = ImageFont.load_default()
    if titles:  # no tile narrower than the longest word of a title
        min_tile = max(min_tile, 4 + int(max(font.getlength(word) for t, _ in shown for word in t.split())) + 1)
    f = max(1, -(-min_tile // W))  # ceil(min_tile / W)
    h, w = H * f, W * f
    labels = [_wrap(title, font, w - 4) for title, _ in shown] if titles else []
    line = 12
    header = max(len(lines) for lines in labels) * line + 6 if titles else 0
    grid = np.full((header + B * (h + gap) - gap, len(tiles) * (w + gap) - gap, 3), 255, np.uint8)
    for c, tile in enumerate(tiles):
        big = tile.repeat(f, axis=1).repeat(f, axis=2)  # (B, h, w, 3)
        for r in range(B):
            y, x = header + r * (h + gap), c * (w + gap)
            grid[y : y + h, x : x + w] = big[r]
    if titles:
        image = Image.fromarray(grid)
        draw = ImageDraw.Draw(image)
        for c, lines in enumerate(labels):
            for i, text in enumerate(lines):
                draw.text((c * (w + gap) + 2, 2 + i * line), text, fill=(0, 0, 0), font=font)
        grid = np.asarray(image).copy()
    return grid


def _wrap(text: str, font, width: int) -> list[str]:
    """Greedy word wrap of a column title to ``width`` pixels (a word wider than that gets a line of its own)."""
    lines = []
    for word in text.split():
        if lines and font.getlength(f'{lines[-1]} {word}') <= width:
            lines[-1] = f'{lines[-1]} {word}'
        else:
            lines.append(word)
    return lines


def save_image(grid: np.ndarray, path: str) -> None:
    """Write an RGB uint8 array as an image file (the format follows the suffix), atomically."""
    from mimlab.utils.atomic_io import atomic_write

    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format=Image.registered_extensions().get(osp.splitext(path)[1].lower(), 'PNG'))
    atomic_write(buf.getvalue(), path)


@contextlib.contextmanager
def isolated_rng(seed: int | None = 0):
    """Run a block with its own random numbers: the global RNGs (Python, NumPy, torch CPU and CUDA) are seeded with
    ``seed`` inside (left as they are when None) and restored afterwards, so training draws the same numbers as
    without the block."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                random.seed(seed)
                np.random.seed(seed)
                torch.manual_seed(seed)
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@torch.no_grad()
def reconstruct_batch(model: nn.Module, data: dict, seed: int | None = 0) -> tuple[torch.Tensor, dict]:
    """Run a collated batch through the model's data preprocessor and ``reconstruct``, in eval mode, inside
    :func:`isolated_rng` (calling this during training changes nothing there; with a ``seed`` the masks are the
    same on every call).

    Args:
        model: A pretraining algorithm (or a DDP wrapper of one).
        data: A collated batch (``inputs`` and ``data_samples``, as the train loader gives it).
        seed: Seed of the masks drawn in ``reconstruct``, or None for the current RNG state.

    Returns:
        (normalised inputs, the ``reconstruct`` dict).
    """
    if is_model_wrapper(model):
        model = model.module
    if not hasattr(type(model), 'reconstruct'):
        raise TypeError(f'{type(model).__name__} has no reconstruct(): only the MIM pretraining algorithms have one')
    was_training = model.training
    try:
        with isolated_rng(seed):
            model.eval()
            data = model.data_preprocessor(data, False)
            return data['inputs'], model.reconstruct(data['inputs'], data['data_samples'])
    finally:
        model.train(was_training)

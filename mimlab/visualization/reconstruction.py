"""Reconstruction grids: what a MIM model was shown and what it predicted, one row per image.

Columns, left to right: ``original`` (the input), ``target`` (only when a target generator changes it, e.g. PixMIM's
low-pass image), ``masked`` (what the encoder got: removed pixels at the mean colour, A2MIM's mean-RGB fill, MixMIM's
mixed image), ``reconstruction`` (the prediction over the whole image) and ``reconstruction + visible`` (the input
with its masked pixels replaced by the prediction). Every algorithm's ``reconstruct`` returns these as normalised
(B, C, H, W) tensors (:func:`~mimlab.models.algorithms.base.reconstruction_outputs`); here they become one uint8 RGB
image.
"""

import contextlib
import random

import numpy as np
import torch
from mmengine.model import is_model_wrapper
from torch import nn

from .grid import image_grid

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
    rows = [[tile[b] for tile in tiles] for b in range(len(tiles[0]))]
    return image_grid(rows, [title for title, _ in shown] if titles else None, min_tile=min_tile, gap=gap)


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

"""Pictures of a data pipeline's samples, behind ``tools/visualization/browse_dataset.py``: masked cells darkened,
one titled row per sample. :mod:`mimlab.analysis.browse` runs the pipeline that gives them."""

from collections.abc import Sequence

import numpy as np


def darken_masked(image: np.ndarray, mask: np.ndarray, factor: float = 0.3) -> np.ndarray:
    """The image with its masked cells darkened.

    Args:
        image: (H, W, 3) uint8.
        mask: (h, w), nonzero = masked, on any grid: cell (i, j) covers rows ``[i * H / h, (i + 1) * H / h)`` and
            columns likewise (nearest neighbour when h does not divide H).
        factor: Brightness kept in masked cells.

    Returns:
        (H, W, 3) uint8: masked pixels ``floor(pixel * factor)``, the others unchanged.
    """
    H, W = image.shape[:2]
    h, w = mask.shape
    m = np.asarray(mask)[(np.arange(H) * h) // H][:, (np.arange(W) * w) // W] != 0  # (h, w) -> (H, W)
    return np.where(m[..., None], (image * factor).astype(np.uint8), image)


def browse_grid(samples: Sequence[dict], min_tile: int = 128) -> np.ndarray:
    """One row per sample, titled with its index and class: ``original`` (when any sample has one), ``transformed``
    (the packed input) and ``masked`` (when any sample has a mask). Small images are enlarged by an integer factor.

    Returns:
        (rows, cols, 3) uint8 RGB array.
    """
    from .grid import image_grid

    columns = [('original', 'original'), ('transformed', 'image'), ('masked', 'masked')]
    shown = [(title, key) for title, key in columns if any(s[key] is not None for s in samples)]
    rows = [[s[key] for _, key in shown] for s in samples]
    return image_grid(rows, [title for title, _ in shown], row_titles=[s['title'] for s in samples], min_tile=min_tile)

"""Image grids: RGB uint8 tiles in rows and columns under a header of column titles, and writing them to files."""

import io
import os.path as osp
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_LINE = 12  # pixels per line of title text (PIL's default bitmap font)


def image_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    min_tile: int = 128,
    gap: int = 4,
) -> np.ndarray:
    """One RGB image of tiles: ``rows[r][c]`` in row r, column c, on a white background.

    Args:
        rows: Each row a list of (H, W, 3) uint8 RGB tiles (None: an empty cell), all rows equally long. Tiles may
            differ in size: a column is as wide as its widest tile, a row as high as its highest; a tile sits in
            the top-left corner of its cell.
        titles: One title per column, in a header (wrapped onto more lines in narrow columns); None: no header.
        row_titles: One line of text per row, in a column left of the tiles; None: no such column.
        min_tile: A narrower tile is enlarged by an integer factor (nearest neighbour, pixels stay visible as
            squares) until it is at least this wide (and, with titles, as wide as the longest word of a title).
        gap: White pixels between tiles.

    Returns:
        (rows, cols, 3) uint8 RGB array.
    """
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f'need rows of equal length, got lengths {[len(r) for r in rows]}')
    if titles is not None and len(titles) != len(rows[0]):
        raise ValueError(f'{len(titles)} titles for {len(rows[0])} columns')
    if row_titles is not None and len(row_titles) != len(rows):
        raise ValueError(f'{len(row_titles)} row titles for {len(rows)} rows')
    font = ImageFont.load_default()
    if titles:  # no tile narrower than the longest word of a title
        min_tile = max(min_tile, 4 + int(max(font.getlength(word) for t in titles for word in t.split())) + 1)

    def enlarge(tile: np.ndarray | None) -> np.ndarray | None:
        if tile is None:
            return None
        f = max(1, -(-min_tile // tile.shape[1]))  # ceil(min_tile / W)
        return tile.repeat(f, axis=0).repeat(f, axis=1)  # (H, W, 3) -> (H*f, W*f, 3)

    big = [[enlarge(t) for t in row] for row in rows]
    col_w = [max((r[c].shape[1] for r in big if r[c] is not None), default=min_tile) for c in range(len(big[0]))]
    row_h = [max((t.shape[0] for t in r if t is not None), default=min_tile) for r in big]
    left = int(max(font.getlength(t) for t in row_titles)) + 6 + gap if row_titles else 0
    labels = [_wrap(t, font, w - 4) for t, w in zip(titles, col_w)] if titles else []
    header = max(len(lines) for lines in labels) * _LINE + 6 if titles else 0
    xs = [left + sum(col_w[:c]) + c * gap for c in range(len(col_w))]
    ys = [header + sum(row_h[:r]) + r * gap for r in range(len(row_h))]
    grid = np.full((ys[-1] + row_h[-1], xs[-1] + col_w[-1], 3), 255, np.uint8)
    for r, row in enumerate(big):
        for c, tile in enumerate(row):
            if tile is not None:
                grid[ys[r] : ys[r] + tile.shape[0], xs[c] : xs[c] + tile.shape[1]] = tile
    if titles or row_titles:
        image = Image.fromarray(grid)
        draw = ImageDraw.Draw(image)
        for x, lines in zip(xs, labels):
            for i, text in enumerate(lines):
                draw.text((x + 2, 2 + i * _LINE), text, fill=(0, 0, 0), font=font)
        for y, text in zip(ys, row_titles or []):
            draw.text((2, y + 2), text, fill=(0, 0, 0), font=font)
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

"""A fused ``LoadImageFromFile`` + random resized crop + flip: the fast CPU input path of MAE-style pretraining.

What it saves per image compared with the unfused ``LoadImageFromFile -> MAERandomResizedCrop(backend='pillow') ->
RandomFlip``:

1. The crop box is drawn from the file header (read without decoding), so only the crop's region of a
   JPEG is decoded (``mimlab._jpeg``, a small C extension over the system's libjpeg-turbo, built at install time
   when a compiler and the libjpeg headers are there): decoding stops after the crop's last row, the rows above it
   are entropy-decoded only, and the columns outside it are not inverse-transformed. The region's pixels equal a
   full decode's (tested). Without the extension, the whole image is decoded with cv2.
2. A crop at least twice the output size on both sides is decoded at 1/2, 1/4 or 1/8 scale by libjpeg-turbo's DCT
   scaling: fewer pixels decoded and resampled. The drawn box is exactly the unfused one (same numpy draws, same
   order); only the decoder's downscaling and a sub-pixel rounding of the box in the reduced image change pixels.
3. The resize is Pillow's antialiased filter, computed by ``mimlab._jpeg.resample`` (C, AVX-512 where the CPU has
   it) with Pillow's fixed-point arithmetic: the same pixels as ``PIL.Image.resize``, ~5-8x faster. A full-scale
   decode therefore gives exactly the unfused pipeline's output. Without the extension, torch's uint8
   antialiased kernel (within ~0.03 grey levels of Pillow).
4. The optional flip (``flip_prob``) is a view, drawn with one ``np.random.rand()`` (mmcv's ``RandomFlip`` spends
   more time choosing than flipping); ``PackInputs`` makes the one (C, h, w) copy, which flips for free.
5. uint8 BGR end to end, no PIL <-> numpy <-> cv2 round trips.

Worker threads: the first call in a data-loader worker sets ``cv2.setNumThreads(1)`` and ``torch.set_num_threads(1)``
so N workers use N cores instead of N x cores threads.

Legend: ``H x W`` image, ``h x w`` output, ``ch x cw`` crop, ``s`` decoder scale denominator (1, 2, 4 or 8).
"""

import io
import os

import cv2
import mmengine.fileio as fileio
import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from PIL import Image

from mimlab.registry import TRANSFORMS

from . import processing
from .processing import MAERandomResizedCrop, RandomResizedCrop, pillow_resize

try:
    from mimlab import _jpeg  # the region decoder (mimlab/csrc/jpeg_region.c), optional
except ImportError:  # pragma: no cover - built without a compiler or libjpeg headers
    _jpeg = None

_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_CROPS = {'MAERandomResizedCrop': MAERandomResizedCrop, 'RandomResizedCrop': RandomResizedCrop}
_EXIF_ORIENTATION = 0x0112
_threads_limited_in = None


def limit_worker_threads() -> None:
    """In a data-loader worker, once per process: one cv2 and one torch thread (no oversubscription)."""
    global _threads_limited_in
    if _threads_limited_in == os.getpid() or torch.utils.data.get_worker_info() is None:
        return
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    _threads_limited_in = os.getpid()


def region_decoder_available() -> bool:
    """Whether the C region decoder (``mimlab._jpeg``) was built."""
    return _jpeg is not None


def image_header(data: bytes) -> tuple[int, int, int, bool]:
    """(H, W, EXIF orientation (1 = upright), is_jpeg) of an encoded image, without decoding it.

    JPEGs are read by ``mimlab._jpeg`` (~1 us) when it is built; other formats, or no extension, by PIL (~30 us).
    Raises PIL's error for data it cannot identify.
    """
    if _jpeg is not None:
        try:
            H, W, orientation = _jpeg.header(data)
            return H, W, orientation, True
        except ValueError:  # not a JPEG (or a broken one): PIL identifies it, or names the problem
            pass
    with Image.open(io.BytesIO(data)) as header:  # lazy: parses the header only
        W, H = header.size
        jpeg = header.format == 'JPEG'
        orientation = header.getexif().get(_EXIF_ORIENTATION, 1) if jpeg else 1
    return H, W, orientation, jpeg


def decode_jpeg_region(data: bytes, scale: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Decode the region ``box`` = (y1, x1, y2, x2) of the 1/``scale`` image of a JPEG.

    Args:
        data: The encoded file.
        scale: 1, 2, 4 or 8 (libjpeg-turbo DCT scaling).
        box: Half-open rows [y1, y2) and columns [x1, x2) in the 1/scale image; clamped to it.

    Returns:
        (rows, cols, 3) uint8 BGR view, equal to the same region of ``cv2.imdecode`` at that scale.

    Raises:
        RuntimeError: The extension is not built. ValueError: libjpeg's message for a corrupt or unsupported file.
    """
    if _jpeg is None:
        raise RuntimeError('mimlab._jpeg is not built (needs a C compiler and the libjpeg-turbo headers at install)')
    buf, rows, cols, dx, width = _jpeg.decode_region(data, scale, *box)
    return np.frombuffer(buf, np.uint8).reshape(rows, cols, 3)[:, dx : dx + width]


def resize_uint8(img: np.ndarray, size: tuple[int, int], interpolation: str = 'bicubic') -> np.ndarray:
    """Antialiased resize of a (H, W, 3) uint8 image with Pillow's filters and arithmetic, without Pillow.

    With ``mimlab._jpeg`` built, the pixels equal ``PIL.Image.resize`` of the installed Pillow (its fixed-point
    arithmetic and pass order, in C with AVX-512 or AVX2 where the CPU has them; ~5-8x faster than Pillow here:
    :func:`~mimlab.datasets.transforms.processing.pillow_resize`). Without it, torch's uint8 antialiased kernel,
    within ~0.03 grey levels of Pillow on average.

    Args:
        img: (H, W, C) uint8, may be a strided view (a crop).
        size: Output (h, w).
        interpolation: 'bicubic' or 'bilinear'.

    Returns:
        (h, w, C) uint8, contiguous in h, w, C order.
    """
    if processing._jpeg is not None and img.ndim == 3 and img.shape[2] == 3:
        return pillow_resize(img, size, interpolation)
    if min(img.strides) < 0 or img.strides[-1] != 1:  # torch views no negative strides (e.g. a flipped array)
        img = np.ascontiguousarray(img)
    x = torch.from_numpy(img)
    x = x.permute(2, 0, 1).unsqueeze(0)  # (H, W, C) -> (1, C, H, W), channels-last strides, no copy
    out = F.interpolate(x, size=size, mode=interpolation, antialias=True)  # (1, C, h, w) channels-last
    return out[0].permute(1, 2, 0).numpy()  # -> (h, w, C) view


def _scaled_box(top: int, left: int, ch: int, cw: int, s: int, hs: int, ws: int) -> tuple[int, int, int, int]:
    """The crop box (y1, x1, y2, x2) in the (hs, ws) 1/s image: libjpeg's output pixel i covers [i*s, (i+1)*s)."""
    y1, x1 = int(round(top / s)), int(round(left / s))
    y2 = min(max(int(round((top + ch) / s)), y1 + 1), hs)
    x2 = min(max(int(round((left + cw) / s)), x1 + 1), ws)
    return y1, x1, y2, x2


@TRANSFORMS.register_module()
class LoadImageRandomResizedCrop(BaseTransform):
    """Read ``img_path``, cut a random resized crop and flip it, all in one step, decoding only what the crop needs.

    An encoded image already in memory (``img_bytes``, given by :class:`~mimlab.datasets.WebDataset` and the Hugging
    Face datasets) is used instead of reading the file: no file is written or read. JPEGs take the region-decoding
    path; PNG, WebP and other formats are decoded whole by cv2.

    Output keys are those of ``LoadImageFromFile`` followed by the crop: ``img`` (h, w, 3) uint8 BGR,
    ``img_shape`` (h, w), ``ori_shape`` (H, W), ``crop_bbox`` (x1, y1, x2, y2) in the full image,
    ``decode_scale`` s, and with ``flip_prob > 0`` those of ``RandomFlip``: ``flip`` and ``flip_direction``.

    Args:
        scale: Output size, an int or (h, w).
        crop_ratio_range: Range of the crop area as a fraction of the image area.
        aspect_ratio_range: Range of the crop's w / h, sampled log-uniformly.
        interpolation: 'bicubic' or 'bilinear' (antialiased, Pillow's filters).
        crop_type: Which crop's draws to use: 'MAERandomResizedCrop' (one draw, the official MAE crop) or
            'RandomResizedCrop' (torchvision's retry loop, mmpretrain's draws).
        max_attempts: Draws before the fallback, for 'RandomResizedCrop'.
        reduced_decode: Decode JPEGs at 1/s scale when the crop stays >= the output size (``s * h <= ch`` and
            ``s * w <= cw``). False decodes at full size (then only the resize kernel differs from the unfused path).
        region_decode: Decode only the crop's region of a JPEG when ``mimlab._jpeg`` is built (same pixels).
        flip_prob: Probability of a horizontal flip of the output (0 = no flip; use instead of a ``RandomFlip``).
        backend_args: mmengine file backend arguments, as ``LoadImageFromFile``.
    """

    def __init__(
        self,
        scale: int | tuple[int, int],
        crop_ratio_range: tuple[float, float] = (0.2, 1.0),
        aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str = 'bicubic',
        crop_type: str = 'MAERandomResizedCrop',
        max_attempts: int = 10,
        reduced_decode: bool = True,
        region_decode: bool = True,
        flip_prob: float = 0.0,
        backend_args: dict | None = None,
    ):
        super().__init__()
        if crop_type not in _CROPS:
            raise ValueError(f'crop_type must be one of {sorted(_CROPS)}, got {crop_type!r}')
        if interpolation not in ('bicubic', 'bilinear'):
            raise ValueError(f'interpolation must be "bicubic" or "bilinear", got {interpolation!r}')
        kwargs = dict(max_attempts=max_attempts) if crop_type == 'RandomResizedCrop' else {}
        self.crop = _CROPS[crop_type](
            scale,
            crop_ratio_range=crop_ratio_range,
            aspect_ratio_range=aspect_ratio_range,
            interpolation=interpolation,
            **kwargs,
        )  # only its crop_box() is used
        self.scale = self.crop.scale
        self.interpolation = interpolation
        self.reduced_decode = reduced_decode
        self.region_decode = region_decode
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f'flip_prob must be in [0, 1], got {flip_prob}')
        self.flip_prob = flip_prob
        self.backend_args = backend_args.copy() if backend_args else None

    def decode_scale(self, ch: int, cw: int) -> int:
        """The largest s in (8, 4, 2) with the crop still >= the output at 1/s scale, else 1."""
        h, w = self.scale
        for s in (8, 4, 2):
            if ch >= s * h and cw >= s * w:
                return s
        return 1

    def transform(self, results: dict) -> dict:
        """Args: results with ``img_path``, or ``img_bytes`` (the encoded image, e.g. a shard member; ``img_path``
        then only names it). Returns: results with ``img``, ``img_shape``, ``ori_shape``,
        ``crop_bbox`` and ``decode_scale``."""
        limit_worker_threads()
        path = results.get('img_path')
        data = results.pop('img_bytes', None)  # an encoded image a streamed dataset read from a shard
        if data is None:
            try:
                data = fileio.get(path, backend_args=self.backend_args)
            except Exception as e:
                raise OSError(f'{type(self).__name__}: cannot read {path}: {e}') from e
        buf = np.frombuffer(data, np.uint8)
        try:
            H, W, orientation, jpeg = image_header(data)
        except Exception as e:
            raise OSError(f'{type(self).__name__}: cannot identify image file {path}: {e}') from e
        upright = orientation == 1

        img = crop = None
        if upright:
            top, left, ch, cw = self.crop.crop_box(H, W)
            s = self.decode_scale(ch, cw) if (jpeg and self.reduced_decode) else 1
            if jpeg and self.region_decode and _jpeg is not None:
                try:
                    crop = decode_jpeg_region(data, s, _scaled_box(top, left, ch, cw, s, -(-H // s), -(-W // s)))
                except ValueError:  # e.g. a CMYK JPEG, which libjpeg cannot convert to BGR: cv2 can
                    crop = None
            if crop is None:
                img = cv2.imdecode(buf, _REDUCED[s])
        else:
            # cv2 applies the EXIF rotation while decoding (as LoadImageFromFile does): draw on the upright size
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            s = 1
        if crop is None:
            if img is None:
                raise OSError(f'{type(self).__name__}: failed to decode {path}')
            if not upright:
                H, W = img.shape[:2]
                top, left, ch, cw = self.crop.crop_box(H, W)
            y1, x1, y2, x2 = _scaled_box(top, left, ch, cw, s, *img.shape[:2])
            crop = img[y1:y2, x1:x2]  # (ch / s, cw / s, 3) view
        flip = self.flip_prob > 0 and np.random.rand() < self.flip_prob
        out = resize_uint8(crop, self.scale, self.interpolation)
        results['img'] = out[:, ::-1] if flip else out  # a view: PackInputs' copy flips
        if self.flip_prob > 0:
            results['flip'] = bool(flip)
            results['flip_direction'] = 'horizontal' if flip else None
        results['img_shape'] = self.scale
        results['ori_shape'] = (H, W)
        results['crop_bbox'] = (left, top, left + cw, top + ch)
        results['decode_scale'] = s
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(crop={self.crop!r}, reduced_decode={self.reduced_decode}, '
            f'region_decode={self.region_decode}, flip_prob={self.flip_prob}, backend_args={self.backend_args})'
        )

"""The device half of the GPU input path: batched JPEG decode, crop, resize, flip and normalise on the device.

Pairs with :class:`~mimlab.datasets.transforms.PackEncodedWithCrop` and ``pseudo_collate``. On CUDA the decode is
nvJPEG's batched decoder (``torchvision.io.decode_jpeg(list, device='cuda')``); the same code runs with the CPU
decoder when the model is on the CPU, which is how the tests check it against the CPU path.

Legend: ``B`` batch, ``H x W`` decoded image, ``h x w`` output.
"""

import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg

from mimlab.registry import MODELS

from .data_preprocessor import MIMDataPreprocessor


@MODELS.register_module()
class GPUDecodeDataPreprocessor(MIMDataPreprocessor):
    """Encoded JPEG batch -> normalised float (B, 3, h, w) on the model's device.

    Args:
        mean: Per-channel mean in 0-255 units, RGB.
        std: Per-channel std in 0-255 units, RGB.
        interpolation: 'bicubic' or 'bilinear', antialiased (Pillow's filters, as the CPU path).
        Others: see :class:`MIMDataPreprocessor`; ``to_rgb`` must stay False (the device decoder gives RGB).
    """

    def __init__(self, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), interpolation='bicubic', **kwargs):
        if kwargs.get('to_rgb'):
            raise ValueError('GPUDecodeDataPreprocessor decodes to RGB: set to_rgb=False (or leave it out)')
        kwargs['to_rgb'] = False
        super().__init__(mean=mean, std=std, **kwargs)
        if interpolation not in ('bicubic', 'bilinear'):
            raise ValueError(f'interpolation must be "bicubic" or "bilinear", got {interpolation!r}')
        self.interpolation = interpolation

    def decode(self, encoded: list[torch.Tensor], data_samples: list) -> torch.Tensor:
        """Decode, crop, resize and flip a batch on ``self.device``.

        Args:
            encoded: B uint8 tensors of encoded JPEG bytes (on the CPU).
            data_samples: B samples whose meta information has ``crop_bbox``, ``flip`` and ``img_shape``.

        Returns:
            (B, 3, h, w) float32 in 0-255 RGB.
        """
        images = decode_jpeg(list(encoded), mode=ImageReadMode.RGB, device=self.device)  # B x (3, H, W) uint8
        out = []
        for img, sample in zip(images, data_samples):
            x1, y1, x2, y2 = sample.crop_bbox
            crop = img[None, :, y1:y2, x1:x2].float()  # (1, 3, ch, cw)
            crop = F.interpolate(crop, size=tuple(sample.img_shape), mode=self.interpolation, antialias=True)
            if sample.flip:
                crop = crop.flip(-1)
            out.append(crop)
        # keep the CPU path's uint8 rounding (and clamp the bicubic overshoot) so both paths see the same values
        return torch.cat(out).round_().clamp_(0, 255)  # (B, 3, h, w)

    def forward(self, data: dict, training: bool = False) -> dict:
        if not isinstance(data, dict) or 'inputs' not in data or 'data_samples' not in data:
            raise TypeError('GPUDecodeDataPreprocessor expects dict(inputs, data_samples) from pseudo_collate')
        inputs, samples = data['inputs'], data['data_samples']
        if isinstance(inputs, torch.Tensor):
            raise TypeError(
                'GPUDecodeDataPreprocessor got a stacked tensor: collate the encoded bytes with pseudo_collate'
            )
        return dict(inputs=self.normalize(self.decode(inputs, samples)), data_samples=samples)

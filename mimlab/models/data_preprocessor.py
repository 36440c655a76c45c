"""Moves uint8 batches to the model's device and normalises them there."""

from collections.abc import Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from mimlab.registry import MODELS
from mimlab.structures import DataSample, stack_sample_fields


@MODELS.register_module()
class MIMDataPreprocessor(BaseDataPreprocessor):
    """uint8 (B, 3, H, W) batch -> float (B, 3, H, W) ``(x - mean) / std`` on the model's device.

    The loader ships uint8 (4x less host-to-device traffic than float32); channel swap and normalisation run on the
    device. ``mean``/``std`` are non-persistent buffers (not in checkpoints, as in mmengine) and are public so that
    target generators (PixMIM) can de-normalise with the same values.

    Args:
        mean: Per-channel mean in 0-255 units, in the model's (RGB) order.
        std: Per-channel std in 0-255 units.
        to_rgb: Swap BGR (cv2/mmcv decoding order) to RGB before normalising.
        non_blocking: Asynchronous host-to-device copies (use with pinned memory).
        channels_last: Emit the batch in ``torch.channels_last`` memory format (for CNNs; ``ChannelsLastHook`` sets
            it together with the model's weights).
    """

    def __init__(
        self,
        mean: Sequence[float] = (123.675, 116.28, 103.53),
        std: Sequence[float] = (58.395, 57.12, 57.375),
        to_rgb: bool = True,
        non_blocking: bool = True,
        channels_last: bool = False,
    ):
        super().__init__(non_blocking=non_blocking)
        self.channels_last = channels_last
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.to_rgb = to_rgb

    def normalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """uint8/float (B, 3, H, W) in the loader's channel order -> normalised float32 (B, 3, H, W)."""
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)  # on uint8: the cheap place; ops keep it
        if self.to_rgb:
            inputs = inputs.flip(1)  # BGR -> RGB: (B, 3, H, W) with channels reversed
        return (inputs.float() - self.mean) / self.std

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize` up to the channel swap: float (B, 3, H, W) -> 0-255 RGB floats."""
        return inputs * self.std + self.mean

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == 'cuda' and t.device.type == 'cpu':
            t = t.pin_memory()  # torch's caching host allocator: reused blocks after the first batches
        return t.to(self.device, non_blocking=True)

    def forward(self, data: dict, training: bool = False) -> dict:
        if not isinstance(data, dict) or 'inputs' not in data:
            raise TypeError('MIMDataPreprocessor expects a dict with "inputs" (collate with default_collate)')
        samples = data.get('data_samples')
        if isinstance(samples, (list, tuple)) and samples and all(isinstance(x, DataSample) for x in samples):
            # In place, one pinned non-blocking copy per field, the metainfo untouched. mmengine's cast_data would
            # build a new sample per image (a deep copy of its metainfo: ~30 ms of host time per 512 images, even on
            # the CPU) and issue B small copies from pageable memory, each of which can wait for the stream.
            stack_sample_fields(samples, self._to_device)
        else:
            samples = self.cast_data(samples)
        inputs = self.cast_data(data['inputs'])
        if isinstance(inputs, (list, tuple)):  # pseudo_collate: a list of (3, H, W) images
            if any(x.shape != inputs[0].shape for x in inputs):
                raise ValueError(f'images of one batch differ in shape: {sorted({tuple(x.shape) for x in inputs})}')
            inputs = torch.stack(list(inputs))  # B x (3, H, W) -> (B, 3, H, W)
        inputs = self.normalize(inputs)
        return dict(inputs=inputs, data_samples=samples)

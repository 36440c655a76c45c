"""Train and evaluate a CNN in ``torch.channels_last`` memory format.

cuDNN's convolutions under AMP run on tensor cores in NHWC layout: with NCHW tensors every convolution pays a layout
transform, or picks a slower kernel. oneDNN on CPUs prefers NHWC as well. Converting once, in place, costs nothing
per step: the 4-D conv weights (and their optimizer state, after a resume) get channels-last strides, the data
preprocessor emits channels-last batches, and convolutions, norms and elementwise ops keep the format. The maths is
unchanged (only strides differ; results agree to float rounding) and checkpoints load either way, since
``state_dict`` tensors are copied by value.
"""

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mimlab.registry import HOOKS


def to_channels_last(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Give ``model``'s 4-D parameters and buffers, and their optimizer state, channels-last strides, in place
    (the ``Parameter`` objects stay the same, so an optimizer built before keeps working).

    Returns:
        How many parameters were converted.
    """
    model.to(memory_format=torch.channels_last)
    preprocessor = getattr(model, 'data_preprocessor', None)
    if preprocessor is not None and hasattr(preprocessor, 'channels_last'):
        preprocessor.channels_last = True
    params = [p for p in model.parameters() if p.dim() == 4]
    if optimizer is not None:
        for p in params:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape:
                    state[key] = value.contiguous(memory_format=torch.channels_last)
    return len(params)


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Convert the model (and optimizer state) to channels-last before training, validation and testing.

    Add it to CNN configs: ``custom_hooks = [dict(type='ChannelsLastHook')]`` (the A2MIM ResNet/ConvNeXt recipes
    have it). ViTs gain nothing (one patch convolution).

    Args:
        on_cpu: Convert on CPUs too. Off by default: on the 2-core CPU of docs/benchmarks.md the A2MIM ResNet-50 and
            ConvNeXt-T steps changed by less than the run-to-run noise (about 10 %) either way.
    """

    priority = 'VERY_HIGH'

    def __init__(self, on_cpu: bool = False):
        self.on_cpu = on_cpu
        self._logged = False

    def _convert(self, runner, with_optimizer: bool) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        device = next(model.parameters()).device
        if device.type == 'cpu' and not self.on_cpu:
            return
        optimizer = None
        if with_optimizer:
            wrapper = getattr(runner, 'optim_wrapper', None)
            optimizer = getattr(wrapper, 'optimizer', None)
        n = to_channels_last(model, optimizer if isinstance(optimizer, torch.optim.Optimizer) else None)
        if not self._logged:
            runner.logger.info(f'ChannelsLastHook: {n} 4-D parameters and the input batches in channels_last format')
            self._logged = True

    def before_train(self, runner) -> None:  # after weight init and resume
        self._convert(runner, with_optimizer=True)

    def before_val(self, runner) -> None:
        self._convert(runner, with_optimizer=False)

    def before_test(self, runner) -> None:
        self._convert(runner, with_optimizer=False)

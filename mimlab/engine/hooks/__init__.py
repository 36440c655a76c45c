from .channels_last import ChannelsLastHook, to_channels_last
from .checkpoint import AtomicCheckpointHook, check_mid_epoch_resume
from .nan_guard import NonFiniteGuardHook, total_grad_norm
from .preemption import PreemptionHook
from .reconstruction import ReconstructionHook
from .runtime_info import DeferredRuntimeInfoHook
from .skipped_images import SkippedImagesHook
from .streamed import StreamedDatasetHook
from .train_state import TrainStateHook

__all__ = [
    'AtomicCheckpointHook',
    'ChannelsLastHook',
    'DeferredRuntimeInfoHook',
    'NonFiniteGuardHook',
    'PreemptionHook',
    'ReconstructionHook',
    'SkippedImagesHook',
    'StreamedDatasetHook',
    'TrainStateHook',
    'check_mid_epoch_resume',
    'to_channels_last',
    'total_grad_norm',
]

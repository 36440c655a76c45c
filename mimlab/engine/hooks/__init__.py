from .checkpoint import CheckpointHook
from .nan_guard import NonFiniteGuardHook, total_grad_norm
from .train_state import TrainStateHook

__all__ = ['CheckpointHook', 'NonFiniteGuardHook', 'TrainStateHook', 'total_grad_norm']
from .skipped_images import SkippedImagesHook  # noqa: E402

__all__ += ['SkippedImagesHook']
from .preemption import PreemptionHook  # noqa: E402

__all__ += ['PreemptionHook']
from .runtime_info import RuntimeInfoHook  # noqa: E402

__all__ += ['RuntimeInfoHook']
from .channels_last import ChannelsLastHook, to_channels_last  # noqa: E402

__all__ += ['ChannelsLastHook', 'to_channels_last']
from .reconstruction import ReconstructionHook  # noqa: E402

__all__ += ['ReconstructionHook']

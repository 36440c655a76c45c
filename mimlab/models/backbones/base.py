"""The contract every mimlab backbone honours (checked by one parametrised test over the registry)."""

from mmengine.model import BaseModule


class BaseBackbone(BaseModule):
    """A backbone returns a tuple of features from ``forward(x)``.

    Subclasses set ``embed_dims`` and ``out_indices`` and implement ``no_weight_decay()`` (names of parameters that
    get no weight decay beyond 1-D ones) and ``get_layer_depth(param_name, prefix)`` (for layer-wise lr decay).
    Masked pretraining entry points are separate, explicit methods of the algorithm-specific subclasses.
    """

    embed_dims: int
    out_indices: tuple[int, ...]

    def no_weight_decay(self) -> set[str]:
        return set()

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        raise NotImplementedError

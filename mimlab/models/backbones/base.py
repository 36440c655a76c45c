"""The contract every mimlab backbone honours, checked by one parametrised test over the registry
(``tests/test_backbone_contract.py``).

Legend: ``B`` batch, ``C`` width, ``h x w`` feature grid at a stage or mask site, ``L = h * w`` tokens.

A backbone is a stem followed by stages. Each family writes its loop once, in :meth:`BaseBackbone.forward_stages`, and
calls the hooks it is given at its **mask sites**: site ``l`` is where the features enter stage ``l`` (site 0: the
stem's output, before any position table). Masked pretraining variants (SimMIM, A2MIM) pass a hook instead of copying
the loop, so a fix to a family's forward is made once and a new backbone that honours the contract works with them.

========  =====================================  =====================================================
family    site ``l``                             layout
========  =====================================  =====================================================
ViT       0: patch embeddings (before cls and    tokens (B, L, D); the hook sees the patch tokens only
          position table); l >= 1: the tokens    (never the cls token)
          entering block ``l - 1``
Swin      0: patch embeddings (before the        tokens (B, L, C)
          absolute table); l >= 1: stage l's
          input (after patch merging)
MixMIM    as Swin                                tokens (B, L, C)
ResNet    the input of ``layer{l+1}`` (0: after  map (B, C, h, w)
          the stem's max pool)
ConvNeXt  stage l's input after its downsample   map (B, C, h, w)
          layer (0: after the patchify stem)
========  =====================================  =====================================================
"""

from collections.abc import Callable, Mapping, Sequence

import torch
from mmengine.model import BaseModule
from timm.layers import trunc_normal_
from torch import nn

# a hook takes the features at a site and that site's grid (h, w) and returns features of the same shape
SiteHook = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]


class BaseBackbone(BaseModule):
    """A stem, stages, and ``forward(x) -> tuple`` of the outputs of the stages in ``out_indices``.

    A subclass sets in ``__init__`` (all tuples):

    - ``embed_dims``: width of the stem output;
    - ``out_indices``: the stages whose outputs ``forward`` returns, non-negative;
    - ``stage_channels`` / ``stage_strides``: width and stride (input pixels per feature) of each stage's output;
    - ``site_channels`` / ``site_strides``: width and stride of the features at each mask site;
    - ``feature_layout`` (class attribute): ``'map'`` when sites carry (B, C, h, w), ``'tokens'`` for (B, L, C);

    and implements :meth:`forward_stages` (calling :meth:`at_site` at each site), :meth:`init_random_weights`,
    ``no_weight_decay()`` and ``get_layer_depth(name, prefix)``. ``arch='test'`` (or ``depth='test'``) is a tiny
    variant for CPU tests.
    """

    feature_layout: str  # 'map' or 'tokens'
    embed_dims: int
    out_indices: tuple[int, ...]
    stage_channels: tuple[int, ...]
    stage_strides: tuple[int, ...]
    site_channels: tuple[int, ...]
    site_strides: tuple[int, ...]

    # ------------------------------------------------------------------ geometry
    @property
    def out_channels(self) -> tuple[int, ...]:
        """Width of each output of ``forward``, in ``out_indices`` order."""
        return tuple(self.stage_channels[i] for i in self.out_indices)

    @property
    def out_strides(self) -> tuple[int, ...]:
        """Stride (input pixels per feature) of each output of ``forward``, in ``out_indices`` order."""
        return tuple(self.stage_strides[i] for i in self.out_indices)

    @staticmethod
    def resolve_out_indices(out_indices: int | Sequence[int], num_stages: int) -> tuple[int, ...]:
        """``out_indices`` as a tuple of non-negative stage indices (negative counts from the end)."""
        indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
        resolved = tuple(i + num_stages if i < 0 else i for i in indices)
        if any(not 0 <= i < num_stages for i in resolved):
            raise ValueError(f'out_indices {tuple(indices)} out of range for {num_stages} stages')
        return resolved

    @staticmethod
    def resolve_arch(arch: str | dict, zoo: dict, required: set[str], family: str) -> dict:
        """The settings of a named arch of ``zoo`` (case-insensitive), or a custom dict holding ``required`` keys."""
        if isinstance(arch, str):
            if arch.lower() not in zoo:
                raise KeyError(f'unknown {family} arch {arch!r}; choose from {sorted(zoo)} or pass a dict')
            return zoo[arch.lower()]
        if missing := required - set(arch):
            raise KeyError(f'custom {family} arch lacks {sorted(missing)}')
        return arch

    @staticmethod
    def freeze(modules: Sequence[nn.Module]) -> None:
        """Eval mode (frozen norm statistics, no dropout) and no gradients for ``modules``."""
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    # ------------------------------------------------------------------ init
    @property
    def loads_pretrained(self) -> bool:
        """Whether a ``Pretrained`` init_cfg will load this backbone's weights (then no random init is drawn)."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        return any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)

    def init_weights(self) -> None:
        """Parameters a subclass adds (drawn either way: a plain checkpoint does not hold them), then the family's
        random init unless a ``Pretrained`` init_cfg loads the weights, then mmengine's init_cfg. Never twice: mmengine
        may call ``init_weights`` again after loading, which must not re-draw loaded weights."""
        if getattr(self, '_is_init', False):
            return
        self.init_added_weights()
        if not self.loads_pretrained:
            self.init_random_weights()
        super().init_weights()

    def init_added_weights(self) -> None:
        """Init of parameters that masked variants add (mask tokens); nothing by default."""

    def init_random_weights(self) -> None:
        """The family's init from scratch."""
        raise NotImplementedError

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Args: x (B, C_in, H, W). Returns: one tensor per ``out_indices``."""
        return self.forward_stages(x)

    def forward_stages(self, x: torch.Tensor, hooks: Mapping[int, SiteHook] | None = None) -> tuple[torch.Tensor, ...]:
        """The stem and every stage, with ``hooks[l]`` applied to the features at mask site ``l``."""
        raise NotImplementedError

    @staticmethod
    def at_site(site: int, x: torch.Tensor, hw: tuple[int, int], hooks: Mapping[int, SiteHook] | None) -> torch.Tensor:
        """Apply the hook of ``site`` to the features ``x`` on the grid ``hw``, if there is one."""
        if hooks is None or site not in hooks:
            return x
        return hooks[site](x, hw)

    # ------------------------------------------------------------------ optimiser
    def no_weight_decay(self) -> set[str]:
        """Names of parameters exempt from weight decay besides 1-D ones (the optimizer constructor exempts those)."""
        return set()

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """``(depth, num_layers)`` of a parameter for layer-wise lr decay."""
        raise NotImplementedError


class MaskTokenBackbone:
    """Mixin for masked variants of a :class:`BaseBackbone`: a learnable ``mask_token`` at one mask site.

    The token is shaped for the site's layout, (1, C, 1, 1) on a map and (1, 1, C) on tokens, initialised
    trunc-normal(``mask_token_std``, 0.02 unless a subclass sets it; 0: zeros) and exempt from weight decay. A masked
    variant (SimMIM's, A2MIM's) adds only how the token enters the features, as a hook on
    :meth:`BaseBackbone.forward_stages`.
    """

    mask_token_std = 0.02

    def add_mask_token(self, site: int) -> None:
        if not 0 <= site < len(self.site_channels):
            raise ValueError(f'mask_layer must be in [0, {len(self.site_channels)}), got {site}')
        self.mask_site = site
        self.mask_token = nn.Parameter(torch.zeros(self.site_param_shape(site)))

    def site_param_shape(self, site: int) -> tuple[int, ...]:
        """Shape of a per-channel parameter that broadcasts over the features at ``site``."""
        c = self.site_channels[site]
        return (1, c, 1, 1) if self.feature_layout == 'map' else (1, 1, c)

    def site_mask(self, mask: torch.Tensor, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """The (B, h, w) mask (1 = masked) broadcast to the features ``x`` at the mask site, in their dtype:
        (B, 1, h, w) for a map, (B, L, 1) for tokens."""
        if tuple(mask.shape[-2:]) != tuple(hw):
            raise ValueError(
                f'mask grid {tuple(mask.shape[-2:])} does not match the feature map {tuple(hw)} at mask site '
                f'{self.mask_site} of {type(self).__name__} (stride {self.site_strides[self.mask_site]}): set the mask '
                "generator's model_patch_size to that stride and its input_size to the image size"
            )
        m = mask.unsqueeze(1) if self.feature_layout == 'map' else mask.flatten(1).unsqueeze(-1)
        return m.to(x.dtype)

    def init_added_weights(self) -> None:
        if self.mask_token_std > 0:
            trunc_normal_(self.mask_token, std=self.mask_token_std)
        else:
            nn.init.zeros_(self.mask_token)
        super().init_added_weights()

    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay() | {'mask_token'}

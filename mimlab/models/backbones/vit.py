"""Vision Transformer (Dosovitskiy et al. 2021) with mmpretrain 1.2.0's ``VisionTransformer`` state-dict keys.

Legend: ``B`` batch, ``L`` patches, ``D`` width, ``Hp x Wp`` patch grid, ``E`` extra tokens (1 with a cls token).

Keys: ``cls_token``, ``pos_embed`` (1, E+L, D), ``patch_embed.projection.*``, ``pre_norm.*`` (optional),
``layers.{i}.*`` (see :mod:`mimlab.models.layers.transformer`), ``ln1.*`` (final norm), ``ln2.*`` (norm of the
averaged patch tokens when ``out_type='avg_featmap'``, MAE's ``fc_norm``).
"""

from collections.abc import Mapping, Sequence

import torch
from mmengine.logging import MMLogger
from timm.layers import trunc_normal_
from torch import nn

from mimlab.registry import MODELS

from ..layers import PatchEmbed, TransformerEncoderLayer, resize_pos_embed
from .base import BaseBackbone, SiteHook


def _arch(embed_dims, num_layers, num_heads, feedforward_channels):
    return dict(
        embed_dims=embed_dims, num_layers=num_layers, num_heads=num_heads, feedforward_channels=feedforward_channels
    )


@MODELS.register_module()
class VisionTransformer(BaseBackbone):
    """Plain ViT encoder.

    Args:
        arch: One of ``arch_zoo`` ('s', 'b', 'l', 'h', their long names, 'deit-t/s/b', 'test') or a dict with
            ``embed_dims``, ``num_layers``, ``num_heads``, ``feedforward_channels``.
        img_size: Nominal input size (sets the position-table grid).
        patch_size: Patch side p.
        in_channels: Input channels.
        out_indices: Blocks whose outputs are returned (negative counts from the end).
        drop_rate: Dropout after the position embedding and inside blocks.
        drop_path_rate: Stochastic depth, linearly increasing over blocks from 0.
        qkv_bias: Bias in qkv projections.
        norm_eps: LayerNorm epsilon.
        final_norm: Apply ``ln1`` after the last block.
        out_type: 'raw' (B, E+L, D), 'cls_token' (B, D), 'featmap' (B, D, Hp, Wp) or 'avg_featmap' (B, D).
        with_cls_token: Prepend a learnable cls token.
        frozen_stages: Freeze patch embedding and the first ``frozen_stages`` blocks (-1: nothing).
        interpolate_mode: How ``pos_embed`` is resized for other input sizes and when loading a checkpoint of
            another resolution.
        layer_scale_init_value: LayerScale init in every block (0 disables).
        pre_norm: LayerNorm before the blocks (CLIP style; the patch conv then has no bias).
        use_rel_pos_bias: A BEiT-style relative position bias in every block's attention (openmixup's and
            mmselfsup's ``use_window``; keys ``layers.{i}.attn.relative_position_bias_table``), besides the absolute
            table; the blocks then always see the cls token and the full patch grid of ``img_size``.
        with_cp: Activation checkpointing in every block (memory for compute, for ViT-L/H on smaller GPUs).
        init_cfg: mmengine init config (e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``).
    """

    arch_zoo = {
        **dict.fromkeys(['s', 'small'], _arch(768, 8, 8, 2304)),
        **dict.fromkeys(['b', 'base'], _arch(768, 12, 12, 3072)),
        **dict.fromkeys(['l', 'large'], _arch(1024, 24, 16, 4096)),
        **dict.fromkeys(['h', 'huge'], _arch(1280, 32, 16, 5120)),
        **dict.fromkeys(['deit-t', 'deit-tiny'], _arch(192, 12, 3, 768)),
        **dict.fromkeys(['deit-s', 'deit-small'], _arch(384, 12, 6, 1536)),
        **dict.fromkeys(['deit-b', 'deit-base'], _arch(768, 12, 12, 3072)),
        'test': _arch(32, 2, 2, 64),  # tiny, for CPU tests and demos
    }
    OUT_TYPES = ('raw', 'cls_token', 'featmap', 'avg_featmap')
    feature_layout = 'tokens'

    def __init__(
        self,
        arch: str | dict = 'b',
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        out_indices: int | Sequence[int] = -1,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        final_norm: bool = True,
        out_type: str = 'cls_token',
        with_cls_token: bool = True,
        frozen_stages: int = -1,
        interpolate_mode: str = 'bicubic',
        layer_scale_init_value: float = 0.0,
        pre_norm: bool = False,
        use_rel_pos_bias: bool = False,
        with_cp: bool = False,
        init_cfg: dict | list | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        if use_rel_pos_bias and not with_cls_token:
            raise ValueError('use_rel_pos_bias needs with_cls_token=True (the BEiT table has cls-token rows)')
        required = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'}
        settings = self.resolve_arch(arch, self.arch_zoo, required, 'ViT')
        if out_type not in self.OUT_TYPES:
            raise ValueError(f'unsupported out_type {out_type!r}; choose from {self.OUT_TYPES}')
        if out_type == 'cls_token' and not with_cls_token:
            raise ValueError('out_type="cls_token" needs with_cls_token=True')

        self.embed_dims = settings['embed_dims']
        self.num_layers = settings['num_layers']
        self.num_heads = settings['num_heads']
        self.patch_size = patch_size
        self.out_type = out_type
        self.with_cls_token = with_cls_token
        self.num_extra_tokens = 1 if with_cls_token else 0
        self.interpolate_mode = interpolate_mode
        self.final_norm = final_norm
        self.frozen_stages = frozen_stages

        self.patch_embed = PatchEmbed(in_channels, self.embed_dims, patch_size, img_size, bias=not pre_norm)
        self.patch_resolution = self.patch_embed.init_out_size
        num_patches = self.patch_resolution[0] * self.patch_resolution[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims)) if with_cls_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + self.num_extra_tokens, self.embed_dims))
        self._register_load_state_dict_pre_hook(self._resize_pos_embed_on_load)
        self.drop_after_pos = nn.Dropout(drop_rate)
        self.pre_norm = nn.LayerNorm(self.embed_dims, eps=norm_eps) if pre_norm else nn.Identity()

        self.out_indices = self.resolve_out_indices(out_indices, self.num_layers)
        self.stage_channels = (self.embed_dims,) * self.num_layers
        self.stage_strides = (patch_size,) * self.num_layers
        # site 0: the patch embeddings; site l: the tokens entering block l - 1
        self.site_channels = (self.embed_dims,) * (self.num_layers + 1)
        self.site_strides = (patch_size,) * (self.num_layers + 1)

        dpr = torch.linspace(0, drop_path_rate, self.num_layers).tolist()
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                self.embed_dims,
                self.num_heads,
                settings['feedforward_channels'],
                layer_scale_init_value=layer_scale_init_value,
                drop_rate=drop_rate,
                drop_path_rate=dpr[i],
                qkv_bias=qkv_bias,
                norm_eps=norm_eps,
                rel_pos_grid=self.patch_resolution if use_rel_pos_bias else None,
                with_cp=with_cp,
            )
            for i in range(self.num_layers)
        )
        if final_norm:
            self.ln1 = nn.LayerNorm(self.embed_dims, eps=norm_eps)
        if out_type == 'avg_featmap':
            self.ln2 = nn.LayerNorm(self.embed_dims, eps=norm_eps)
        if frozen_stages > 0:
            self._freeze_stages()

    # ------------------------------------------------------------------ init
    def init_random_weights(self) -> None:
        """timm's ViT init: truncated-normal(0.02) Linears with zero bias, patch conv as a flattened Linear."""
        self.apply(_init_vit_module)
        w = self.patch_embed.projection.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)

    def _freeze_stages(self) -> None:
        frozen = [self.patch_embed, self.pre_norm, *self.layers[: self.frozen_stages]]
        if self.frozen_stages >= self.num_layers:
            frozen += [m for m in (getattr(self, 'ln1', None), getattr(self, 'ln2', None)) if m is not None]
        self.freeze(frozen)
        self.pos_embed.requires_grad = False
        if self.cls_token is not None:
            self.cls_token.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.frozen_stages > 0:
            self._freeze_stages()
        return self

    # ---------------------------------------------------------------- loading
    def _resize_pos_embed_on_load(self, state_dict, prefix, *args, **kwargs) -> None:
        """Interpolate a checkpoint's ``pos_embed`` of another resolution to this model's grid."""
        name = prefix + 'pos_embed'
        if name not in state_dict:
            return
        ckpt = state_dict[name]
        if not self.with_cls_token and ckpt.shape[1] == self.pos_embed.shape[1] + 1:
            ckpt = ckpt[:, 1:]  # a cls row this model does not use
        if ckpt.shape != self.pos_embed.shape:
            side = int(round((ckpt.shape[1] - self.num_extra_tokens) ** 0.5))
            MMLogger.get_current_instance().info(
                f'Resize {name} from {tuple(ckpt.shape)} to {tuple(self.pos_embed.shape)} ({self.interpolate_mode}).'
            )
            ckpt = resize_pos_embed(
                ckpt, (side, side), self.patch_resolution, self.interpolate_mode, self.num_extra_tokens
            )
        state_dict[name] = ckpt

    # ---------------------------------------------------------------- forward
    def add_position(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Patch tokens (B, L, D) -> (B, E+L, D): prepend cls, add the position table resized to ``hw``."""
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, L, D) -> (B, 1+L, D)
        pos = resize_pos_embed(self.pos_embed, self.patch_resolution, hw, self.interpolate_mode, self.num_extra_tokens)
        return self.pre_norm(self.drop_after_pos(x + pos))

    def forward_stages(self, x: torch.Tensor, hooks: Mapping[int, SiteHook] | None = None) -> tuple[torch.Tensor, ...]:
        """Args: x (B, C, H, W); hooks: per mask site (0: patch embeddings, l: patch tokens entering block l-1).

        Returns: one tensor per ``out_indices``, shaped by ``out_type``.
        """
        tokens, hw = self.patch_embed(x)  # (B, C, H, W) -> (B, L, D)
        x = self.add_position(self.at_site(0, tokens, hw, hooks), hw)  # -> (B, E+L, D)
        e = self.num_extra_tokens
        outs = []
        for i, layer in enumerate(self.layers):
            if hooks is not None and i + 1 in hooks:
                x = torch.cat([x[:, :e], self.at_site(i + 1, x[:, e:], hw, hooks)], dim=1)  # patch tokens only
            x = layer(x)
            if i == self.num_layers - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, hw))
        return tuple(outs)

    def _format_output(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        patches = x[:, self.num_extra_tokens :]
        if self.out_type == 'featmap':
            return patches.reshape(x.shape[0], *hw, -1).permute(0, 3, 1, 2)  # (B, L, D) -> (B, D, Hp, Wp)
        return self.ln2(patches.mean(dim=1))  # avg_featmap: (B, L, D) -> (B, D)

    # -------------------------------------------------------------- contract
    def no_weight_decay(self) -> set[str]:
        tables = {n for n, _ in self.named_parameters() if n.endswith('relative_position_bias_table')}
        return {'pos_embed', 'cls_token'} | tables

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """Depth for layer-wise lr decay: 0 = stem (cls, pos, patch embed), i+1 = block i, last = the rest.

        Returns:
            ``(depth, num_layers)`` with ``num_layers = blocks + 2``, as mmpretrain.
        """
        num_layers = self.num_layers + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix) :]
        if name in ('cls_token', 'pos_embed', 'mask_token') or name.startswith('patch_embed'):
            return 0, num_layers
        if name.startswith('layers.'):
            return int(name.split('.')[1]) + 1, num_layers
        return num_layers - 1, num_layers


def _init_vit_module(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)

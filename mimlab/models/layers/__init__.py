from .checkpointing import checkpoint_module, is_checkpointed
from .embed import PatchEmbed, build_2d_sincos_position_embedding, resize_pos_embed
from .transformer import FFN, LayerScale, MultiheadAttention, TransformerEncoderLayer, gather_tokens

__all__ = [
    'checkpoint_module',
    'is_checkpointed',
    'PatchEmbed',
    'build_2d_sincos_position_embedding',
    'resize_pos_embed',
    'FFN',
    'LayerScale',
    'MultiheadAttention',
    'TransformerEncoderLayer',
    'gather_tokens',
]

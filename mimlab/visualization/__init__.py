from .browse import browse_grid, browse_samples, darken_masked, loader_gives_bgr, phase_dataset
from .grid import image_grid, save_image
from .reconstruction import COLUMNS, isolated_rng, reconstruct_batch, reconstruction_grid, to_uint8

__all__ = [
    'COLUMNS',
    'browse_grid',
    'browse_samples',
    'darken_masked',
    'image_grid',
    'isolated_rng',
    'loader_gives_bgr',
    'phase_dataset',
    'reconstruct_batch',
    'reconstruction_grid',
    'save_image',
    'to_uint8',
]

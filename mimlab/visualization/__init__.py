from .browse import browse_grid, darken_masked
from .grid import image_grid, save_image
from .reconstruction import COLUMNS, isolated_rng, reconstruct_batch, reconstruction_grid, to_uint8
from .trackers import StepImagesMLflowVisBackend

__all__ = [
    'COLUMNS',
    'StepImagesMLflowVisBackend',
    'browse_grid',
    'darken_masked',
    'image_grid',
    'isolated_rng',
    'reconstruct_batch',
    'reconstruction_grid',
    'save_image',
    'to_uint8',
]

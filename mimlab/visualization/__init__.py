from .reconstruction import COLUMNS, isolated_rng, reconstruct_batch, reconstruction_grid, save_image, to_uint8

__all__ = ['COLUMNS', 'isolated_rng', 'reconstruct_batch', 'reconstruction_grid', 'save_image', 'to_uint8']

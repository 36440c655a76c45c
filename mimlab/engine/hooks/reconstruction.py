"""Show what the model reconstructs while it trains: a grid of a few fixed training images every ``interval``."""

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mimlab.registry import HOOKS
from mimlab.visualization import isolated_rng, reconstruct_batch, reconstruction_grid

__all__ = ['ReconstructionHook']


@HOOKS.register_module()
class ReconstructionHook(Hook):
    """Every ``interval`` epochs (or iterations), reconstruct the first ``num_images`` training images and hand the
    grid (:func:`~mimlab.visualization.reconstruction_grid`) to the runner's visualizer as ``reconstruction``: with
    the default ``LocalVisBackend`` it lands in ``<work_dir>/<timestamp>/vis_data/vis_image/reconstruction_<step>.png``,
    with ``TensorboardVisBackend`` / ``WandbVisBackend`` in those.

    The images, their crops and the masks come from ``seed``, so every grid shows the same inputs; the training's
    random numbers are untouched (:func:`~mimlab.visualization.isolated_rng`), so a run with the hook trains exactly
    as one without it. Runs on the main process only, in eval mode, without gradients.

    Args:
        interval: Every how many epochs (``by_epoch``) or iterations; the last one always gets a grid.
        by_epoch: Count epochs (the recipes' loops) or iterations.
        num_images: Rows of the grid (MixMIM pairs image b with image num_images-1-b).
        seed: Seed of the crops and masks.
        min_tile: Enlarge small images until a tile is at least this many pixels wide.
    """

    priority = 'LOW'

    def __init__(
        self, interval: int = 1, by_epoch: bool = True, num_images: int = 4, seed: int = 0, min_tile: int = 128
    ):
        if interval < 1 or num_images < 1:
            raise ValueError(f'interval and num_images must be >= 1, got {interval} and {num_images}')
        self.interval = interval
        self.by_epoch = by_epoch
        self.num_images = num_images
        self.seed = seed
        self.min_tile = min_tile

    def after_train_epoch(self, runner) -> None:
        # runner.epoch is still the finished epoch's index here
        if self.by_epoch and (self.every_n_epochs(runner, self.interval) or self.is_last_train_epoch(runner)):
            self.draw(runner, runner.epoch + 1)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.by_epoch and (self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner)):
            self.draw(runner, runner.iter + 1)

    def draw(self, runner, step: int) -> None:
        """Reconstruct the fixed images and add the grid to the visualizer at ``step``."""
        from mimlab.engine.parallel import gathered_root, is_sharded

        if not (is_main_process() or is_sharded(runner.model)):  # sharded: every rank takes part in the gathers
            return
        loader = runner.train_dataloader
        dataset = loader.dataset
        n = min(self.num_images, len(dataset))
        with isolated_rng(self.seed), gathered_root(runner.model):
            data = loader.collate_fn([dataset[i] for i in range(n)])
            inputs, outputs = reconstruct_batch(runner.model, data, seed=None)
        if not is_main_process():
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        pre = model.data_preprocessor
        grid = reconstruction_grid(inputs, outputs, pre.mean, pre.std, min_tile=self.min_tile)
        runner.visualizer.add_image('reconstruction', grid, step=step)

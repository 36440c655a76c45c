"""Experiment-tracker backends that need a fix over mmengine's (``tools/train.py --vis-backend``).

mmengine 0.10.7's ``MLflowVisBackend.add_image`` hands the image's name (``'reconstruction'``) to
``mlflow.log_image`` as the artifact file name; without an extension Pillow cannot pick a format and the run dies,
and with one every step would overwrite the last. This backend names the file ``<name>_<step>.png`` under
``images/``, the way mmengine's local backend names its files.
"""

import numpy as np
from mmengine.visualization import MLflowVisBackend
from mmengine.visualization.vis_backend import force_init_env

from mimlab.registry import VISBACKENDS

__all__ = ['StepImagesMLflowVisBackend']


@VISBACKENDS.register_module()
class StepImagesMLflowVisBackend(MLflowVisBackend):
    """mmengine's MLflow backend whose images land as ``images/<name>_<step>.png`` artifacts."""

    @force_init_env
    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs) -> None:
        self._mlflow.log_image(image, f'images/{name}_{step}.png')

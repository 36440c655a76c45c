"""Model zoo API: list the released models, build them with or without weights, classify an image."""

from .inference import inference_model
from .model_zoo import ModelHub, ModelInfo, get_model, list_models

__all__ = ['ModelHub', 'ModelInfo', 'get_model', 'inference_model', 'list_models']

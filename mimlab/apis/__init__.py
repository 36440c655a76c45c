"""Model zoo API: list the released models, build them with or without weights, classify an image; and what every
tool does first (register the modules, load the config, build the model without pretrained weights)."""

from .build import build_model_without_pretrained, train_image_size
from .inference import inference_model
from .model_zoo import ModelHub, ModelInfo, get_model, list_models
from .setup_env import load_tool_config, register_all_modules

__all__ = [
    'ModelHub',
    'ModelInfo',
    'build_model_without_pretrained',
    'get_model',
    'inference_model',
    'list_models',
    'load_tool_config',
    'register_all_modules',
    'train_image_size',
]

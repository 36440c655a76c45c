"""Parameters and FLOPs of a config's model, behind ``tools/analysis_tools/get_flops.py``.

The FLOPs are those of the forward the model really runs, counted with ``torch.utils.flop_counter.FlopCounterMode``
(with :data:`~mimlab.analysis.flops.EXTRA_FLOP_FORMULAS`) on a synthetic batch built from the config
(:func:`~mimlab.analysis.step_timing.synthetic_batch_for`, masks and labels included):

- a pretraining algorithm (MAE, PixMIM, SimMIM, A2MIM, MixMIM): its training forward
  ``model(inputs, data_samples, mode='loss')``, masking included (MAE's encoder sees the visible patches only);
  ``encoder_flops`` adds the plain encoder on the whole image (``mode='tensor'``, what mmpretrain's get_flops counts);
- a classifier (linear probe, fine-tuning): its inference forward ``mode='predict'``, backbone + neck + head, in eval
  mode (``mode='tensor'`` is the same forward without the softmax, as in mmpretrain).

Counted are matmuls, convolutions and attention at 2 FLOPs per multiply-add (FLOPs = 2 x MACs); elementwise ops and
norms are not. mmcv's, fvcore's and mmpretrain's get_flops print MACs under the name "FLOPs".
"""

import copy
import inspect

import torch
from torch.utils.flop_counter import FlopCounterMode

from mimlab.apis import build_model_without_pretrained, train_image_size

from .flops import EXTRA_FLOP_FORMULAS, count_train_flops
from .step_timing import synthetic_batch_for


def config_at_image_size(cfg, image_size: tuple[int, int]):
    """A copy of ``cfg`` built for ``image_size`` = (H, W): ``img_size`` of the backbone and the target generator
    where their classes take one (the position table, MAE's patch count and PixMIM's filter follow it), and
    ``input_size`` of the train pipeline's mask generators (square images only).

    Raises:
        ValueError: H != W with a mask generator in the pipeline.
    """
    from mimlab.registry import MODELS

    h, w = image_size
    cfg = copy.deepcopy(cfg)
    for key in ('backbone', 'target_generator'):
        sub = cfg.model.get(key)
        if not isinstance(sub, dict):
            continue
        cls = MODELS.get(sub['type']) if isinstance(sub['type'], str) else sub['type']
        if cls is not None and _takes_argument(cls, 'img_size'):
            sub['img_size'] = h if h == w else (h, w)
    pipeline = ((cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    for t in pipeline:
        if isinstance(t, dict) and str(t.get('type', '')).endswith('MaskGenerator') and 'input_size' in t:
            if h != w:
                raise ValueError(f'{t["type"]} draws masks for square images: give one size, not {h} x {w}')
            t['input_size'] = h
    return cfg


def _takes_argument(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` accepts ``name``, following ``**kwargs`` handed on to a base class."""
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        if name in params:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def model_complexity(cfg, image_size: tuple[int, int] | None = None, batch_size: int = 2) -> dict:
    """Parameters and per-image FLOPs of ``cfg``'s model (built on the CPU without pretrained weights).

    Args:
        cfg: An mmengine ``Config`` with ``model`` (and the train pipeline for the image size and masks).
        image_size: (H, W) to build and run the model at; default the size the config trains at
            (:func:`~mimlab.apis.train_image_size`).
        batch_size: Images per counted batch (the FLOPs are divided by it). At least 2: a BatchNorm neck in train
            mode needs more than one value per channel.

    Returns:
        A dict: ``model`` (class name), ``kind`` ('pretraining' or 'classifier'), ``forward_mode``, ``input_shape``
        (C, H, W), ``image_size_from`` ('config' or 'argument'), ``params`` and ``trainable_params``,
        ``forward_flops`` and ``train_flops`` (fwd + bwd, :func:`~mimlab.analysis.flops.count_train_flops`) per image,
        and for pretraining algorithms ``encoder_flops`` per image.
    """
    from mimlab.models.algorithms import BaseAlgorithm, ImageClassifier

    if batch_size < 2:
        raise ValueError(f'batch_size must be at least 2, got {batch_size}')
    if image_size is not None:
        cfg = config_at_image_size(cfg, image_size)
    try:
        model = build_model_without_pretrained(cfg)
    except (ValueError, RuntimeError) as e:
        if image_size is None:
            raise
        h, w = image_size
        raise ValueError(f'{cfg.model.get("type")} could not be built for {h} x {w} images: {e}') from e
    if isinstance(model, BaseAlgorithm):
        kind, mode = 'pretraining', 'loss'
    elif isinstance(model, ImageClassifier):
        kind, mode = 'classifier', 'predict'
    else:
        raise TypeError(f'expected a pretraining algorithm or an ImageClassifier, got {type(model).__name__}')
    h, w = image_size or train_image_size(cfg, model)
    batch = synthetic_batch_for(cfg, model, batch_size, image_size=(h, w))
    data = model.data_preprocessor(batch, True)
    inputs, samples = data['inputs'], data['data_samples']  # (B, 3, H, W) normalised

    model.train()  # also re-applies frozen stages, so requires_grad is final
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = dict(
        model=type(model).__name__,
        kind=kind,
        forward_mode=mode,
        input_shape=(int(inputs.shape[1]), h, w),
        image_size_from='config' if image_size is None else 'argument',
        batch_size=batch_size,
        params=params,
        trainable_params=trainable,
    )
    if kind == 'classifier':
        model.eval()
        with torch.no_grad(), _counter() as counter:
            model(inputs, copy.deepcopy(samples), mode='predict')
        model.train()
    else:
        with _counter() as counter:
            model(inputs, samples, mode='loss')
    result['forward_flops'] = counter.get_total_flops() / batch_size
    train_step = count_train_flops(lambda: model.parse_losses(model(inputs, samples, mode='loss'))[0])
    result['train_flops'] = train_step / batch_size
    model.zero_grad(set_to_none=True)
    if kind == 'pretraining':
        model.eval()
        with torch.no_grad(), _counter() as counter:
            model(inputs, mode='tensor')
        result['encoder_flops'] = counter.get_total_flops() / batch_size
    return result


def _counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)


def _gflops(flops: float) -> str:
    return f'{flops / 1e9:.4g} GFLOPs/image'


def format_complexity(result: dict) -> str:
    """The report ``tools/analysis_tools/get_flops.py`` prints."""
    c, h, w = result['input_shape']
    source = 'the size the config trains at' if result['image_size_from'] == 'config' else '--shape'
    if result['kind'] == 'pretraining':
        forward = "training forward: model(inputs, data_samples, mode='loss'), masking included"
    else:
        forward = "inference forward: mode='predict', backbone + neck + head"
    lines = [
        f'model       {result["model"]} ({result["kind"]}), input {c} x {h} x {w} ({source})',
        f'params      {result["params"] / 1e6:.4g} M (trainable {result["trainable_params"] / 1e6:.4g} M)',
        f'forward     {_gflops(result["forward_flops"])}  {forward}',
        f'train step  {_gflops(result["train_flops"])}  forward + backward of the training loss',
    ]
    if 'encoder_flops' in result:
        lines.append(
            f'encoder     {_gflops(result["encoder_flops"])}  plain encoder on the whole image '
            "(mode='tensor', what mmpretrain's get_flops runs)"
        )
    lines += [
        'FLOPs = 2 x MACs (a multiply-add is 2 FLOPs); matmuls, convolutions and attention are counted, elementwise',
        "ops and norms are not. mmcv's / fvcore's / mmpretrain's get_flops print MACs under the name \"FLOPs\":",
        'halve these numbers to compare.',
    ]
    return '\n'.join(lines)

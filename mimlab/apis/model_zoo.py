"""The model zoo: OpenMMLab model-index metafiles -> model names, configs, weights, and built models.

``model-index.yml`` at the repository root imports one ``configs/<algo>/metafile.yml`` per algorithm. Each model
entry names its config (a path under ``configs/``), its published results and, where a release exists, its weights
URL. :class:`ModelHub` parses them once; :func:`list_models` and :func:`get_model` use the hub of this checkout.
"""

import copy
import difflib
import fnmatch
import logging
import os.path as osp
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from mmengine.config import Config
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INDEX = REPO_ROOT / 'model-index.yml'


@dataclass(frozen=True)
class ModelInfo:
    """One ``Models:`` entry of a metafile.

    Attributes:
        name: Unique model name.
        collection: ``In Collection`` (the algorithm).
        config: Absolute path of the config file.
        weights: Download URL (or local path) of the released checkpoint; None when nothing was released.
        results: ``Results`` list (``Task``, ``Dataset``, ``Metrics``); empty for pretraining checkpoints.
        metadata: ``Metadata`` mapping (``Epochs``, ``Batch Size``, ``FLOPs``, ``Parameters``, ...).
        downstream: Names of the entries evaluated from this one.
        metafile: The metafile the entry comes from.
    """

    name: str
    collection: str
    config: str
    weights: str | None = None
    results: tuple = ()
    metadata: dict = field(default_factory=dict)
    downstream: tuple = ()
    metafile: str = ''

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(r['Task'] for r in self.results)


def _read_yaml(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f'{what} {path} does not exist')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f'{what} {path} is not valid YAML: {e}') from e
    if not isinstance(data, dict):
        raise ValueError(f'{what} {path} must hold a mapping, found {type(data).__name__}')
    return data


class ModelHub:
    """The parsed model index: names -> :class:`ModelInfo`.

    Args:
        index_file: ``model-index.yml`` whose ``Import:`` lists metafiles; metafile and config paths are relative to
            the folder that holds it.

    Raises:
        FileNotFoundError: naming the index or a metafile that is missing.
        ValueError: naming the metafile and entry for a duplicate name or a missing ``Name``/``Config``/
            ``In Collection``.
    """

    def __init__(self, index_file: str | Path = DEFAULT_INDEX):
        self.index_file = Path(index_file).resolve()
        self.root = self.index_file.parent
        imports = _read_yaml(self.index_file, 'model index').get('Import') or []
        self.models: dict[str, ModelInfo] = {}
        for rel in imports:
            self._add_metafile(self.root / rel)

    def _add_metafile(self, path: Path) -> None:
        meta = _read_yaml(path, 'metafile')
        collections = {c['Name'] for c in meta.get('Collections') or []}
        for i, entry in enumerate(meta.get('Models') or []):
            missing = [k for k in ('Name', 'In Collection', 'Config') if not entry.get(k)]
            if missing:
                raise ValueError(f'{path}: Models[{i}] ({entry.get("Name", "no name")}) lacks {missing}')
            name = entry['Name']
            if name in self.models:
                raise ValueError(f'{path}: model name {name!r} is also defined in {self.models[name].metafile}')
            if entry['In Collection'] not in collections:
                raise ValueError(f'{path}: {name} is in collection {entry["In Collection"]!r}, not in {collections}')
            self.models[name] = ModelInfo(
                name=name,
                collection=entry['In Collection'],
                config=str(self.root / entry['Config']),
                weights=entry.get('Weights') or None,
                results=tuple(entry.get('Results') or ()),
                metadata=dict(entry.get('Metadata') or {}),
                downstream=tuple(entry.get('Downstream') or ()),
                metafile=str(path),
            )

    # ------------------------------------------------------------------ lookup
    def list_models(self, pattern: str | None = None, task: str | None = None) -> list[str]:
        """Sorted model names.

        Args:
            pattern: ``fnmatch`` pattern on the name, e.g. ``'*pixmim*'``; None for all.
            task: Keep the models with a result of this task (e.g. ``'Image Classification'``); ``'null'`` keeps the
                pretraining checkpoints, which have no results (mmpretrain's convention).
        """
        names = list(self.models)
        if pattern is not None:
            names = fnmatch.filter(names, pattern)
        if task is not None:
            names = [
                n for n in names if (task in self.models[n].tasks) or (task == 'null' and not self.models[n].results)
            ]
        return sorted(names)

    def get(self, name: str) -> ModelInfo:
        """The entry called ``name``.

        Raises:
            ValueError: for an unknown name, listing the closest names.
        """
        if name in self.models:
            return self.models[name]
        close = difflib.get_close_matches(name, list(self.models), n=5, cutoff=0.6)
        hint = f'; did you mean {", ".join(close)}?' if close else ''
        raise ValueError(
            f'unknown model {name!r} in {self.index_file}{hint} (list_models() lists all {len(self.models)} names)'
        )

    def load_config(self, name_or_config: 'str | Path | Config') -> tuple[Config, ModelInfo | None]:
        """A config from a model name, a config file or a :class:`Config`, with the model's entry when named."""
        if isinstance(name_or_config, Config):
            return copy.deepcopy(name_or_config), None
        name_or_config = str(name_or_config)
        if name_or_config.endswith('.py') and name_or_config not in self.models:
            if not osp.isfile(name_or_config):
                raise FileNotFoundError(f'config file {name_or_config} does not exist')
            return Config.fromfile(name_or_config), None
        info = self.get(name_or_config)
        if not osp.isfile(info.config):
            raise FileNotFoundError(f'{info.name}: its config {info.config} (from {info.metafile}) does not exist')
        return Config.fromfile(info.config), info

    def to_markdown(self) -> str:
        """Markdown tables of the zoo, one section per collection: pretraining checkpoints, then evaluations."""
        upstream = {down: info.name for info in self.models.values() for down in info.downstream}
        sections = []
        for collection in dict.fromkeys(info.collection for info in self.models.values()):  # metafile order
            infos = [info for info in self.models.values() if info.collection == collection]
            lines = [
                f'### {collection}',
                '',
                '| pretraining checkpoint | epochs | batch | params (M) | FLOPs (G) | config | weights |',
                '|---|---|---|---|---|---|---|',
            ]
            for info in (i for i in infos if not i.results):
                lines.append(f'| `{info.name}` | {self._row(info)} |')
            evaluations = [i for i in infos if i.results]
            if evaluations:
                lines += [
                    '',
                    '| evaluation | pretrained from | epochs | batch | params (M) | FLOPs (G) | config | weights '
                    '| top-1 |',
                    '|---|---|---|---|---|---|---|---|---|',
                ]
            for info in evaluations:
                top1 = info.results[0]['Metrics']['Top 1 Accuracy']
                source = f'`{upstream[info.name]}`' if info.name in upstream else '- (converted official weights)'
                lines.append(f'| `{info.name}` | {source} | {self._row(info)} | {top1} |')
            sections.append('\n'.join(lines))
        return '\n\n'.join(sections) + '\n'

    def _row(self, info: ModelInfo) -> str:
        meta = info.metadata
        params = f'{meta["Parameters"] / 1e6:.2f}' if 'Parameters' in meta else '-'
        flops = f'{meta["FLOPs"] / 1e9:.2f}' if 'FLOPs' in meta else '-'
        config = Path(info.config).resolve()
        config = config.relative_to(self.root).as_posix() if config.is_relative_to(self.root) else str(config)
        weights = f'[model]({info.weights})' if info.weights else '-'
        return (
            f'{meta.get("Epochs", "-")} | {meta.get("Batch Size", "-")} | {params} | {flops} | `{config}` | {weights}'
        )

    # ------------------------------------------------------------------- build
    def get_model(
        self,
        name_or_config: 'str | Path | Config',
        pretrained: bool | str = False,
        device: str | torch.device = 'cpu',
        **cfg_overrides,
    ) -> nn.Module:
        """Build a model of the zoo (or of any config) through mimlab's registries; see :func:`get_model`."""
        from mimlab.registry import MODELS
        from mimlab.utils.checkpoint import load_model_weights

        from .setup_env import register_all_modules

        register_all_modules(init_default_scope=False)
        cfg, info = self.load_config(name_or_config)
        if pretrained is True and (info is None or info.weights is None):
            raise ValueError(
                'pretrained=True needs a model name of the zoo; pass a checkpoint path to load weights into a config'
                if info is None
                else f'{info.name} has no released weights in {info.metafile}; pass pretrained=PATH to load a local '
                'checkpoint'
            )
        if cfg_overrides:
            cfg.merge_from_dict({f'model.{k}': v for k, v in cfg_overrides.items()})
        model_cfg = cfg.model.to_dict()
        if 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
            model_cfg['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
        # the checkpoint brings every weight, and an empty 'Pretrained' init_cfg (filled in by the benchmark
        # launchers) would fail: drop those, keep real ones for a randomly initialised model
        _drop_pretrained_init_cfgs(model_cfg, all_of_them=bool(pretrained))
        model = MODELS.build(model_cfg)

        if pretrained is True:
            load_weights_from_url(model, info.weights, layout=info.metadata.get('Weights Layout'))
        elif pretrained:
            if not osp.isfile(str(pretrained)):
                raise FileNotFoundError(f'checkpoint {pretrained} does not exist')
            load_model_weights(model, str(pretrained))
        else:
            _init_weights_quietly(model)

        model.cfg = cfg  # the test pipeline for inference_model
        model.dataset_meta = _dataset_meta(cfg)
        return model.to(device).eval()


def _drop_pretrained_init_cfgs(cfg, all_of_them: bool) -> None:
    """Remove ``init_cfg=dict(type='Pretrained', ...)`` (all, or those with an empty checkpoint), in place."""
    if isinstance(cfg, list):
        for c in cfg:
            _drop_pretrained_init_cfgs(c, all_of_them)
        return
    if not isinstance(cfg, dict):
        return
    init = cfg.get('init_cfg')
    if init is not None:

        def keep(c) -> bool:
            return not (
                isinstance(c, dict) and c.get('type') == 'Pretrained' and (all_of_them or not c.get('checkpoint'))
            )

        if isinstance(init, list):
            cfg['init_cfg'] = [c for c in init if keep(c)] or None
        elif not keep(init):
            cfg['init_cfg'] = None
    for key, value in cfg.items():
        if key != 'init_cfg':
            _drop_pretrained_init_cfgs(value, all_of_them)


def _init_weights_quietly(model: nn.Module) -> None:
    """``model.init_weights()`` without mmengine's per-parameter report (hundreds of INFO lines for a ViT-B)."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def load_weights_from_url(model: nn.Module, url: str, layout: str | None = None) -> None:
    """Download (cached in torch hub's ``checkpoints/`` folder) and strictly load a checkpoint; a local path works too.

    ``layout`` names the key layout of a checkpoint published outside OpenMMLab (a metafile entry's
    ``Weights Layout``, e.g. 'openmixup-a2mim' or 'official-mixmim'): it is converted with
    :func:`mimlab.converters.auto.import_checkpoint` before loading.

    Every file is unpickled weights-only, with mimlab's allow-list of the few mmengine/numpy types in mmengine
    checkpoints (see :mod:`mimlab.utils.checkpoint`). Local paths and mmengine's other schemes go through
    :class:`mmengine.runner.CheckpointLoader`; http(s) URLs go to ``torch.hub.load_state_dict_from_url`` directly,
    because mmengine's http scheme calls it with its default ``weights_only=False``, which would run any code pickled
    into a downloaded file.

    Raises:
        RuntimeError: naming the URL when it cannot be downloaded or unpickled, or does not fit ``model``.
    """
    from mmengine.runner import CheckpointLoader

    from mimlab.utils.checkpoint import allow_mmengine_checkpoint_types, state_dict_of

    try:
        # not `with torch.serialization.safe_globals(...)`, whose exit also drops the types from the process-wide
        # allow-list: a later resume in the same process would then fail to unpickle its own checkpoint
        allow_mmengine_checkpoint_types()
        if url.startswith(('http://', 'https://')):
            checkpoint = torch.hub.load_state_dict_from_url(url, map_location='cpu', weights_only=True)
        else:
            checkpoint = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    except Exception as e:  # noqa: BLE001 - re-raised with the URL
        raise RuntimeError(f'cannot load checkpoint {url}: {type(e).__name__}: {e}') from e
    state = state_dict_of(checkpoint, url)
    if layout is not None:
        from mimlab.converters.auto import import_checkpoint

        state = import_checkpoint(state, layout)[1]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise RuntimeError(f'{url} does not fit {type(model).__name__}: {e}') from e


def _dataset_meta(cfg: Config) -> dict:
    """``metainfo`` (e.g. ``classes``) of the config's test dataset, built lazily (no files are listed or read)."""
    from mimlab.registry import DATASETS

    dataset_cfg = (cfg.get('test_dataloader') or {}).get('dataset')
    if not dataset_cfg:
        return {}
    dataset_cfg = copy.deepcopy(dataset_cfg.to_dict() if hasattr(dataset_cfg, 'to_dict') else dict(dataset_cfg))
    dataset_cfg.update(pipeline=[], lazy_init=True)
    try:
        return dict(DATASETS.build(dataset_cfg).metainfo)
    except Exception as e:  # noqa: BLE001 - the class names are optional for inference
        warnings.warn(f'no class names: building the test dataset {dataset_cfg.get("type")} lazily failed: {e}')
        return {}


_HUB: ModelHub | None = None


def default_hub() -> ModelHub:
    """The hub of this checkout's ``model-index.yml``, parsed on first use."""
    global _HUB
    if _HUB is None:
        _HUB = ModelHub(DEFAULT_INDEX)
    return _HUB


def list_models(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Sorted names of the zoo's models.

    Args:
        pattern: ``fnmatch`` pattern on the name (``'*pixmim*'``, ``'mae_vit-base*'``); None for all.
        task: Keep models with a result of this task (``'Image Classification'``); ``'null'`` keeps the
            pretraining checkpoints (no results).

    Returns:
        The matching names, sorted.
    """
    return default_hub().list_models(pattern, task)


def get_model(
    name_or_config: 'str | Path | Config',
    pretrained: bool | str = False,
    device: str | torch.device = 'cpu',
    **cfg_overrides,
) -> nn.Module:
    """Build a model of the zoo, or of any config, through mimlab's registries.

    Args:
        name_or_config: A name of :func:`list_models`, a config file path or a :class:`mmengine.Config`.
        pretrained: False: random init (``init_weights()``). True: load the entry's released weights (its metafile
            ``Weights`` URL, downloaded and cached by mmengine). A path: load that local checkpoint strictly.
        device: Where the model goes.
        **cfg_overrides: Merged into the config's ``model`` (nested dicts merge key by key), e.g.
            ``backbone=dict(arch='test', img_size=32)`` or ``head=dict(num_classes=10)``.

    Returns:
        The model in eval mode, with ``model.cfg`` (the full config) and ``model.dataset_meta`` (the test dataset's
        metainfo, e.g. ``classes``, or empty) set for :func:`~mimlab.apis.inference_model`.

    Raises:
        ValueError: for an unknown name (listing close matches) or ``pretrained=True`` without released weights.
        FileNotFoundError: for a missing config or checkpoint file.
        RuntimeError: naming the checkpoint when it is unreadable or does not fit the model (missing / unexpected
            keys, shape mismatches).
    """
    return default_hub().get_model(name_or_config, pretrained=pretrained, device=device, **cfg_overrides)

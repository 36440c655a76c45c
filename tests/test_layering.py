"""mimlab's layers: imports run one way, and every module imports on its own (no import circle).

Imports run down this diagram, never up or sideways (``tools/`` sits on top and may import anything)::

    analysis                                      back-ends of the analysis tools (timing, FLOPs, schedules, logs)
       |
    apis                                          model zoo, inference; register_all_modules, load_tool_config,
       |                                          build_model_without_pretrained: what every tool does first
    engine                                        runner pieces: hooks, loops, optimizers, launch
       |
    converters                                    state-dict key maps (auto-detection builds models)
       |
    models    datasets    evaluation    visualization
       |
    models.layers   structures   registry   utils   version   _jpeg (compiled)      the ground floor

The package's own ``__init__`` (``mimlab``) only offers ``mimlab.get_model`` & co. from apis, imported lazily.
:data:`ALLOWED` writes the diagram out edge by edge; the static test reads every import in every file (module level
and inside functions, relative ones resolved) and checks it against the table.
"""

import ast
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'mimlab'

GROUND = {'models.layers', 'structures', 'registry', 'utils', 'version', '_jpeg'}
COMPONENTS = {'models', 'datasets', 'evaluation', 'visualization'}

# part of mimlab -> the parts it may import. A part is a top-level subpackage or module of mimlab, except that
# mimlab.models.layers is a part of its own (the ground floor the backbones stand on).
ALLOWED: dict[str, set[str]] = {
    'mimlab': {'apis', 'version'},
    'analysis': {'apis', 'engine', 'converters', *COMPONENTS, *GROUND},
    'apis': {'engine', 'converters', *COMPONENTS, *GROUND},
    'engine': {'converters', *COMPONENTS, *GROUND},
    'converters': {*COMPONENTS, *GROUND},
    'models': set(GROUND),
    'datasets': set(GROUND),
    'evaluation': set(GROUND),
    'visualization': set(GROUND),
    # the ground floor: nothing above it, and inside it only these
    'models.layers': {'registry', 'utils'},
    'structures': {'utils'},
    'registry': set(),
    'utils': {'version', '_jpeg'},
    'version': set(),
    '_jpeg': set(),
}


# ------------------------------------------------------------------------------------------------- the modules


def _module_files() -> dict[str, Path]:
    """Every module of mimlab -> its file (``__init__.py`` for a package)."""
    out = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(ROOT).with_suffix('').parts
        out['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return out


def _extension_modules() -> list[str]:
    """The compiled extensions that are built (``mimlab._jpeg`` is optional)."""
    return sorted(
        f'mimlab.{path.name.split(".")[0]}'
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        for path in PACKAGE.glob(f'*{suffix}')
    )


def _part(module: str) -> str:
    """'mimlab.models.layers.embed' -> 'models.layers'; 'mimlab.engine.hooks' -> 'engine'; 'mimlab' -> 'mimlab'."""
    parts = module.split('.')
    if len(parts) == 1:
        return 'mimlab'
    if parts[1:3] == ['models', 'layers']:
        return 'models.layers'
    return parts[1]


# ------------------------------------------------------------------------------------------ the static graph


def _imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported mimlab module, line) of every import statement in ``path``, wherever it stands."""
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from ..registry import Y
                base = '.'.join(package.split('.')[: len(package.split('.')) - node.level + 1])
                base = f'{base}.{node.module}' if node.module else base
            else:
                base = node.module
            for alias in node.names:  # `from mimlab.models import layers` imports the submodule
                sub = f'{base}.{alias.name}'
                found.append((sub if sub in known else base, node.lineno))
    return [(name, line) for name, line in found if name == 'mimlab' or name.startswith('mimlab.')]


def _edges() -> dict[tuple[str, str], list[str]]:
    """(part, imported part) -> where (``file:line``), for every import between two different parts."""
    files = _module_files()
    known = set(files) | {'mimlab._jpeg'}
    edges: dict[tuple[str, str], list[str]] = {}
    for module, path in files.items():
        for name, line in _imports(module, path, known):
            src, dst = _part(module), _part(name)
            if src != dst:
                edges.setdefault((src, dst), []).append(f'{path.relative_to(ROOT)}:{line}')
    return edges


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_table_is_a_layer_diagram():
    """The allowed edges themselves have no cycle, and every part of mimlab has a row."""
    assert _cycle(ALLOWED) is None, _cycle(ALLOWED)
    parts = {_part(m) for m in _module_files()}
    assert parts <= set(ALLOWED), f'add {sorted(parts - set(ALLOWED))} to ALLOWED, with what they may import'


def test_imports_run_down_the_layers():
    """Every import between two parts of mimlab, module-level or inside a function, is an edge of the table."""
    bad = [
        f'{src} -> {dst}: {", ".join(where)}'
        for (src, dst), where in sorted(_edges().items())
        if dst not in ALLOWED[src]
    ]
    assert not bad, 'imports against the layers (tests/test_layering.py, ALLOWED):\n' + '\n'.join(bad)


def test_the_import_graph_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for src, dst in _edges():
        graph.setdefault(src, set()).add(dst)
    assert _cycle(graph) is None, f'import cycle between parts of mimlab: {" -> ".join(_cycle(graph))}'


def test_utils_imports_nothing_of_mimlab_above_it():
    above = {'engine', 'models', 'models.layers', 'datasets', 'visualization', 'apis', 'analysis', 'mimlab'}
    bad = {dst: where for (src, dst), where in _edges().items() if src == 'utils' and dst in above}
    assert not bad, bad


def test_the_library_does_not_import_mmpretrain():
    """mmpretrain is a test-time reference (tests/, tools/analysis_tools/mmpretrain_reference.py), never a
    dependency of mimlab."""
    bad = []
    for path in _module_files().values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ''] if isinstance(node, ast.ImportFrom) and not node.level else []
            bad += [f'{path.relative_to(ROOT)}:{node.lineno}' for n in names if n.split('.')[0] == 'mmpretrain']
    assert not bad, bad


# ------------------------------------------------------------------------------------------ each module alone

# Run in a fresh interpreter: import the third-party libraries every mimlab module stands on, then fork one child
# per mimlab module that imports that module alone. A child starts with no mimlab module loaded, exactly like
# `python -c "import mimlab.x.y"`, so an import circle fails it; the libraries are imported once, not 90 times.
_IMPORT_EACH = r"""
import importlib, json, os, sys, traceback

for lib in ('numpy', 'torch', 'torchvision', 'cv2', 'PIL.Image', 'mmengine.runner', 'mmengine.model',
            'mmcv.transforms', 'timm.layers'):
    importlib.import_module(lib)
assert not [m for m in sys.modules if m.split('.')[0] == 'mimlab'], 'a library imported mimlab'

def run(name):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc()[-16000:].encode())
            code = 1
        os._exit(code)
    os.close(write)
    return pid, read

failures, running, todo = {}, {}, list(sys.argv[2:])
while todo or running:
    while todo and len(running) < int(sys.argv[1]):
        name = todo.pop(0)
        pid, read = run(name)
        running[pid] = (name, read)
    pid, status = os.wait()
    name, read = running.pop(pid)
    with os.fdopen(read, 'rb') as f:
        message = f.read().decode()
    if status:
        failures[name] = message or f'exit status {status}'
print(json.dumps(failures))
"""


def test_every_module_imports_on_its_own():
    modules = sorted(_module_files()) + _extension_modules()
    workers = str(min(4, os.cpu_count() or 1))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    out = subprocess.run(
        [sys.executable, '-c', _IMPORT_EACH, workers, *modules],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    failures = json.loads(out.stdout.strip().splitlines()[-1])
    assert not failures, '\n\n'.join(f'import {name} alone:\n{tb}' for name, tb in failures.items())

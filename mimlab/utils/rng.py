"""This process's random number generator states (torch CPU and CUDA, numpy, Python) as plain data, and the
per-sample seeding of data pipelines.

The states are tensors, ints and floats only, so a checkpoint holding them loads with ``torch.load(weights_only=True)``.
:class:`~mimlab.engine.hooks.TrainStateHook` saves them with each checkpoint; mimlab's train loops restore them on
resume.

:func:`seed_sample` seeds the three CPU generators that data transforms draw from (Python's ``random``, numpy's global
generator, torch's CPU default generator) from ``(seed, epoch, index)``: a sample's augmentations are then a function
of those three numbers alone, whichever process or DataLoader worker runs its pipeline, and however many ran before
it there (:class:`~mimlab.datasets.ExactResumeSampler` uses it).
"""

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ['get_rng_state', 'set_rng_state', 'seed_sample', 'cpu_rng_isolated']


def get_rng_state() -> dict:
    """This process's RNG states, as tensors, ints and floats only (weights-only loadable)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(name=name, keys=torch.from_numpy(keys.astype(np.int64)), pos=pos, has_gauss=has_gauss, gauss=gauss),
        python=random.getstate(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state['torch'])
    n = state['numpy']
    np.random.set_state((n['name'], n['keys'].numpy().astype(np.uint32), n['pos'], n['has_gauss'], n['gauss']))
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def seed_sample(seed: int, epoch: int, index: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch's CPU generator from ``(seed, epoch, index)``.

    The seeds are words of one ``numpy.random.SeedSequence`` over the triple, so neighbouring indices or epochs give
    unrelated streams: 64 bits for Python and torch, 32 for numpy (seeding its legacy generator from an int takes
    3 us, from an array 17 us; 16-22 us per sample in all on the CPU this was written on). CUDA generators are left
    alone (pipelines run on the CPU; a main process that runs them keeps its CUDA stream).

    Args:
        seed: The run's data seed (non-negative).
        epoch: The epoch the sample is drawn in.
        index: The sample's index in the dataset.
    """
    w = [int(x) for x in np.random.SeedSequence((seed, epoch, index)).generate_state(5)]  # 5 x uint32
    random.seed(w[0] << 32 | w[1])
    np.random.seed(w[2])
    torch.default_generator.manual_seed(w[3] << 32 | w[4])


@contextmanager
def cpu_rng_isolated() -> Iterator[None]:
    """Run a block with the CPU generators (Python, numpy, torch CPU) restored to their entry states afterwards."""
    py, np_state, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(th)

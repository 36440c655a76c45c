"""Process-group set-up that also works on machines without a GPU.

mmengine's ``pytorch`` and ``slurm`` launchers call ``torch.cuda.set_device`` and die on CPU-only machines. mimlab
initialises the process group itself (gloo without CUDA, nccl with it) before the runner is built; the runner then
finds an initialised group and skips its own set-up.
"""

import os
import subprocess

import torch
import torch.distributed as dist


def _first_host(node_list: str) -> str:
    """The first host of a Slurm node list (``node[01-04]`` -> ``node01``), the rendezvous address of the job."""
    try:
        hosts = subprocess.run(
            ['scontrol', 'show', 'hostnames', node_list], capture_output=True, text=True, check=False
        ).stdout.split()
    except OSError:  # no scontrol on this host's PATH
        hosts = []
    if hosts:
        return hosts[0]
    if int(os.environ.get('SLURM_NNODES', '1')) == 1:
        return '127.0.0.1'  # every task is on this node
    # a guessed address would leave every task waiting for a rendezvous that never happens
    raise RuntimeError(
        f'cannot resolve the first host of SLURM_NODELIST={node_list!r} (scontrol failed); set MASTER_ADDR'
    )


def _slurm_env(port: int | None) -> None:
    """Translate Slurm's task variables into torch.distributed's env:// variables."""
    for var in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        if var not in os.environ:
            raise RuntimeError(f'--launcher slurm needs the environment variable {var}; start the job with srun')
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = _first_host(node_list)
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    elif 'MASTER_PORT' not in os.environ:
        # one port per job, so that two jobs on one node do not collide
        os.environ['MASTER_PORT'] = str(29500 + int(os.environ.get('SLURM_JOB_ID', '0')) % 1000)
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['RANK'] = str(proc_id)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', str(proc_id % max(torch.cuda.device_count(), 1)))
    os.environ['LOCAL_WORLD_SIZE'] = os.environ.get('SLURM_NTASKS_PER_NODE', str(ntasks))


def init_dist(launcher: str, backend: str | None = None, port: int | None = None, **kwargs) -> None:
    """Initialise the default process group for ``launcher`` ('pytorch' or 'slurm').

    Args:
        launcher: 'pytorch' (torchrun's env:// variables) or 'slurm' (srun's ``SLURM_*`` variables).
        backend: 'nccl' or 'gloo'; ``None`` picks nccl when CUDA is available and gloo otherwise. A requested nccl
            on a machine without CUDA falls back to gloo.
        port: master port for 'slurm' (default: ``MASTER_PORT`` or one derived from the job id).
    """
    if dist.is_available() and dist.is_initialized():
        return
    if launcher == 'slurm':
        _slurm_env(port)
    elif launcher != 'pytorch':
        raise ValueError(f'unsupported launcher {launcher!r}; use "pytorch" or "slurm"')
    for var in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        if var not in os.environ:
            raise RuntimeError(
                f'--launcher {launcher} needs the environment variable {var}; start with torchrun or srun'
            )
    cuda = torch.cuda.is_available()
    if backend is None or (backend == 'nccl' and not cuda):
        backend = 'nccl' if cuda else 'gloo'
    if cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    dist.init_process_group(backend=backend, **kwargs)


def finish_dist(wait: bool = True) -> None:
    """Tear the default process group down before the interpreter exits; a no-op when none is initialised.

    A process that exits with a live gloo group can die of SIGABRT ("terminate called without an active
    exception") while the interpreter finalises: gloo's worker threads still hold work objects whose tensors need
    the GIL. Seen on CI with the rank that finished first while rank 0 was still writing the last checkpoint.

    Args:
        wait: Wait at a barrier first, so that no rank leaves while another still talks to it (``True`` after a
            normal finish; ``False`` on an error path, where a peer may be gone and a barrier could hang).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait:
        dist.barrier()
    dist.destroy_process_group()  # shuts every group's backend down, joining gloo's threads


def launch_rank() -> int:
    """This process's rank in its launch, read from the launcher's environment (torchrun ``RANK``, Slurm
    ``SLURM_PROCID``; 0 for a single process), so that it is known before the process group exists."""
    for var in ('RANK', 'SLURM_PROCID'):
        if os.environ.get(var, '').isdigit():
            return int(os.environ[var])
    return 0

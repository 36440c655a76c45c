default_scope = 'mimlab'

default_hooks = dict(
    runtime_info=dict(type='DeferredRuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # skips non-finite updates, raises after 5 in a row (docs/running_at_scale.md, the NaN playbook)
    nan_guard=dict(type='NonFiniteGuardHook'),
    # logs train/skipped_images when the dataset sets skip_bad_images=True
    skipped_images=dict(type='SkippedImagesHook'),
    # SIGTERM (Slurm preemption, scancel): checkpoint at the next iteration, exit 0; continue with --resume
    preemption=dict(type='PreemptionHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # nccl on GPUs; tools/train.py falls back to gloo on machines without CUDA
    dist_cfg=dict(backend='nccl'),
)

log_processor = dict(window_size=10, custom_cfg=[dict(data_src='', method='mean', window_size='global')])

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False

# one seed per rank (seed + rank), as every published MIM recipe
randomness = dict(seed=0, diff_rank_seed=True)

"""Back-ends of the analysis tools: each tool under ``tools/`` parses its arguments and calls one module here.

========================  ==========================================================================================
module                    what it holds
========================  ==========================================================================================
:mod:`.flops`             FLOPs of a training step: counted (``FlopCounterMode`` plus the kernels it misses), by hand
:mod:`.device`            a measured matmul peak (the MFU denominator), peak memory
:mod:`.step_timing`       ``benchmark.py``: images/s, step time, data wait, MFU; a :class:`~.step_timing.Reference`
:mod:`.pipeline_timing`   ``benchmark_data.py``: images/s per core of data pipelines on JPEG files
:mod:`.complexity`        ``get_flops.py``: parameters and FLOPs of the forward a model really runs
:mod:`.param_schedule`    ``vis_scheduler.py``: lr / momentum / weight decay at every iteration, without training
:mod:`.log_analysis`      ``analyze_logs.py``: curves and iteration times from mmengine's JSON logs
:mod:`.browse`            ``browse_dataset.py``: what a config's pipeline hands the model
========================  ==========================================================================================

Nothing is imported here: ``import mimlab.analysis.flops`` does not pull in the others. The package sits above
:mod:`mimlab.apis` and :mod:`mimlab.engine` and below the tools (``tests/test_layering.py``).
"""

"""A hook that records which samples each training iteration saw (imported by test configs via custom_imports)."""

import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mimlab.registry import HOOKS


@HOOKS.register_module()
class RecordSamplesHook(Hook):
    """Append ``{"iter": n, "samples": [img_path, ...]}`` for every training iteration to ``work_dir/samples.jsonl``
    (rank ``r > 0``: ``samples.rank{r}.jsonl``)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        paths = [s.img_path for s in data_batch['data_samples']]
        rank = get_rank()
        name = 'samples.jsonl' if rank == 0 else f'samples.rank{rank}.jsonl'
        with open(osp.join(runner.work_dir, name), 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter + 1, samples=paths)) + '\n')

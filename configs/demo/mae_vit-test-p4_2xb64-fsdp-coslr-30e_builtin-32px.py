# The demo MAE with FSDP2 sharding: weights, gradients and AdamW state split over the processes (per-block units,
# mimlab.engine.parallel.FullyShardWrapper). Two CPU processes train it with
#   bash tools/dist_train.sh configs/demo/mae_vit-test-p4_2xb64-fsdp-coslr-30e_builtin-32px.py 2
# Checkpoints are sharded (iter_N.pth + iter_N.pth.dcp/); merge one into a single .pth with
#   python tools/model_converters/merge_sharded_checkpoint.py work_dirs/.../epoch_30.pth epoch_30_full.pth
_base_ = ['./mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py']

model_wrapper_cfg = dict(type='FullyShardWrapper')

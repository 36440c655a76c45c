# The RSB-style demo recipe (configs/demo/resnet-test_ft-rsb-1xb64-lamb-coslr-20e_builtin-64px.py: LAMB, BCE on
# Mixup/CutMix targets, RandAugment, weight EMA) for the encoder of
# configs/demo/a2mim_resnet-test-l3_1xb64-coslr-40e_builtin-grey-64px.py, on the same grey-coloured built-in images:
# fine-tuning from that encoder beats random init (docs/a2mim.md, "The CPU demo of the second half"). Two changes:
# 10 epochs, and no weight decay on the classifier's weight. timm's LAMB scales every decayed layer's step to lr x
# the layer's norm, so over 320 iterations the head (init std 0.01) can grow and turn by only ~ the sum of the lr,
# 1.15 (ImageNet A3: about 240): it stays close to its random init (norm 0.51 -> 0.83), and the encoder, random
# or pretrained, has to fit it. Without weight decay LAMB takes plain Adam steps on it.
#   GPUS=1 bash tools/benchmarks/classification/mim_dist_train.sh CONFIG PRETRAIN
_base_ = ['./resnet-test_ft-rsb-1xb64-lamb-coslr-20e_builtin-64px.py']

max_epochs = 10

train_dataloader = dict(dataset=dict(colours='grey'))
val_dataloader = dict(dataset=dict(colours='grey'))
test_dataloader = val_dataloader
optim_wrapper = dict(paramwise_cfg=dict(no_weight_decay=['head.fc.weight']))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))

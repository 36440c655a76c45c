# The A2MIM demo (configs/demo/a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py) as the pretraining half of the
# fine-tuning demo that shows a pretraining gain (docs/a2mim.md, "The CPU demo of the second half"). Three changes,
# each measured there: the built-in images with fixed grey colours (with random colours A2MIM's raw-pixel target
# teaches the stem colour instead of edges, and the fine-tuned encoder loses to random init), the residual branches'
# last BN at 1 instead of 0 (openmixup zeroes it; with one block per stage it stays at 0.03-0.13 after 10 epochs and
# the branches barely train), and 40 epochs instead of 10. About 2.5 minutes on 2 cores.
#   python tools/train.py CONFIG
_base_ = ['./a2mim_resnet-test-l3_1xb64-coslr-10e_builtin-64px.py']

max_epochs = 40

model = dict(backbone=dict(zero_init_residual=False))
train_dataloader = dict(dataset=dict(colours='grey'))
train_cfg = dict(max_epochs=max_epochs)

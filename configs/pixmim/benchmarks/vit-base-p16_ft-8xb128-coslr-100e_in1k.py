# PixMIM's fine-tuning protocol is MAE's (same values in mmselfsup's copy).
_base_ = '../../mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'

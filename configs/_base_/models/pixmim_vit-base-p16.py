# PixMIM (Liu et al. 2023) on MAE ViT-B/16: MAE's model with a low-frequency target, the image's FFT with the
# frequencies outside radius 40 (at 224 px) removed, in place of the raw pixels.
_base_ = ['./mae_vit-base-p16.py']

model = dict(type='PixMIM', target_generator=dict(type='LowFreqTargetGenerator', radius=40, img_size=224))

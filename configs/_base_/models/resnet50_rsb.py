# ResNet-50 classifier of openmixup's RSB fine-tuning recipes (models/r50_rsb_a2.py, r50_rsb_a3.py): SyncBN, global
# average pooling, one Linear layer, binary cross-entropy (sigmoid) summed over the 1000 classes on Mixup (alpha 0.1)
# / CutMix (alpha 1.0) targets, one of the two per batch with equal probability, no label smoothing. The encoder
# loads the pretraining checkpoint given to tools/benchmarks/classification/mim_dist_train.sh (backbone.* keys).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet',
        depth=50,
        out_indices=(3,),
        norm_cfg=dict(type='SyncBN'),
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.'),
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        loss=dict(type='BinaryCrossEntropy', smoothing=0.0, sum_classes=True),
        init_std=0.01,
    ),
    train_cfg=dict(augments=dict(mixup_alpha=0.1, cutmix_alpha=1.0, label_smoothing=0.0, switch_prob=0.5)),
)

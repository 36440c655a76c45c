# k-NN accuracy of a demo MAE checkpoint's encoder on the built-in dataset, no training:
#   python tools/test.py configs/demo/mae_vit-test-p4_knn_builtin-32px.py work_dirs/<run>/epoch_10.pth
_base_ = ['./mae_vit-test-p4_1xb64-coslr-30e_builtin-32px.py']

knn_pipeline = [
    dict(type='ResizeEdge', scale=32, edge='short', interpolation='bicubic'),
    dict(type='PackInputs'),
]
builtin = dict(type='BuiltinDataset', img_size=48, num_classes=10, seed=0, pipeline=knn_pipeline)
knn_loader = dict(
    batch_size=256,
    num_workers=0,
    sampler=dict(type='ExactResumeSampler', shuffle=False),
    collate_fn=dict(type='mimlab.default_collate'),
)
test_dataloader = dict(**knn_loader, dataset=dict(**builtin, split='val', num_samples=1000))
test_cfg = dict(
    type='KNNTestLoop',
    bank_dataloader=dict(**knn_loader, dataset=dict(**builtin, split='train', num_samples=4000)),
    k=20,
    temperature=0.07,
    feature='mean',
)
test_evaluator = []

import torch

from mimlab.models import MIMDataPreprocessor


def test_bgr_to_rgb_and_normalise_exact():
    pre = MIMDataPreprocessor(mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0), to_rgb=True)
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    out = pre(dict(inputs=x, data_samples=None))['inputs']
    assert out.dtype == torch.float32
    rgb = x[:, [2, 1, 0]].float()
    expect = (rgb - torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1)) / torch.tensor([2.0, 4.0, 5.0]).view(1, 3, 1, 1)
    assert torch.equal(out, expect)
    assert torch.allclose(pre.denormalize(out), rgb)


def test_list_input_is_stacked_and_mean_std_not_in_state_dict():
    pre = MIMDataPreprocessor(to_rgb=False)
    imgs = [torch.zeros(3, 4, 4, dtype=torch.uint8), torch.ones(3, 4, 4, dtype=torch.uint8)]
    out = pre(dict(inputs=imgs))['inputs']
    assert out.shape == (2, 3, 4, 4)
    assert len(pre.state_dict()) == 0


def test_masks_move_to_the_device_in_one_copy():
    """SimMIM/A2MIM masks: one stacked (B, h, w) copy, each sample's mask a view of it (not B pageable copies).
    The CPU path is untouched; the 'meta' device stands in for CUDA (pinning is skipped off CUDA)."""
    from mimlab.registry import MODELS
    from mimlab.structures import DataSample, stack_sample_fields

    pre = MODELS.build(dict(type='MIMDataPreprocessor'))
    masks = [torch.randint(0, 2, (6, 6)) for _ in range(3)]
    batch = dict(
        inputs=torch.zeros(3, 3, 24, 24, dtype=torch.uint8), data_samples=[DataSample().set_mask(m) for m in masks]
    )
    out = pre(batch, True)
    assert all(torch.equal(s.mask, m) for s, m in zip(out['data_samples'], masks))
    pre._device = torch.device('meta')
    samples = [DataSample().set_mask(m) for m in masks]
    stack_sample_fields(samples, pre._to_device)
    bases = {id(s.mask._base) for s in samples}
    assert all(s.mask.device.type == 'meta' and s.mask.shape == (6, 6) for s in samples) and len(bases) == 1


def test_samples_move_in_place_one_copy_per_field_and_keep_their_metainfo():
    """Every tensor field (labels, masks) moves as one stacked copy, fields of differing shapes one by one; the
    samples are the same objects afterwards and their metainfo is not copied (mmengine's cast_data deep-copies it per
    sample). The 'meta' device stands in for CUDA."""
    from mimlab.structures import DataSample

    pre = MIMDataPreprocessor().to('meta')
    samples = [DataSample(metainfo=dict(img_path=['/data/a.JPEG'], sample_idx=i)).set_gt_label(i) for i in range(4)]
    paths = [s.img_path for s in samples]  # mutable meta values: kept by identity, not copied
    for i, s in enumerate(samples):
        s.set_field(torch.zeros(i + 1), 'ragged')
    out = pre(dict(inputs=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), data_samples=samples), True)
    assert out['data_samples'] is samples and out['inputs'].device.type == 'meta'
    assert all(s.gt_label.device.type == 'meta' and s.gt_label.shape == (1,) for s in samples)
    assert len({id(s.gt_label._base) for s in samples}) == 1  # views of one (B, 1) device batch
    assert [s.ragged.shape[0] for s in samples] == [1, 2, 3, 4] and samples[3].ragged.device.type == 'meta'
    assert all(s.img_path is p for s, p in zip(samples, paths)) and [s.sample_idx for s in samples] == [0, 1, 2, 3]

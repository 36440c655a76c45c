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
    from mimlab.structures import DataSample

    pre = MODELS.build(dict(type='MIMDataPreprocessor'))
    masks = [torch.randint(0, 2, (6, 6)) for _ in range(3)]
    batch = dict(
        inputs=torch.zeros(3, 3, 24, 24, dtype=torch.uint8), data_samples=[DataSample().set_mask(m) for m in masks]
    )
    out = pre(batch, True)
    assert all(torch.equal(s.mask, m) for s, m in zip(out['data_samples'], masks))
    pre._device = torch.device('meta')
    samples = [DataSample().set_mask(m) for m in masks]
    pre._move_masks(samples)
    bases = {id(s.mask._base) for s in samples}
    assert all(s.mask.device.type == 'meta' and s.mask.shape == (6, 6) for s in samples) and len(bases) == 1

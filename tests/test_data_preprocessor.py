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

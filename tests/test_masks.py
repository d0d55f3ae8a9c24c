import torch

from stems.masks import binary_targets, inference_masks, ratio_targets


def test_soft_masks_sum_to_one_and_binary_is_their_argmax():
    logits = torch.randn(4, 2, 50, 7)
    soft = inference_masks(logits, "soft")
    binary = inference_masks(logits, "binary")
    assert torch.allclose(soft.sum(dim=0), torch.ones(2, 50, 7))
    assert torch.equal(binary.sum(dim=0), torch.ones(2, 50, 7))
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(binary.argmax(dim=0), soft.argmax(dim=0))


def test_targets():
    mags = torch.tensor([[1.0, 0.0], [3.0, 0.5], [0.0, 0.25], [0.0, 0.25]]).reshape(4, 1, 2, 1)
    assert binary_targets(mags)[:, 0, 0, 0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert binary_targets(mags)[:, 0, 1, 0].tolist() == [0.0, 1.0, 0.0, 0.0]
    ratio = ratio_targets(mags)[:, 0, :, 0]
    assert torch.allclose(ratio[:, 0], torch.tensor([0.25, 0.75, 0.0, 0.0]))
    assert torch.allclose(ratio[:, 1], torch.tensor([0.0, 0.5, 0.25, 0.25]))

import numpy as np

from stems.masks import binary_targets, inference_masks, ratio_targets


def test_soft_masks_sum_to_one_and_binary_is_their_argmax():
    logits = np.random.default_rng(0).standard_normal((4, 2, 50, 7)).astype(np.float32) * 5
    soft = inference_masks(logits, "soft")
    binary = inference_masks(logits, "binary")
    np.testing.assert_allclose(soft.sum(axis=0), np.ones((2, 50, 7)), atol=1e-6)
    np.testing.assert_array_equal(binary.sum(axis=0), np.ones((2, 50, 7)))
    assert set(np.unique(binary).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(binary.argmax(axis=0), soft.argmax(axis=0))
    exp = np.exp(logits.astype(np.float64))
    np.testing.assert_allclose(soft, exp / exp.sum(axis=0), rtol=1e-5)  # the softmax, computed plainly


def test_targets():
    mags = np.array([[1.0, 0.0], [3.0, 0.5], [0.0, 0.25], [0.0, 0.25]], dtype=np.float32).reshape(4, 1, 2, 1)
    assert binary_targets(mags)[:, 0, 0, 0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert binary_targets(mags)[:, 0, 1, 0].tolist() == [0.0, 1.0, 0.0, 0.0]
    ratio = ratio_targets(mags)[:, 0, :, 0]
    np.testing.assert_allclose(ratio[:, 0], [0.25, 0.75, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(ratio[:, 1], [0.0, 0.5, 0.25, 0.25], atol=1e-6)

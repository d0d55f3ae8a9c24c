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


def _gate_case():
    """Three stems over two frames of one channel and two bins: stem 2 holds 1e-4 of frame 0's
    energy (-40 dB) and a third of frame 1's."""
    soft = np.array([[[0.6, 0.3], [0.6, 0.3]],   # stem 0: (bins, frames)
                     [[0.39, 0.3], [0.39, 0.3]],
                     [[0.01, 0.4], [0.01, 0.4]]], dtype=np.float32)[:, None]  # (3, 1, 2, 2)
    logits = np.log(soft)
    mix_spec = np.ones((1, 2, 2), dtype=np.complex64)
    return logits, mix_spec


def test_the_silence_gate_gives_a_quiet_stem_nothing_and_the_others_share_its_bins():
    logits, mix_spec = _gate_case()
    gated = inference_masks(logits, "soft", mix_spec, gate_db=-30.0)
    np.testing.assert_allclose(gated[2, ..., 0], 0.0)  # 0.01^2 = -40 dB of the frame's energy
    np.testing.assert_allclose(gated[:2, 0, 0, 0], [0.6 / 0.99, 0.39 / 0.99], rtol=1e-6)  # the softmax of the others
    np.testing.assert_allclose(gated[..., 1], inference_masks(logits, "soft")[..., 1], rtol=1e-6)  # frame 1 untouched
    np.testing.assert_allclose(gated.sum(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(inference_masks(logits, "soft", mix_spec, gate_db=-50.0), inference_masks(logits, "soft"))
    np.testing.assert_array_equal(inference_masks(logits, "soft", mix_spec, gate_db=-np.inf), inference_masks(logits, "soft"))


def test_the_silence_gate_never_gates_a_frames_loudest_stem_and_binary_bins_go_to_the_runner_up():
    logits, mix_spec = _gate_case()
    everything = inference_masks(logits, "soft", mix_spec, gate_db=0.0)  # every stem is below the mix's energy
    np.testing.assert_array_equal(everything[0, ..., 0], 1.0)  # only the loudest is left
    np.testing.assert_array_equal(everything[2, ..., 1], 1.0)
    binary_logits = logits.copy()
    binary_logits[2, 0, 0, 0] = 5.0  # stem 2 wins one bin of frame 0 but holds half its energy: kept
    kept = inference_masks(binary_logits, "binary", mix_spec, gate_db=-30.0)
    assert kept[2, 0, 0, 0] == 1.0
    ranks = np.array([[3.0, 1.0, 1.0], [2.0, 3.0, 2.0], [1.0, 2.0, 3.0]], dtype=np.float32).reshape(3, 1, 3, 1)
    faint = np.array([1.0, 1.0, 1e-3], dtype=np.complex64).reshape(1, 3, 1)  # bin 2, which stem 2 wins, is -63 dB
    binary = inference_masks(ranks, "binary", faint, gate_db=-30.0)  # (stems, 1, bins, 1)
    assert binary[:, 0, :, 0].T.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]  # bin 2 to its runner-up

"""The ONNX Runtime engine: the same stems as the torch network, streaming too, without torch."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from stems import spectral
from stems.bag import MaskBag
from stems.config import STFTConfig
from stems.engine import OnnxEngine, load_engine
from stems.errors import StemsError
from stems.export import export_onnx
from stems.reconstruct import output_groups
from stems.separator import Separator
from stems.stream import stream_blocks
from stems.torch_engine import TorchEngine

from conftest import RATE, make_model, synth

NETWORKS = {
    "centred": lambda: make_model(seed=1),
    "lookahead": lambda: make_model(seed=2, lookahead_frames=1, dilations=(1, 3, 2)),
    "bag": lambda: MaskBag([make_model(seed=3), make_model(seed=4, widths=(4, 8, 12), lookahead_frames=2, freq_stride=8)]),
}


@pytest.fixture(scope="module", params=list(NETWORKS))
def engines(request, tmp_path_factory):
    """(torch engine, ONNX engine) of the same network."""
    model = NETWORKS[request.param]()
    path = export_onnx(model, STFTConfig(), {"training": {"data": ["random weights (tests)"]}},
                       tmp_path_factory.mktemp("onnx"), request.param)
    return TorchEngine(model, STFTConfig()), OnnxEngine(path)


def assert_same_stems(a: dict, b: dict, tolerance: float = 1e-4) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].shape == b[name].shape
        assert np.abs(a[name] - b[name]).max() < tolerance, name


@pytest.mark.parametrize("options, call", [
    ({}, {"mask": "soft"}),
    ({"chunk_frames": 37}, {"mask": "soft"}),
    ({"shifts": 2, "chunk_frames": 50}, {"mask": "soft"}),
    ({}, {"two_stems": "vocals", "mask": "soft"}),
])
def test_onnx_stems_equal_torch_stems(engines, options, call):
    torch_engine, onnx_engine = engines
    audio = synth(4.3, seed=6)
    assert_same_stems(Separator(onnx_engine, **options).separate(audio, RATE, **call),
                      Separator(torch_engine, **options).separate(audio, RATE, **call))


def test_onnx_binary_masks_equal_torch_binary_masks(engines):
    """Binary masks are the argmax of the logits; where two stems' logits tie to float rounding
    (the bag's log mean mask clamps saturated masks to one value) either runtime may pick either,
    so the winners are compared where the runner-up is at least 1e-3 behind."""
    torch_engine, onnx_engine = engines
    mag = np.abs(spectral.stft(synth(3.0, seed=6), STFTConfig()))
    reference, logits = torch_engine.logits(mag), onnx_engine.logits(mag)
    ranked = np.sort(reference, axis=0)
    clear = ranked[-1] - ranked[-2] > 1e-3
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(logits.argmax(axis=0)[clear], reference.argmax(axis=0)[clear])


def test_onnx_mono_and_resampled_input_equal_torch(engines):
    torch_engine, onnx_engine = engines
    for audio, rate in ((synth(2.2, channels=1, seed=7), RATE), (synth(2.2, seed=8, rate=22050), 22050)):
        assert_same_stems(Separator(onnx_engine).separate(audio, rate, mask="soft"),
                          Separator(torch_engine).separate(audio, rate, mask="soft"))


def test_onnx_streamed_stems_equal_offline_stems(engines):
    _, onnx_engine = engines
    separator = Separator(onnx_engine)
    audio = synth(2.1, seed=9)
    offline = separator.separate(audio, RATE, mask="soft")
    groups = output_groups(separator.sources)
    for block in (441, 1500):
        outputs = list(stream_blocks(separator, (audio[:, i: i + block] for i in range(0, audio.shape[1], block)),
                                     2, groups, "soft"))
        assert_same_stems({n: np.concatenate([o[n] for o in outputs], axis=1) for n in groups}, offline)


@pytest.mark.parametrize("name", ["default", "fast", "quality", "lowlatency"])
def test_shipped_onnx_models_equal_their_torch_checkpoints(name):
    audio = synth(3.0, seed=10)
    onnx = Separator.from_checkpoint(name, runtime="onnx")
    torch_separator = Separator.from_checkpoint(name, runtime="torch")
    assert all(e.card["path"].endswith(".onnx") for e in onnx.engines)
    assert all(e.card["path"].endswith(".pt") for e in torch_separator.engines)
    assert_same_stems(onnx.separate(audio, RATE, mask="soft"), torch_separator.separate(audio, RATE, mask="soft"))


def test_altered_or_foreign_onnx_files_are_refused(tmp_path, tiny_checkpoint):
    altered = tmp_path / tiny_checkpoint.name
    data = bytearray(tiny_checkpoint.read_bytes())
    data[-10] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(StemsError, match="sha256 does not match its name"):
        load_engine(altered)
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"not a model")
    with pytest.raises(StemsError, match="foreign.onnx: not a readable stems ONNX model"):
        load_engine(foreign)
    with pytest.raises(StemsError, match="missing.onnx: model file not found"):
        load_engine(tmp_path / "missing.onnx")
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(StemsError, match="model.bin: not a model file"):
        load_engine(tmp_path / "model.bin")
    with pytest.raises(StemsError, match="nope: no such model"):
        load_engine("nope")


def test_onnx_card_says_the_window_and_the_caches(tiny_checkpoint):
    engine = OnnxEngine(tiny_checkpoint)
    model = make_model()
    assert (engine.past, engine.lookahead) == (model.past, model.lookahead)
    assert engine.state_shapes == model.state_shapes()
    assert engine.card["training"]["data"] == ["random weights (tests)"]
    assert json.loads(json.dumps(engine.card))  # plain JSON, as `stems info --json` prints it


def test_separate_and_help_run_without_torch(tmp_path):
    """The shipped ONNX models need no torch: `stems separate` and `stems --help` never import it."""
    song = tmp_path / "song.wav"
    sf.write(song, synth(1.0).T, RATE)
    program = (
        "import sys\n"
        "from stems.cli import main\n"
        f"for argv in (['stems', '--help'], ['stems', 'separate', {str(song)!r}, '-o', {str(tmp_path / 'out')!r}]):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as stop:\n"
        "        assert not stop.code, stop.code\n"
        "heavy = [m for m in ('torch', 'musdb', 'museval', 'matplotlib', 'scipy', 'librosa') if m in sys.modules]\n"
        "print('imported:', heavy)\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "imported: []" in run.stdout
    assert sorted(p.name for p in (tmp_path / "out" / "song").iterdir()) == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]


def test_a_bag_takes_every_core_without_spinning_and_a_single_network_leaves_one(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    card = {"training": {"data": ["random weights (tests)"]}}
    single = export_onnx(make_model(seed=1), STFTConfig(), card, tmp_path, "single")
    bag = export_onnx(NETWORKS["bag"](), STFTConfig(), card, tmp_path, "bag")

    def threads(engine):
        options = engine.session.get_session_options()
        try:
            spinning = options.get_session_config_entry("session.intra_op.allow_spinning")
        except RuntimeError:  # not set: ONNX Runtime's default, spinning
            spinning = "1"
        return options.intra_op_num_threads, spinning

    assert threads(OnnxEngine(single)) == (3, "1")
    assert threads(OnnxEngine(bag)) == (4, "0")
    assert threads(OnnxEngine(bag, threads=2))[0] == 2  # asked for: as asked

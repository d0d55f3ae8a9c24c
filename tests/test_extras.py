"""An inference-only install (`pip install .`) lacks the training extras: every command that needs
one says so in one line with the pip command and exits 1, no traceback.

The CLI runs in a subprocess whose import system finds the extras nowhere: a finder at the front
of sys.meta_path raises ModuleNotFoundError for them, as Python does for a module that is not
installed (tests/test_packaging.py checks a real install without them)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from conftest import RATE, synth
from stems.errors import TRAIN_EXTRAS

REPO = Path(__file__).resolve().parents[1]
PROGRAM = """
import sys

BLOCKED = set(sys.argv[1].split(","))


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
sys.argv = ["stems", *sys.argv[2:]]
from stems.cli import main

main()
"""


def stems_without(blocked, *args, cwd: Path) -> subprocess.CompletedProcess:
    """Run `stems ARGS` where the modules `blocked` are not installed."""
    return subprocess.run([sys.executable, "-c", PROGRAM, ",".join(blocked), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def line(what: str, module: str) -> str:
    """The line a missing extra ends in, as a regular expression; `what` is one too."""
    return rf"error: {what} needs the training extras \({module} is not installed\): pip install '\.\[train\]' in the stems checkout"


def assert_one_line(run: subprocess.CompletedProcess, pattern: str) -> None:
    """Exit status 1, no traceback, and a line that is `pattern` (a regular expression)."""
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Traceback" not in output, output
    assert any(re.fullmatch(pattern, text) for text in output.splitlines()), output


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A song and a references folder of one 1-second track."""
    root = tmp_path_factory.mktemp("extras")
    sf.write(root / "song.wav", synth(1.0).T, RATE)
    for i, stem in enumerate(("drums", "bass", "other", "vocals")):
        (root / "refs" / "one").mkdir(parents=True, exist_ok=True)
        sf.write(root / "refs" / "one" / f"{stem}.wav", synth(1.0, seed=i).T * 0.4, RATE)
    return root


COMMANDS = {  # what needs the extras -> (its arguments, the first extra it imports, who needs it)
    "evaluate": (["evaluate", "--stems-dir", "refs", "--oracle", "mix", "--cache", "cache"], "museval", "stems evaluate"),
    "evaluate musdb": (["evaluate", "--musdb", "musdb", "--checkpoint", "x.onnx"], "museval", "stems evaluate"),
    "train": (["train", "--out", "run"], "torch", "stems train"),
    "dataset build": (["dataset", "build", "--mix", "song.wav", "--vocals", "song.wav", "-o", "pair"], "scipy",
                      "stems dataset build"),
    "dataset render": (["dataset", "render", "rendered"], "mido", "stems dataset render"),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_needing_the_extras_says_which_in_one_line(name, inputs, tmp_path):
    args, module, what = COMMANDS[name]
    run = stems_without(TRAIN_EXTRAS, *args, cwd=inputs)
    assert_one_line(run, line(what, module))
    assert not any((inputs / made).exists() for made in ("cache", "run", "pair", "rendered"))  # it stopped before any work


@pytest.mark.parametrize("command", ["separate", "stream"])
def test_the_torch_runtime_without_torch_is_one_line(command, inputs, tmp_path):
    args = ["--record", tmp_path / "rec", "--fast"] if command == "stream" else ["-o", tmp_path / "out"]
    run = stems_without(TRAIN_EXTRAS, command, inputs / "song.wav", "--runtime", "torch", *args, cwd=tmp_path)
    assert_one_line(run, line(r"\S+\.pt: the torch runtime", "torch"))


def test_info_on_a_torch_checkpoint_without_torch_is_one_line(tiny_torch_checkpoint, tmp_path):
    run = stems_without(TRAIN_EXTRAS, "info", tiny_torch_checkpoint, cwd=tmp_path)
    assert_one_line(run, line(f"{re.escape(str(tiny_torch_checkpoint))}: the torch runtime", "torch"))


def test_separating_needs_none_of_them(inputs, tmp_path):
    run = stems_without(TRAIN_EXTRAS, "separate", inputs / "song.wav", "-o", tmp_path / "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert len(list((tmp_path / "out" / "song").iterdir())) == 4


def test_a_missing_dependency_of_an_extra_is_named(inputs, tmp_path):
    """museval installed without scipy: scipy is what to install."""
    run = stems_without(["scipy"], "evaluate", "--stems-dir", inputs / "refs", "--oracle", "mix", "--cache", tmp_path,
                        cwd=tmp_path)
    assert_one_line(run, line("stems evaluate", "scipy"))


def test_an_extra_missing_late_in_a_command_is_one_line_too(inputs, tmp_path):
    """matplotlib, which only --chart reaches, after the scoring."""
    run = stems_without(["matplotlib"], "evaluate", "--stems-dir", inputs / "refs", "--oracle", "mix", "--cache",
                        tmp_path / "cache", "--chart", tmp_path / "chart.png", cwd=tmp_path)
    assert_one_line(run, line("stems evaluate", "matplotlib"))
    assert list((tmp_path / "cache").iterdir())  # the scores were kept for the next run


def test_the_extras_are_those_of_pyproject():
    tomllib = pytest.importorskip("tomllib")
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    assert sorted(TRAIN_EXTRAS) == sorted(re.split(r"[=<>!~\[; ]", requirement)[0] for requirement in extra)

"""The shell scripts a newcomer runs first (scripts/*.sh, .ci/run): they parse, shellcheck finds
nothing in them, and setup.sh turns its argument into the right pip extras."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCRIPTS = sorted(ROOT.glob("scripts/*.sh")) + [ROOT / ".ci" / "run"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_script_parses_and_shellcheck_is_clean(script):
    parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: scripts/setup.sh test installs it (apt-get install shellcheck)")
    checked = subprocess.run(["shellcheck", "--shell=bash", "--external-sources", str(script)],
                             capture_output=True, text=True, cwd=script.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("argument,extras", [(None, "train"), ("test", "train,test"), ("data", "train"),
                                             ("test,data", "train,test"), ("realtime,test", "train,realtime,test")])
def test_setup_installs_the_extras_its_argument_names(tmp_path, argument, extras):
    """setup.sh up to its pip call, with apt-get, ffmpeg's check and pip replaced by recorders:
    no argument at all (how demo.sh calls it) must work under `set -u` too."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", checkout / "scripts" / "setup.sh")
    (checkout / "pyproject.toml").write_text("")
    venv_bin = checkout / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    recorder = venv_bin / "python"
    recorder.write_text(f'#!/usr/bin/env bash\necho "$@" >> "{tmp_path / "pip.log"}"\n')
    recorder.chmod(0o755)
    fake = tmp_path / "bin"
    fake.mkdir()
    for program in ("ffmpeg", "chromium", "dpkg"):  # everything counts as installed: no apt-get runs
        (fake / program).write_text("#!/usr/bin/env bash\nexit 0\n")
        (fake / program).chmod(0o755)
    environment = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    command = ["bash", str(checkout / "scripts" / "setup.sh")] + ([argument] if argument else [])
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    assert f"install -q -e .[{extras}]" in (tmp_path / "pip.log").read_text()
    assert (checkout / ".venv" / f".stems-installed-{extras}").is_file()

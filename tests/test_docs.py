"""The README and docs/ cannot drift from the code: every `stems ...` line in their fenced code
blocks names a subcommand that exists and options that its --help lists, every `scripts/...`
those blocks name exists, and every relative link and image resolves."""

import re
import shlex
from functools import cache
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from stems.cli import app

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)  # (language, code)
SHELL = ("", "bash", "sh", "shell", "console")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<img[^>]*\ssrc=\"([^\"]+)\"")
SCRIPT = re.compile(r"(?<![\w./-])scripts/[\w./-]*\w")


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def command_lines(text: str) -> list[str]:
    """The shell commands of a page's shell code blocks: continuation lines joined, comments
    dropped, pipelines and lists split into their commands."""
    commands = []
    for language, block in FENCE.findall(text):
        if language not in SHELL:
            continue
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*", "", line).strip()
            commands += [part.strip() for part in re.split(r"\|\||&&|[|;]", line) if part.strip()]
    return commands


def stems_invocations(text: str) -> list[list[str]]:
    """The arguments of each `stems ...` command (also `.venv/bin/stems ...`) of a page's code blocks."""
    found = []
    for command in command_lines(text):
        try:
            words = shlex.split(command.removeprefix("$ "))
        except ValueError:  # a quote that the block leaves open: not a shell command
            continue
        while words and re.fullmatch(r"\w+=\S*", words[0]):  # VARIABLE=value before the program
            words = words[1:]
        if words and Path(words[0]).name == "stems":
            found.append(words[1:])
    return found


@cache
def _command_tree():
    return typer.main.get_command(app)


@cache
def help_options(path: tuple[str, ...]) -> frozenset[str]:
    """The --options that `stems PATH --help` lists."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    assert result.exit_code == 0, result.output
    return frozenset(re.findall(r"(?<![\w-])--[a-z][\w-]*", result.output))


def resolve(arguments: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """(the subcommand path, its remaining arguments) of `stems ARGUMENTS`; the path is left
    short where a word names no subcommand of its group."""
    node, path = _command_tree(), []
    rest = list(arguments)
    while rest and getattr(node, "commands", None) is not None and rest[0] in node.commands:
        node = node.commands[rest[0]]
        path.append(rest.pop(0))
    return tuple(path), rest


def _leaf(path: tuple[str, ...]) -> bool:
    node = _command_tree()
    for word in path:
        node = node.commands[word]
    return getattr(node, "commands", None) is None


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_stems_command_in_a_code_block_exists_with_its_options(page):
    problems = []
    for arguments in stems_invocations(page.read_text()):
        path, rest = resolve(arguments)
        shown = "stems " + " ".join(arguments)
        if not path or not _leaf(path) and rest and rest[0] not in ("--help", "-h"):
            problems.append(f"{shown}: no such subcommand")
            continue
        known = help_options(path)
        problems += [f"{shown}: {' '.join(path)} has no option {option}"
                     for option in (word.split("=", 1)[0] for word in rest if word.startswith("--"))
                     if option not in known]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_script_a_code_block_names_exists(page):
    named = {match for _, block in FENCE.findall(page.read_text()) for match in SCRIPT.findall(block)}
    assert not [name for name in sorted(named) if not (ROOT / name).exists()]


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_relative_link_and_image_resolves(page):
    text = FENCE.sub("", page.read_text())  # code is not a link
    targets = [first or second for first, second in LINK.findall(text)]
    relative = [target for target in targets if not re.match(r"[a-z]+:|#", target)]
    missing = [target for target in relative if not (page.parent / target.split("#", 1)[0]).exists()]
    assert not missing, f"{_page_id(page)} links to what does not exist: {missing}"


def test_the_checker_catches_a_renamed_option_a_missing_subcommand_and_script():
    """The checks above on a page written to fail them."""
    page = ("```bash\nstems separate song.mp3 --two-stems vocals --no-such-option 3 \\\n    -o out\n"
            "stems dataset nothing data/x\nFOO=1 .venv/bin/stems info --list | head\n"
            ".venv/bin/python scripts/not_a_script.py\n```\n")
    invocations = stems_invocations(page)
    assert invocations == [["separate", "song.mp3", "--two-stems", "vocals", "--no-such-option", "3", "-o", "out"],
                           ["dataset", "nothing", "data/x"], ["info", "--list"]]
    path, rest = resolve(invocations[0])
    assert path == ("separate",) and "--two-stems" in help_options(path) and "--no-such-option" not in help_options(path)
    assert resolve(invocations[1]) == (("dataset",), ["nothing", "data/x"]) and not _leaf(("dataset",))
    assert SCRIPT.findall(FENCE.findall(page)[0][1]) == ["scripts/not_a_script.py"]
    assert stems_invocations("```python\nstems = separator.separate(audio)\n```\n") == []

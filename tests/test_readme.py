"""The README's commands run as written: every command in its bash blocks is either run here (the ones that take
under a minute) or named as long (a study, the suite, a launch); a new command must be put in one of the two."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# commands not run here: they take minutes, need what a test machine lacks (GPUs, ImageNet) or change the checkout's
# outputs (make clean-outputs): left to the people who run them
LONG = ("make study", "make test", "make lab", "make gpu-check", "make clean-outputs", "synkit run ", "papermill notebooks/",
        "accelerate launch", "python -m pytest", "python benchmarks/", "python3 -m venv", "git clone", "cd ", "open ")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def quick_commands() -> list[str]:
    return [c for c in readme_commands() if not c.startswith(LONG)]


def test_the_readme_starts_with_the_two_commands():
    assert readme_commands()[:2] == ["make study", "make test"]


@pytest.mark.parametrize("command", quick_commands())
def test_a_quick_readme_command_runs_as_written(command):
    words = shlex.split(command)
    if words[0] == "synkit":  # the console script of this checkout's Python
        words = [sys.executable, "-m", "synkit", *words[1:]]
    elif words[0] == "papermill":
        words = [sys.executable, "-m", "papermill", *words[1:]]
    elif words[0] in ("python", "python3"):
        words[0] = sys.executable
    done = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

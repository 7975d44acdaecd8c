"""Every command the README shows runs, in order, at the smoke preset; every `wm` command in docs/ composes."""
import re
import shlex
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from worldmodel.cli import main
from worldmodel.commands import COMMANDS, compose_config

ROOT = Path(__file__).resolve().parent.parent


def bash_lines(text: str) -> list[str]:
    """Command lines of the ```bash blocks, comments stripped."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def readme_commands() -> list[list[str]]:
    """argv lists to run: README bash lines and inline `wm ... out_dir=...` commands, in reading order; the main
    job (`bash scripts/main.sh`) as the `wm` command its script runs; set-up and the test script are CI's own."""
    text = (ROOT / "README.md").read_text()
    found = []
    for line in bash_lines(text):
        found.append((text.index(line), line))
    for span in re.findall(r"`(wm [^`]*out_dir=[^`]*)`", text):
        found.append((text.index(span), span))
    out = []
    for _, line in sorted(found):
        if line.startswith("bash scripts/main.sh"):
            script = (ROOT / "scripts" / "main.sh").read_text()
            line = re.search(r"^wm .*$", script, flags=re.M).group(0).replace('"${1:-runs/main}"', "runs/main")
        if line.startswith(("bash scripts/setup.sh", "bash scripts/test.sh")):
            continue
        assert line.startswith("wm "), f"README command not covered by this test: {line}"
        out.append(shlex.split(line)[1:])
    return out


def write_videos(folder: Path, n: int = 3) -> None:
    """A few short mp4s of a moving square: 'your videos' for the pretraining quickstart."""
    folder.mkdir(parents=True)
    for i in range(n):
        frames = np.zeros((12, 32, 32, 3), np.uint8)
        for t in range(12):
            frames[t, 8:16, 2 * t + i:2 * t + i + 8] = (200, 60 + 40 * i, 30)
        imageio.mimsave(folder / f"clip_{i}.mp4", frames, fps=10)


def test_readme_commands_run_at_smoke_preset(tmp_path, monkeypatch):
    commands = readme_commands()
    assert len(commands) >= 8  # the quickstarts, the main job, the planning and env examples
    monkeypatch.chdir(tmp_path)
    write_videos(tmp_path / "my_videos")
    for argv in commands:
        code = main(argv + ["preset=smoke"])
        assert code == 0, f"README command failed at the smoke preset: wm {' '.join(argv)}"
        out_dir = next(a.split("=", 1)[1] for a in argv if a.startswith("out_dir="))
        assert (tmp_path / out_dir / "summary.json").is_file(), argv


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_docs_commands_compose(page):
    for line in bash_lines((ROOT / "docs" / page).read_text()):
        if line.startswith("wm "):
            argv = shlex.split(line)[1:]
            assert argv[0] in COMMANDS, line
            compose_config(argv[0], [a for a in argv[1:] if "=" in a] + ["preset=smoke"])
    for span in re.findall(r"`(wm [a-z-]+ [^`<]*=[^`<]*)`", (ROOT / "docs" / page).read_text()):
        argv = shlex.split(span)[1:]
        if argv[0] in COMMANDS and "--help" not in argv:
            compose_config(argv[0], [a for a in argv[1:] if "=" in a])

"""A plain (non-editable) install: the repository's top-level configs/ and envs/ land under the package's namespace
(worldmodel.configs, worldmodel.envs), nothing else lands in site-packages, and `wm` works from anywhere."""
from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_plain_install_keeps_everything_under_worldmodel(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("worldmodel-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if not n.startswith(("worldmodel/", "worldmodel-"))] == []  # no generic top-level name
    assert {"worldmodel/configs/plan.yaml", "worldmodel/configs/env/tworoom.yaml", "worldmodel/configs/__init__.py",
            "worldmodel/envs/__init__.py", "worldmodel/envs/two_room.py"} <= set(names)
    assert any(n.startswith("worldmodel/envs/assets/") and n.endswith(".xml") for n in names)

    env_dir = tmp_path / "venv"  # sees this machine's packages (torch, mujoco, ...) but installs worldmodel its own
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    py, wm = env_dir / "bin" / "python", env_dir / "bin" / "wm"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, capture_output=True,
                   timeout=600)
    site = subprocess.run([str(py), "-c", "import worldmodel.config as c, worldmodel.envs as e; "
                           "print(c.CONFIG_DIR); print(e.__file__)"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.split()
    assert all(Path(p).is_relative_to(env_dir) for p in site), site  # the installed copy, not this checkout
    res = subprocess.run([str(wm), "plan", "env=tworoom", "--help"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "MUJOCO_GL": "egl"}, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "wm plan" in res.stdout and "worldmodel/TwoRoom-v0" in res.stdout

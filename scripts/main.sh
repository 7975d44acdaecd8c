#!/usr/bin/env bash
# Set up, then run the main job: the whole pipeline on built-in data at the cpu preset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=egl
wm pipeline preset=cpu out_dir="${1:-runs/main}"

#!/usr/bin/env bash
# Set up, lint (ruff), then run the whole test suite on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=egl
python -m ruff check worldmodel envs tests scripts
python -m pytest -q -p no:cacheprovider tests "$@"

#!/usr/bin/env bash
# Set up, lint (ruff), then run the whole test suite on CPU: two pytest workers (pytest-xdist) of one torch thread
# each, as two processes of two threads on two cores slow each other down; WM_TEST_WORKERS=0 runs it in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=egl
python -m ruff check worldmodel envs tests scripts
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python -m pytest -q -p no:cacheprovider -n "${WM_TEST_WORKERS:-2}" tests "$@"

#!/usr/bin/env bash
# Install worldmodel and its dependencies from the project's own files (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
# pinned to the versions the results were measured with (constraints.txt, written by scripts/lock.py);
# `pip install -e ".[dev]"` without -c installs the newest versions the pyproject allows
python -m pip install -q -c constraints.txt -e ".[dev]"

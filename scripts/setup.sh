#!/usr/bin/env bash
# Install worldmodel and its dependencies from the project's own files (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python -m pip install -q -e ".[dev]"

#!/usr/bin/env bash
# GPU check, about 8 minutes on one CUDA GPU: the smoke pipeline end to end on the GPU, then
# `wm bench pretrain|ac|plan` at the gpu preset (bf16 autocast where the configs ask for it), printed as one table.
#   bash scripts/gpu_check.sh [out_dir]       # default runs/gpu_check
# torch.compile is not used by any command yet, so this script does not time it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu_check}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device visible')"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
mkdir -p "$OUT"
start=$(date +%s)
timeout 300 wm pipeline preset=smoke out_dir="$OUT/pipeline" >"$OUT/pipeline.log" 2>&1 \
  || { echo "gpu_check: smoke pipeline failed, see $OUT/pipeline.log"; tail -5 "$OUT/pipeline.log"; exit 1; }
for target in pretrain ac plan; do
  timeout 120 wm bench "$target" preset=gpu out_dir="$OUT/bench_$target" >"$OUT/$target.log" 2>&1 \
    || { echo "gpu_check: wm bench $target failed, see $OUT/$target.log"; tail -5 "$OUT/$target.log"; exit 1; }
done
python - "$OUT" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
from pathlib import Path
import torch
out, seconds = Path(sys.argv[1]), sys.argv[2]
s = {t: json.loads((out / f"bench_{t}" / "summary.json").read_text()) for t in ("pretrain", "ac", "plan")}
p = json.loads((out / "pipeline" / "summary.json").read_text())
print(f"| GPU check | {torch.cuda.get_device_name(0)}, torch {torch.__version__}, {seconds} s in all |\n|---|---|")
print(f"| smoke pipeline | {len(p['stages'])} stages in {p['seconds']} s |")
b = s["pretrain"]
print(f"| wm bench pretrain (gpu preset, bf16 autocast) | {b['step_seconds']} s/step, {b['tokens_per_s']} tokens/s, "
      f"{b['achieved_gflops']} GFLOP/s = {b['fraction_of_matmul_peak']} of the fp32 matmul peak |")
b = s["ac"]
print(f"| wm bench ac | cached {b['steps_per_s_cached']} vs recompute {b['steps_per_s_recompute']} rollout steps/s "
      f"({b['speedup']}x) |")
b = s["plan"]
print(f"| wm bench plan | cached {b['seconds_per_plan_cached']} s vs recompute {b['seconds_per_plan_recompute']} s per "
      f"replanning step ({b['speedup']}x) |")
PY

#!/usr/bin/env bash
# The GPU check of issue 11, unattended: `vitbench bench`, then the gpu preset of pos_embed, then
# head_type's if time remains. Everything is written under WORK (default /tmp/vitbench-gpu, so a
# second try on the same machine resumes: finished runs are skipped); what comes back is one
# archive in OUT_DIR (bench.json/.csv, the gpu reports, the log), within a device call's file limits.
#
#   scripts/gpu_check.sh OUT_DIR [SECONDS]     SECONDS: the budget, default 540 (of a 600 s call)
#
# Copy what comes back into the repository: reports/bench/<gpu>.json and reports/<study>/gpu/.
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [SECONDS]}
budget=${2:-540}
work=${WORK:-/tmp/vitbench-gpu}
mkdir -p "$out" "$work"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export VITBENCH_DATA_CACHE="$work/cache"  # the fractal upstream is rendered there once
log="$work/gpu_check.log"
left() { echo $((budget - SECONDS)); }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.version.cuda)"
  timeout "$(left)" python -m benchmark bench --results "$work"
  for study in pos_embed head_type; do
    if (($(left) < 90)); then
      echo "gpu_check: $(left) s left, not starting $study (a rerun resumes it)"
      break
    fi
    timeout "$(left)" python -m benchmark run "$study" --preset gpu --results "$work/results" --reports "$work/reports"
    echo "gpu_check: $study exited $? after $SECONDS s"
  done
} 2>&1 | tee "$log"
tar -czf "$out/gpu_check.tar.gz" -C "$work" gpu_check.log $(cd "$work" && ls bench.json bench.csv reports 2>/dev/null)
echo "gpu_check: wrote $out/gpu_check.tar.gz after $SECONDS s"

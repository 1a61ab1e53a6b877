#!/usr/bin/env bash
# The GPU benchmark: every Triton path against its anchor on the CUDA device, in one table
# (bench/bench_gpu.py says what each case times). Writes OUT_DIR/gpu.{json,md,png}.
#   bench/gpu.sh [OUT_DIR]     default OUT_DIR: bench/results; QUICK=1 for small shapes
# Stopped after 8 minutes (the issue's budget). Without CUDA it says so and exits 2.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
out=${1:-bench/results}
if ! "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  echo "bench/gpu.sh: torch sees no CUDA device (torch.cuda.is_available() is False): nothing run" >&2
  exit 2
fi
# Native kernels, not Triton's CPU interpreter.
unset TRITON_INTERPRET
timeout 480 "$python" - "$out" "${QUICK:-0}" <<'PY'
import sys

from speechdecode.bench import bench_gpu
from speechdecode.bench.harness import Suite

out, quick = sys.argv[1], sys.argv[2] == "1"
suite = Suite("gpu", out, quick=quick)
bench_gpu.run(suite, quick)
suite.finish()
with open(f"{out}/gpu.md") as table:
    print(table.read())
PY

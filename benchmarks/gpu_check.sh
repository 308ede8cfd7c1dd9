#!/usr/bin/env bash
# GPU checks of sap_graph, for a machine with a CUDA device.
#
# Runs the CUDA tests (tests/ops/test_cuda*.py: test_cuda.py, and the
# Triton path in test_cuda_triton.py: values and gradients against the
# PyTorch path, no host sync), the
# profile (benchmarks/profile_cuda.py: the Triton kernels against the
# PyTorch path on the SAP core), the speed table and one training epoch,
# and writes every log under benchmarks/results/gpu_<card>/ (card name from
# torch.cuda.get_device_name()), with env.txt (versions, commit) and
# status.txt (exit code per step). The committed benchmarks/results/*_cuda*
# files are not touched (the benchmarks run with --no-save and print).
#
# Usage:
#   benchmarks/gpu_check.sh                  # all steps, in this order
#   benchmarks/gpu_check.sh tests profile    # some of: tests profile speed epoch
#   SPEED_ARGS=--quick benchmarks/gpu_check.sh speed
#   SAP_GRAPH_DATA=/path/to/data benchmarks/gpu_check.sh epoch
#
# On an H200 (2026-12-04) tests took 1.5 min, profile 1 min, speed --quick
# 1 min, epoch 1 min; results and findings of that first GPU run are in
# benchmarks/results/gpu_nvidia-h200/README.md.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The Triton path is the default only on the architecture where this
# script has passed (compute capability 9.0); here it is checked on any GPU.
export SAP_GRAPH_TRITON="${SAP_GRAPH_TRITON:-1}"

card=$(python -c 'import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name())') || {
  echo 'gpu_check.sh: no CUDA device' >&2
  exit 1
}
slug=$(printf '%s' "$card" | tr 'A-Z' 'a-z' | sed -e 's/[^a-z0-9]\{1,\}/-/g' -e 's/^-//' -e 's/-$//')
out="benchmarks/results/gpu_$slug"
mkdir -p "$out"
{
  echo "card: $card"
  date -u
  echo "commit: $(git rev-parse HEAD 2>/dev/null)"
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  python -c 'import triton; print("triton", triton.__version__)' 2>&1 | tail -1
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
} > "$out/env.txt"
cat "$out/env.txt"

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests profile speed epoch)
status=0

run() {  # run NAME COMMAND...: log to $out/NAME.txt, record the exit code
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "$name $rc $(date -u +%H:%M:%S)" >> "$out/status.txt"
  [ "$rc" -eq 0 ] || status=1
}

for step in "${steps[@]}"; do
  case "$step" in
    tests) run test_cuda python -m pytest -v -rs -p no:cacheprovider tests/ops/test_cuda*.py ;;
    profile) run profile_cuda python -m benchmarks.profile_cuda ;;
    speed) run speed_cuda python -m benchmarks.speed --device cuda --no-save ${SPEED_ARGS:-} ;;
    epoch)
      run epoch_cuda env SAP_GRAPH_DATA="${SAP_GRAPH_DATA:-$PWD/../shared/data}" \
        python -m benchmarks.epoch --device cuda --no-save ;;
    *) echo "gpu_check.sh: unknown step $step" >&2; status=1 ;;
  esac
done
echo "results in $out (status: $status)"
exit $status

#!/usr/bin/env bash
# GPU check: the CUDA paths that no CPU test reaches, and the GPU numbers of docs/performance.md.
# One script, under 8 minutes on one H100/H200 (the step limits add up to 7.75 min):
#   1. environment (GPU, driver, torch)
#   2. the tests that skip without CUDA (fp16 autocast + GradScaler training, Uni3D FPS/grouping)
#   3. trainer vs the GPU's matmul rate, fp16 autocast + GradScaler (bench_engine.py --device cuda)
#   4. encoders and the MiniLM anchor in fp16 on the GPU vs fp32 on the CPU
#   5. Uni3D farthest point sampling on CUDA: same indices as the CPU, points/s
#   6. textme embed-texts under torchrun with NCCL on one GPU
#   7. paper-config training time on cached embeddings (100K texts, 2 epochs, extrapolated to 50)
#   8. Qwen3-Embedding-0.6B architecture, random weights: extraction throughput through the anchor
#
# Usage:  bash benchmarks/gpu_check.sh          # on a CUDA machine
#         bash benchmarks/gpu_check.sh --cpu    # every step at toy sizes on the CPU (checks the script)
# Results: one JSON (and log) per step under $OUT if set, else benchmarks/results/gpu_check/;
# summary.txt lists each step's status and time; the last lines print the checks as one table.
set -uo pipefail

MODE=cuda SCALE=1
if [[ "${1:-}" == "--cpu" ]]; then MODE=cpu SCALE=4; fi  # a loaded CPU gets longer limits
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || PY="$(command -v python3)"
DEST="${OUT:-$ROOT/benchmarks/results/gpu_check}"
mkdir -p "$DEST"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HF_HOME="$SCRATCH/hf" TEXTME_HOME="$SCRATCH/textme"
cd "$ROOT/benchmarks" || exit 2

SUMMARY="$DEST/summary.txt"
echo "gpu_check mode=$MODE started $(date -u +%FT%TZ)" > "$SUMMARY"
FAILED=0

# step NAME TIMEOUT_S COMMAND...: run with a time limit, log to $DEST/NAME.log, record the status
step() {
  local name="$1" limit=$(( $2 * SCALE )); shift 2
  local t0=$SECONDS rc
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$DEST/$name.log" 2>&1
  rc=$?
  local status=ok
  if [[ $rc -eq 124 ]]; then status="TIMEOUT"; FAILED=1
  elif [[ $rc -ne 0 ]]; then status="FAILED (exit $rc)"; FAILED=1; fi
  printf '%-16s %-18s %4ds\n' "$name" "$status" "$((SECONDS - t0))" | tee -a "$SUMMARY"
  [[ $status == ok ]] || tail -n 20 "$DEST/$name.log"
}

if [[ $MODE == cuda ]]; then
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to torch; run with --cpu to check the script on the CPU" >&2
    exit 2
  fi
  command -v nvidia-smi > /dev/null && nvidia-smi > "$DEST/nvidia-smi.txt" 2>&1
fi
"$PY" - > "$DEST/environment.json" <<'EOF'
import json, platform, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                  "python": platform.python_version(), "threads": torch.get_num_threads()}))
EOF

# 2. the CUDA tests (they skip on the CPU: in --cpu mode this checks that they are collected)
step cuda-tests 90 "$PY" -m pytest -q -rs -p no:cacheprovider \
  "$ROOT/tests/test_trainer.py::test_fp16_amp_on_cuda" \
  "$ROOT/plugins/textme-uni3d/tests/test_uni3d_model.py::test_fps_and_grouping_on_cuda_match_cpu" \
  --junitxml="$DEST/cuda-tests.xml"

# 3. the trainer against the device's matmul rate (fp16 autocast + GradScaler on CUDA)
QUICK=(); [[ $MODE == cpu ]] && QUICK=(--quick)
step trainer 75 "$PY" bench_engine.py --device "$MODE" "${QUICK[@]}" --json "$DEST/trainer.json"

# 4-5. encoders in half precision; Uni3D FPS
step encoders-fp16 45 "$PY" gpu_check_steps.py encoders-fp16 --device "$MODE" --json "$DEST/encoders-fp16.json"
step uni3d-fps 30 "$PY" gpu_check_steps.py uni3d-fps --device "$MODE" --json "$DEST/uni3d-fps.json"

# 6. embed-texts under torchrun, one process (NCCL on CUDA, gloo on the CPU)
N_TEXTS=20000; [[ $MODE == cpu ]] && N_TEXTS=300
"$PY" -c "from textme_reference.world import caption_corpus; print('\n'.join(caption_corpus('image', $N_TEXTS, seed=9)))" > "$SCRATCH/texts.txt"
embed_texts() {
  local t0=$EPOCHREALTIME rc
  "$(dirname "$PY")/torchrun" --standalone --nproc-per-node=1 -m textme_sdk.cli embed-texts \
    "$SCRATCH/texts.txt" --anchor minilm --cache "$SCRATCH/cache" --chunk-size 4096 --batch-size 256
  rc=$?
  "$PY" -c "import json,sys; s=float(sys.argv[1]); n=int(sys.argv[2]); print(json.dumps({'texts': n, 'seconds': s, 'checks': [{'what': 'embed-texts under torchrun, 1 process ($MODE): minilm throughput incl. start-up', 'value': round(n / s, 1), 'unit': 'texts/s', 'target': '-', 'met': None}]}))" \
    "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" "$N_TEXTS" > "$DEST/embed-texts.json"
  return $rc
}
export -f embed_texts
export PY SCRATCH DEST N_TEXTS MODE
step embed-texts 75 bash -c embed_texts

# 7-8. paper-config training time; Qwen3-Embedding-0.6B random weights
step paper-train 75 "$PY" gpu_check_steps.py paper-train --device "$MODE" --json "$DEST/paper-train.json"
step qwen3 75 "$PY" gpu_check_steps.py qwen3 --device "$MODE" --json "$DEST/qwen3.json"

echo "finished $(date -u +%FT%TZ)" >> "$SUMMARY"
"$PY" -c "import sys, pathlib; sys.path.insert(0, '.'); from run_all import table; print(table(pathlib.Path(sys.argv[1])))" "$DEST"
exit $FAILED

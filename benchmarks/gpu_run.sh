#!/usr/bin/env bash
# Every CUDA check of this project in one command, for a short GPU loan (see benchmarks/README.md).
# `gpu_run.sh` runs everything (about 7 min on an H200); `gpu_run.sh large` only the second half.
# Expects python3 with torch/torchaudio/timm/accelerate/h5py; missing pure wheels (PyAV, simplejpeg,
# zorro-pytorch, beartype) may be carried in .whl/. Logs go to $OUT (default ./gpu-out).
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchaudio, timm, accelerate, av; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__, 'timm', timm.__version__, 'accelerate', accelerate.__version__, 'av', av.__version__)"
step() {  # step NAME SECONDS CMD...: run, keep the log, never stop the script
  local name=$1 secs=$2; shift 2
  echo "== $name: $*"
  local t0=$SECONDS
  timeout "$secs" "$@" >"$OUT/$name.log" 2>&1
  echo "   exit $? after $((SECONDS - t0)) s"
  grep -v -e USDT -e 'gpuGetDeviceCount' "$OUT/$name.log" | tail -n "${TAIL:-25}"
}
if [ "${1:-all}" = "all" ]; then
  TAIL=40 step gpu_check 150 python3 benchmarks/gpu_check.py --batch 32 --json "$OUT/gpu_check.json"
  step attention 45 python3 benchmarks/attention.py --device cuda --dtype bf16 --batch 8 --reps 20
  step unimodal 45 python3 benchmarks/unimodal.py --device cuda --dtype bf16 --batch 16 --reps 10
  step vs_peer 60 python3 benchmarks/vs_peer.py --device cuda --dtype bf16 --batch 8 --reps 10
  step demo 150 python3 -m zorro_cli demo --out /tmp/zorro-demo
  # issue 14: evaluate at 3 crops vs fine-tuning steps of the same ViT-B/16 at paper shapes (target >= 1x)
  step evaluate 180 python3 benchmarks/evaluate.py --recipe audioset --clips 128 --batch-size 32 --workers 0 8 --rounds 3 --train
  step pretrain_bf16 45 python3 -m zorro_cli pretrain --recipe tiny --data /tmp/zorro-demo/cache --out /tmp/pt-bf16 train.precision=bf16 train.epochs=3
fi
if [ "${1:-all}" = "all" ] || [ "${1:-}" = "large" ]; then  # backbones, larger batches, the Swin/HiP demos
  step backbones 90 python3 benchmarks/backbones.py --device cuda --batch 16 --reps 5
  step attention_b32 45 python3 benchmarks/attention.py --device cuda --dtype bf16 --batch 32 --reps 20
  step unimodal_b64 60 python3 benchmarks/unimodal.py --device cuda --dtype bf16 --batch 64 --reps 10
  step demo_swin 120 python3 -m zorro_cli demo --backbone swin --no-onnx --out /tmp/zorro-demo-swin
  step demo_hip 120 python3 -m zorro_cli demo --backbone hip --no-onnx --out /tmp/zorro-demo-hip
fi

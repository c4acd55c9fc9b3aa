#!/usr/bin/env bash
# Train the blind denoisers of configs/{unet-gray-blind,unet-color-blind,dncnn-gray-blind}.toml
# CONCURRENTLY on one GPU within a wall-clock budget, and put the weights under $OUT.
#
# Each run is one Python process: it loads its data, waits until every run has loaded
# (so they measure a shared GPU), times PROBE_S seconds of real training steps, then sizes
# patches_per_epoch so that the config's epochs (full cosine schedule) end by the deadline,
# and calls aedenoise.training.train(). Should a run still overrun, it is stopped at the hard
# limit and its last epoch checkpoint (last.safetensors, with optimizer state) is kept.
#
# Outputs (<= 8 files): $OUT/<run>/model.safetensors, $OUT/<run>/history.json, $OUT/train.log.
#
# Usage, from the repository root:
#   OUT=/tmp/gpuout bash benchmarks/gpu_train.sh                      # GPU, all runs
#   DEVICE=cpu TINY=1 OUT=/tmp/gpuout bash benchmarks/gpu_train.sh    # smoke test of the whole path
# Environment (all optional): RUNS ("unet-gray unet-color dncnn-gray"), BUDGET_S (420: seconds
# from the script's start until training must be over), PROBE_S (20), DEVICE (cuda), TINY (0),
# THREADS (CPU threads per run: cores / runs), AEDENOISE_DATA (.gpu/data if present, else
# ../shared/data), PYTHON (python3).
set -euo pipefail

T0=$(date +%s)
: "${OUT:?set OUT to the output folder}"
RUNS=${RUNS:-"unet-gray unet-color dncnn-gray"}
BUDGET_S=${BUDGET_S:-420}
DEVICE=${DEVICE:-cuda}
TINY=${TINY:-0}
PROBE_S=${PROBE_S:-$([[ $TINY == 1 ]] && echo 2 || echo 20)}
PYTHON=${PYTHON:-python3}
if [[ -z "${AEDENOISE_DATA:-}" ]]; then
  if [[ -d .gpu/data ]]; then AEDENOISE_DATA=$PWD/.gpu/data; else AEDENOISE_DATA=$PWD/../shared/data; fi
fi
export AEDENOISE_DATA
export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=1073741824
WORK=$(mktemp -d /tmp/gpu_train.XXXXXX)
mkdir -p "$OUT" "$WORK/ready"
LOG="$OUT/train.log"
say() { echo "[gpu_train +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }

config_of() {
  case "$1" in
    unet-gray) echo configs/unet-gray-blind.toml ;;
    unet-color) echo configs/unet-color-blind.toml ;;
    dncnn-gray) echo configs/dncnn-gray-blind.toml ;;
    *) echo "unknown run '$1' (choose from unet-gray unet-color dncnn-gray)" >&2; return 1 ;;
  esac
}
for run in $RUNS; do config_of "$run" >/dev/null; done
say "runs: $RUNS | device $DEVICE | budget ${BUDGET_S}s | data $AEDENOISE_DATA | tiny $TINY | $(nproc) cores"

if [[ "$DEVICE" == cuda* ]]; then
  nvidia-smi 2>&1 | tee -a "$LOG" || { say "FAIL: nvidia-smi failed"; exit 1; }
fi
if ! "$PYTHON" -c "import pydantic" 2>/dev/null; then
  ls .whl/*.whl >/dev/null 2>&1 || { say "FAIL: pydantic missing and no wheels in .whl/"; exit 1; }
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
fi
"$PYTHON" - "$DEVICE" <<'EOF' 2>&1 | tee -a "$LOG"
import sys, torch, aedenoise
dev = sys.argv[1]
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, aedenoise {aedenoise.__version__}, cuda {torch.cuda.is_available()}")
if dev.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("FAIL: CUDA not available")
EOF

cat > "$WORK/driver.py" <<'EOF'
"""One run: load data, wait for the others, probe throughput, size the epochs, train."""
import json, math, sys, time
from pathlib import Path

import torch

from aedenoise.config import resolve_config
from aedenoise.data.images import patch_training_data
from aedenoise.models import create_model
from aedenoise.training import train

name, config_file, out_dir, ready_dir = sys.argv[1:5]
n_runs, deadline, probe_s, tiny, device = int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), sys.argv[8] == "1", sys.argv[9]
threads = int(sys.argv[10])
torch.set_num_threads(threads)  # the runs share the CPU cores; oversubscribed OpenMP threads stall
torch.backends.cudnn.benchmark = True
log = lambda m: print(f"[{name} {time.strftime('%H:%M:%S')}] {m}", flush=True)

over = {"device": device, "threads": threads}
if tiny:
    over |= {"epochs": 2, "batch_size": 4, "eval_batch_size": 8, "data": {"patch_size": 32, "val_count": 8}}
cfg = resolve_config(config_file=config_file, overrides=over)
t = time.time()
data = patch_training_data(cfg.data, seed=cfg.seed)
log(f"{len(data.train_files)} training images, {len(data.val_files)} held out, {data.val_x.shape[0]} val patches, loaded in {time.time() - t:.1f} s")

Path(ready_dir, name).touch()
t = time.time()
while len(list(Path(ready_dir).iterdir())) < n_runs and time.time() - t < 60:  # a run that failed to load
    time.sleep(0.2)

# Probe: real training steps (same model, batch, noise, autocast) on the shared GPU.
dev = torch.device(device)
args = dict(cfg.model.args)
args.setdefault("in_channels", data.channels)
model = create_model(cfg.model.name, **args).to(dev)
opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
noise = cfg.noise.build()
g = torch.Generator(dev).manual_seed(1)
amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.amp and dev.type == "cuda")
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
probe = data.with_patches_per_epoch(50 * cfg.batch_size)
steps, warm, t_start, epoch = 0, 5, 0.0, 0
while steps <= warm or time.time() - t_start < probe_s:
    for x in probe.epoch_batches(epoch, cfg.batch_size, seed=cfg.seed + 1, drop_last=True, device=dev):
        y, sigma = noise.apply(x, generator=g)
        with amp:
            loss = (model(y, sigma).float() - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
        if steps == warm:
            sync()
            t_start = time.time()
        elif steps > warm and time.time() - t_start >= probe_s:
            break
    epoch += 1
sync()
rate = (steps - warm) * cfg.batch_size / (time.time() - t_start)  # patches per second
del model, opt
if dev.type == "cuda":
    torch.cuda.empty_cache()
# 0.85: per-epoch validation, checkpoints and speed changes as the other runs start and stop.
left = deadline - time.time() - 15
if left < 30 and not tiny:
    sys.exit(f"[{name}] FAIL: only {left:.0f} s left after the probe ({rate:.1f} patches/s); raise BUDGET_S")
per_epoch = max(1, int(0.85 * rate * left / cfg.epochs) // cfg.batch_size) * cfg.batch_size
if tiny:
    per_epoch = 2 * cfg.batch_size
log(f"probe: {rate:.1f} patches/s ({cfg.data.patch_size}x{cfg.data.patch_size}, batch {cfg.batch_size}); "
    f"{left:.0f} s left -> {cfg.epochs} epochs x {per_epoch} patches")
cfg = resolve_config(config_file=config_file, overrides=over | {"data": over.get("data", {}) | {"patches_per_epoch": per_epoch}})
result = train(cfg, out_dir, progress=False, data=data.with_patches_per_epoch(per_epoch))
best = max(h["val_psnr"] for h in result.history)
log(f"done: {result.train_seconds:.0f} s, final val PSNR {result.history[-1]['val_psnr']:.2f} dB (best {best:.2f})")
EOF

# Hard stop for a run: the budget plus a grace period for the final save.
DEADLINE=$(( T0 + BUDGET_S ))
NRUNS=$(echo $RUNS | wc -w)
THREADS=${THREADS:-$(( $(nproc) / NRUNS > 0 ? $(nproc) / NRUNS : 1 ))}
pids=()
for run in $RUNS; do
  rm -rf "$WORK/$run"
  limit=$(( DEADLINE + 30 - $(date +%s) ))
  (( limit > 30 )) || { say "FAIL: no time left to start $run"; exit 1; }
  timeout --signal=TERM --kill-after=10 "$limit" \
    "$PYTHON" -u "$WORK/driver.py" "$run" "$(config_of "$run")" "$WORK/$run" "$WORK/ready" \
      "$NRUNS" "$DEADLINE" "$PROBE_S" "$TINY" "$DEVICE" "$THREADS" > "$WORK/$run.log" 2>&1 &
  pids+=($!)
  say "started $run (pid $!, hard limit ${limit}s): log $WORK/$run.log"
done

# Progress: the newest line of every log, every 30 s, until all runs end.
while :; do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
  (( alive == 0 )) && break
  for run in $RUNS; do say "$run: $(grep -v '^\s*$' "$WORK/$run.log" | tail -n 1 | cut -c1-160)"; done
  for _ in $(seq 30); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
    (( alive == 0 )) && break
    sleep 1
  done
done

status=0
i=0
for run in $RUNS; do
  rc=0; wait "${pids[$i]}" || rc=$?
  i=$((i + 1))
  { echo "----- $run (exit $rc) -----"; cat "$WORK/$run.log"; } >> "$LOG"
  mkdir -p "$OUT/$run"
  if [[ $rc == 0 && -f "$WORK/$run/model.safetensors" ]]; then
    cp "$WORK/$run/model.safetensors" "$WORK/$run/history.json" "$OUT/$run/"
    say "$run: OK -> $OUT/$run/model.safetensors"
  elif [[ -f "$WORK/$run/last.safetensors" ]]; then
    cp "$WORK/$run/last.safetensors" "$OUT/$run/model.safetensors"
    [[ -f "$WORK/$run/history.json" ]] && cp "$WORK/$run/history.json" "$OUT/$run/"
    say "$run: STOPPED (exit $rc): kept its last epoch checkpoint as $OUT/$run/model.safetensors (cosine schedule unfinished)"
    status=1
  else
    say "$run: FAILED (exit $rc), no checkpoint; its log:"
    tail -n 25 "$WORK/$run.log" | tee -a "$LOG"
    rmdir "$OUT/$run" 2>/dev/null || true
    status=1
  fi
done
say "summary (val PSNR on held-out training-image patches, sigma ~ U[0, 50]/255):"
for run in $RUNS; do
  [[ -f "$OUT/$run/history.json" ]] || continue
  "$PYTHON" - "$OUT/$run/history.json" "$run" <<'EOF' | tee -a "$LOG"
import json, sys
h = json.load(open(sys.argv[1]))
print(f"  {sys.argv[2]}: {len(h)} epochs, {sum(r['seconds'] for r in h):.0f} s, val PSNR "
      f"first {h[0]['val_psnr']:.2f} -> last {h[-1]['val_psnr']:.2f} dB")
EOF
done
rm -rf "$WORK"
say "done (exit $status)"
exit $status

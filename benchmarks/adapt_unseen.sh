#!/bin/sh
# The measurements of docs/self-supervised.md ("aedenoise adapt on noise the shipped models were not
# trained on", and on real camera noise), one after the other; about 1.5 hours on a 2-core CPU.
# Run from the project root with the venv built (make setup); writes under runs/unseen/.
set -ex
export MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=1073741824 AEDENOISE_DATA=${AEDENOISE_DATA:-../shared/data}
A=.venv/bin/aedenoise
for n in poisson30 blur25 gauss25; do
  .venv/bin/python benchmarks/unseen_noise.py --data "$AEDENOISE_DATA/CBSD68" --noise $n --out runs/unseen/$n
  $A evaluate --method color-blind --data runs/unseen/$n --json runs/unseen/$n-before.json --threads 2 --no-figures
  # blur25 is refused (correlated noise) unless forced; the forced run shows why.
  force=""; [ $n = blur25 ] && force="--force"
  $A adapt runs/unseen/$n/noisy --from color-blind --out runs/unseen/$n-adapted.safetensors --steps 100000 \
    --minutes 10 --threads 2 --no-progress --overwrite $force
  $A evaluate --method runs/unseen/$n-adapted.safetensors --data runs/unseen/$n --json runs/unseen/$n-after.json --threads 2 --no-figures
done
for n in poisson30 blur25; do
  $A train --config configs/unet-color-$n-reference.toml --out runs/unet-color-$n-reference --threads 1 --no-progress
  $A evaluate --method runs/unet-color-$n-reference/model.safetensors --data runs/unseen/$n --json runs/unseen/$n-reference.json --threads 1 --no-figures
done
# Real camera noise: refused without --force (correlated); forced, at the camera preset's level.
$A adapt "$AEDENOISE_DATA/PolyU-Canon/noisy" --from color-blind --sigma 10 --force --out runs/unseen/polyu-adapted.safetensors \
  --steps 100000 --minutes 10 --threads 2 --no-progress --overwrite
$A evaluate --method color-blind --method runs/unseen/polyu-adapted.safetensors --sigma 10 --data "$AEDENOISE_DATA/PolyU-Canon" \
  --json runs/unseen/polyu-after.json --threads 2 --no-figures

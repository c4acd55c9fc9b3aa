#!/bin/sh
# The measurements of docs/self-supervised.md ("aedenoise adapt on noise the shipped models were not
# trained on", and on real camera noise), one after the other; about 2 hours on a 2-core CPU.
# Run from the project root with the venv built (make setup); writes under runs/unseen/.
set -ex
export MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=1073741824 AEDENOISE_DATA=${AEDENOISE_DATA:-../shared/data}
A=.venv/bin/aedenoise
for n in poisson30 blur25 gauss25; do
  .venv/bin/python benchmarks/unseen_noise.py --data "$AEDENOISE_DATA/CBSD68" --noise $n --out runs/unseen/$n
  $A evaluate --method color-blind --data runs/unseen/$n --json runs/unseen/$n-before.json --threads 2 --no-figures
  # blur25 is correlated: adapt picks the 3x3 pixel-shuffled sub-images and r2r there (--shuffle auto, --objective auto).
  $A adapt runs/unseen/$n/noisy --from color-blind --out runs/unseen/$n-adapted.safetensors --steps 100000 \
    --minutes 10 --threads 2 --no-progress --overwrite
  $A evaluate --method runs/unseen/$n-adapted.safetensors --data runs/unseen/$n --json runs/unseen/$n-after.json --threads 2 --no-figures
done
# On the 3x3 sub-images, the objectives whose targets are other pixels (3 pixels away in the image) instead of r2r.
for o in neighbor2neighbor n2v; do
  $A adapt runs/unseen/blur25/noisy --from color-blind --objective $o --out runs/unseen/blur25-$o.safetensors --steps 100000 \
    --minutes 10 --threads 2 --no-progress --overwrite
  $A evaluate --method runs/unseen/blur25-$o.safetensors --data runs/unseen/blur25 --json runs/unseen/blur25-$o.json --threads 2 --no-figures
done
# color-blind on the 3x3 sub-images without a step of training, and what the level estimator reads there.
.venv/bin/python -c "from aedenoise.models import load_checkpoint, save_checkpoint; from aedenoise.models.pixel_shuffle import wrap; \
from aedenoise.pretrained import pretrained_weights; \
save_checkpoint('runs/unseen/color-blind-3x3.safetensors', wrap(load_checkpoint(pretrained_weights('color-blind').path).model, 3))"
$A evaluate --method runs/unseen/color-blind-3x3.safetensors --data runs/unseen/blur25 --json runs/unseen/blur25-3x3.json --threads 2 --no-figures
.venv/bin/python benchmarks/real_noise.py levels --data runs/unseen/blur25 --out runs/unseen/blur25-levels.json
for n in poisson30 blur25; do
  $A train --config configs/unet-color-$n-reference.toml --out runs/unet-color-$n-reference --threads 1 --no-progress
  $A evaluate --method runs/unet-color-$n-reference/model.safetensors --data runs/unseen/$n --json runs/unseen/$n-reference.json --threads 1 --no-figures
done
# Real camera noise: correlated at every stride up to 4, so adapt refuses (exit 2) ...
$A adapt "$AEDENOISE_DATA/PolyU-Canon/noisy" --out runs/unseen/polyu-adapted.safetensors --steps 100000 --minutes 10 \
  --threads 2 --no-progress --overwrite || echo "refused (exit $?)"
# ... and forced on the images at the camera preset's level, it makes them worse.
$A adapt "$AEDENOISE_DATA/PolyU-Canon/noisy" --from color-blind --sigma 10 --shuffle 1 --force \
  --out runs/unseen/polyu-forced.safetensors --steps 100000 --minutes 10 --threads 2 --no-progress --overwrite
$A evaluate --method color-blind --method runs/unseen/polyu-forced.safetensors --sigma 10 --data "$AEDENOISE_DATA/PolyU-Canon" \
  --json runs/unseen/polyu-forced.json --threads 2 --no-figures

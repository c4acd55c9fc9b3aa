#!/bin/sh
# Keras and aedenoise on the Fashion-MNIST seed run, back to back, PAIRS times, as this CPU is
# (native) or as a CPU without AVX-512 would run them (avx2: docs/benchmarks.md).
#   sh benchmarks/side_by_side.sh native|avx2 PAIRS OUT_DIR [TF_PYTHON]
# Needs TensorFlow in TF_PYTHON's environment (default /tmp/tfvenv/bin/python; see docs/benchmarks.md).
set -eu
MODE=$1; PAIRS=$2; OUT=$3; TF=${4:-/tmp/tfvenv/bin/python}
mkdir -p "$OUT"
if [ "$MODE" = avx2 ]; then
  # torch's own kernels, oneDNN (torch and TensorFlow), MKL and the compiled kernel: AVX2 code only
  export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 AEDENOISE_NATIVE_ARCH=x86-64-v3
fi
i=1
while [ "$i" -le "$PAIRS" ]; do
  "$TF" benchmarks/keras_tutorial.py --json "$OUT/keras-$MODE-$i.json"
  .venv/bin/python benchmarks/fashion_mnist.py --threads 2 --json "$OUT/aedenoise-$MODE-$i.json"
  i=$((i + 1))
done

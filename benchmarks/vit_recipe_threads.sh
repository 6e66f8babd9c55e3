#!/bin/bash
# The MNIST ViT recipe itself: EPOCHS epochs of the first EXAMPLES training images, TensorFlow's default
# threads (--intra-op-threads 0) against the recipe's one thread per op (1), alternated twice; the epoch
# times are in each run's history.csv. Run folders go to OUT; keep their config.json, metrics.json and
# history.csv (docs/records/mnist_vit_recipe_threads*/ hold those of the runs in docs/performance.md).
#   usage: benchmarks/vit_recipe_threads.sh EXAMPLES EPOCHS OUT
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 EXAMPLES EPOCHS OUT (e.g. 25600 4 /tmp/vit_recipe_threads_long)" >&2; exit 2; }
examples=$1 epochs=$2 out=$3
cd "$(dirname "$0")/.."   # the repository
source .venv/bin/activate
export TFDS_DATA_DIR="${TFDS_DATA_DIR:-../shared/tensorflow_datasets}"
mkdir -p "$out"
for rep in 1 2; do
  for threads in 0 1; do
    run="$out/intra$threads-rep$rep"
    python recipes/mnist_vit.py --train-split "train[:$examples]" --validation-split 'train[-2000:]' \
      --test-split 'test[:2000]' --epochs "$epochs" --intra-op-threads "$threads" --output "$run" --no-export \
      --verbose 0 > "$run.log" 2>&1
  done
done

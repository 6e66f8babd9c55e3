#!/bin/bash
# The MNIST ViT recipe itself, 4 epochs of 25,600 images, TensorFlow's default threads (0) against the
# recipe's one thread per op (1), alternated twice; epoch times from each run's history.csv
# (run folders in /tmp; their config.json, metrics.json and history.csv are copied here).
set -e
cd "$(dirname "$0")/../../.."   # the repository
source .venv/bin/activate
export TFDS_DATA_DIR="${TFDS_DATA_DIR:-../shared/tensorflow_datasets}"
out=/tmp/vit_recipe_threads_long
rm -rf $out
for rep in 1 2; do
  for t in 0 1; do
    python recipes/mnist_vit.py --train-split 'train[:25600]' --validation-split 'train[-2000:]' --test-split 'test[:2000]' \
      --epochs 4 --intra-op-threads $t --output $out/intra$t-rep$rep --no-export --verbose 0 > $out-intra$t-rep$rep.log 2>&1
  done
done

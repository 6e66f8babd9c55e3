#!/bin/bash
# Kept as the record of what made these runs. recipes/cifar10_ladder_arrays.py was removed when the
# trainer learned to run on any backend (#16); the same runs today:
#   KERAS_BACKEND=jax python recipes/cifar10_ladder.py --data-pack pack/cifar10 --epochs 30 --seeds 0 1 --jobs 12
# What made the records in this folder, on a lent GPU machine (device tool), from the repo root,
# with .whl (keras 3.15.1, namex, optree wheels for Python 3.12) and .pack/cifar10 carried:
#   python recipes/cifar10_ladder_arrays.py pack --out .pack/cifar10     # here, with TensorFlow
# That machine has JAX and PyTorch but no TensorFlow, so Keras runs on JAX (PyTorch if JAX fails).
# The runs stop at DEADLINE_S from the start so that their records come back within the lease.
set -u
OUT=${OUT:-/tmp/ladder_out}
START=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $OUT/gpu.txt
cat $OUT/gpu.txt
run() {  # backend, seconds left
  KERAS_BACKEND=$1 python3 recipes/cifar10_ladder_arrays.py train --pack .pack/cifar10 --epochs 30 --seeds 0 1 \
    --jobs 12 --runs runs/ladder_gpu --deadline-s $2 2>&1 | tee -a $OUT/train.log
}
run jax $(( ${DEADLINE_S:-420} - ($(date +%s) - START) ))
if ! ls runs/ladder_gpu/*/history.csv > /dev/null 2>&1; then  # JAX failed at once: the same with PyTorch
  tail -n 40 runs/ladder_gpu/baseline-seed0/log.txt
  rm -rf runs/ladder_gpu
  run torch $(( ${DEADLINE_S:-420} - ($(date +%s) - START) ))
fi
tar czf $OUT/ladder_gpu.tgz runs/ladder_gpu
ls -la $OUT

#!/usr/bin/env bash
# Full batchnorm runs, float32 and bfloat16 alternated, seeds 0 and 1 (issue #20's equal-accuracy check).
set -euo pipefail
out=runs/bn_precision   # records copied to docs/records/cifar10_batchnorm_precision/{bf16,fp32}/
for seed in 0 1; do
  for p in bf16 fp32; do
    flag=$([ $p = bf16 ] && echo --mixed-precision || echo --no-mixed-precision)
    python recipes/cifar10_ladder.py --epochs 30 --seeds $seed --variants batchnorm $flag \
      --runs $out/runs_$p --records $out/records_$p --figures $out/figures_$p --figure-prefix $p
  done
done

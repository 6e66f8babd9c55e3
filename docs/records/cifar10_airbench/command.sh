# airbench94 in Keras, seed 0, bfloat16 (the faster exact-GELU precision on this CPU, benchmarks/airbench_step.py),
# 10 epochs on train[:-5000], validation train[-5000:], test once; 2-core AMD EPYC (AVX-512 BF16), 2026-12-03.
keraszoo train cifar10_airbench --seed 0 --mixed-precision --output runs/airbench/seed0 \
  --export-dir runs/airbench/saved_models --verbose 2

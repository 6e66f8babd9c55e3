# The tokens-mode fine-tuning of DINOv2 ViT-S/14 on MNIST (issue #36): the last 2 blocks, the final norm and
# the head on cached float16 tokens of the first 10 blocks, 112 px, Adam 1e-4, 3 epochs, bfloat16 compute,
# all 55,000 training digits, validation train[55000:], test once. 2-core AMD EPYC (AVX-512 BF16), 2026-12-03.
keraszoo train mnist_dinov2 --mode tokens --finetune-blocks 2 --epochs 3 --learning-rate 1e-4 --mixed-precision \
  --output runs/dinov2_tokens/k2-lr1e-4-seed0 --export-dir runs/dinov2_tokens/saved_models --verbose 2

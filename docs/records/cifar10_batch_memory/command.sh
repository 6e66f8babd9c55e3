# Course Q.16: memory against the batch size. The course's baseline CNN in float32, one epoch of
# train[:5120] per batch size, each run a process of its own; metrics.json's peak_rss_mib is the
# process's peak resident memory (TensorFlow's runtime and the cached split included: compare the sizes).
set -euo pipefail
for batch in 32 64 128 256 512; do
  keraszoo train cifar10_cnn --batch-size "$batch" --epochs 1 --train-split 'train[:5120]' \
    --validation-split 'train[-1000:]' --test-split 'test[:1000]' --no-mixed-precision --no-export \
    --no-evaluate-at-init --verbose 0 --output "runs/cifar10_batch_memory/batch$batch"
  mkdir -p "docs/records/cifar10_batch_memory/batch$batch"
  cp runs/cifar10_batch_memory/batch$batch/{config.json,history.csv,metrics.json} \
     "docs/records/cifar10_batch_memory/batch$batch/"
done

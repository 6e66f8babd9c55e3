# Course Q.23: is a horizontal flip a sensible augmentation for digits? The course CNN on MNIST,
# normalised, with and without random horizontal flips in training (the `augmented` step: its 28x28
# crop of a 28x28 digit is the whole digit, so the flip is the only augmentation), 5 epochs, SGD 0.1,
# seeds 0 and 1; validation train[-5000:] every epoch, test once. Each run's small record is copied here.
set -euo pipefail
for seed in 0 1; do
  for variant in normalized augmented; do
    keraszoo train cifar10_cnn --dataset mnist --variant "$variant" --epochs 5 --seed "$seed" --no-export \
      --verbose 2 --output "runs/mnist_flip/$variant-seed$seed"
    mkdir -p "docs/records/mnist_flip/$variant-seed$seed"
    cp runs/mnist_flip/$variant-seed$seed/{config.json,history.csv,metrics.json,curves.png} \
       "docs/records/mnist_flip/$variant-seed$seed/"
  done
done

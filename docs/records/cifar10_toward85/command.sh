# Issue #37's search for 85 % with the course's network (2-core AMD EPYC, AVX-512 BF16, bfloat16, TensorFlow 2.21).
# The default point is the ladder's batchnorm run (same config, same CPU), its record copied with flip TTA added:
python docs/records/cifar10_toward85/add_flip_to_ladder_record.py runs/ladder_val/batchnorm-seed0 docs/records/cifar10_toward85/default-seed0
python docs/records/cifar10_toward85/add_flip_to_ladder_record.py runs/ladder_val/batchnorm-seed1 docs/records/cifar10_toward85/default-seed1
# 1. each improvement alone on the default, seed 0, 30 epochs:
python recipes/cifar10_sweeps.py --factors improvements --seeds 0 --epochs 30 --train-split 'train[:-5000]' \
    --runs runs/cifar10_toward85 --records docs/records/cifar10_toward85 --figure-prefix cifar10_toward85
# 2. those whose final validation accuracy beat the default's, together, seeds 0 and 1 (runs/queue3.sh chose them by that rule):
python recipes/cifar10_sweeps.py --factors improvements --combine CHOSEN... --seeds 0 1 --epochs 30 --train-split 'train[:-5000]' \
    --runs runs/cifar10_toward85 --records docs/records/cifar10_toward85 --figure-prefix cifar10_toward85

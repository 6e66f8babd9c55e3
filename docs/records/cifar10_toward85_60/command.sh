# Issue #37: the combination chosen on validation at 30 epochs (weight decay 5e-4 + warmup/cosine), trained twice as
# long (2-core AMD EPYC, AVX-512 BF16, bfloat16, TensorFlow 2.21, 2026-12-03; one training at a time):
python recipes/cifar10_sweeps.py --factors improvements --combine weight_decay5e-4 cosine --seeds 0 1 --epochs 60 \
    --train-split 'train[:-5000]' --runs runs/cifar10_toward85_60 --records docs/records/cifar10_toward85_60 \
    --figure-prefix cifar10_toward85_60
# The run with the higher validation accuracy with flip TTA (the rule fixed before seed 1 ended), exported with the TTA
# inside the SavedModel as the next version of cifar10_cnn_batchnorm, then the SavedModel alone on the full test split:
keraszoo export runs/cifar10_toward85_60/weight_decay5e-4+cosine-seedN --tta flip --export-dir saved_models \
    --export-name cifar10_cnn_batchnorm
keraszoo evaluate saved_models/cifar10_cnn_batchnorm --split test

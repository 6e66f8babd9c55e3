# Flip test-time augmentation, decided on validation data: the ladder's validation-split runs
# (docs/records/cifar10_ladder_val, seed 0) exported from their run folders, each scored on its
# validation split (train[-5000:], never trained on) without and with --tta flip; the test split then
# once with the setting chosen. The runs' own test accuracy without TTA is in their metrics.json.
set -euo pipefail
for run in normalized-seed0 augmented-seed0 lr_decay-seed0 dropout-seed0; do
  keraszoo export "runs/ladder_val/$run" --export-dir runs/tta_models --export-name "$run"
  for tta in none flip; do
    keraszoo evaluate "runs/tta_models/$run" --split 'train[-5000:]' --tta "$tta" --show 0 | tail -1
  done
  keraszoo evaluate "runs/tta_models/$run" --split test --tta flip --show 0 | tail -1
done

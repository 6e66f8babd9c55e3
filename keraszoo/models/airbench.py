"""airbench94's and airbench96's networks in Keras (Keller Jordan's ``legacy/airbench94.py`` and
``legacy/airbench96.py``; arXiv 2404.00498).

    uint8 image -> per-channel normalisation (CIFAR-10's mean and std)
    -> 2x2 whitening convolution (24 filters, frozen, set from training patches; bias trains 3 epochs) -> GELU
    -> 3 x [conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU], widths 64 / 256 / 256
    -> max-pool 3 (the 3x3 map left of 32 -> 31 -> 15 -> 7 -> 3: a global max) -> linear 256 -> 10 -> x 1/9

airbench96 (``residual=True``, widths 128 / 384 / 512): each block has a third convolution, and the
second and third are bridged by a residual connection: conv -> pool -> BN -> GELU (= x0) -> conv -> BN
-> GELU -> conv -> BN, + x0 -> GELU.

The convolutions have no bias and start as identities on their first input channels (PyTorch's
``dirac_``), the rest as PyTorch initialises them (uniform within 1/sqrt(fan_in)). Batch norm keeps its
scale at 1 (not trained) and trains its bias at 64 times the learning rate: the bias is stored divided by
sqrt(64) = 8 and multiplied back (``ScaledBias``), so one SGD learning rate moves it 64 times as far and
its weight decay stays the others' (PyTorch's parameter groups, with one optimizer).
"""

from __future__ import annotations

import keras
import numpy as np

from keraszoo.models.batch_norm import FusedBatchNormalization

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # the original's, on [0, 1] pixels
CIFAR_STD = (0.2470, 0.2435, 0.2616)
BIAS_LR_SCALE = 64.0


@keras.saving.register_keras_serializable(package="keraszoo")
class DiracInit(keras.initializers.Initializer):
    """A conv kernel (kh, kw, in, out) whose first ``in`` output channels pass their input channel through
    (PyTorch's ``dirac_`` on ``w[:in]``); the other channels uniform within 1/sqrt(fan_in)."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = shape
        bound = 1.0 / np.sqrt(kh * kw * cin)
        kernel = keras.random.uniform(shape, -bound, bound, dtype=dtype, seed=self.seed)
        identity = np.zeros(shape, "float32")
        identity[kh // 2, kw // 2, np.arange(min(cin, cout)), np.arange(min(cin, cout))] = 1.0
        mask = np.zeros(shape, "float32")
        mask[..., : min(cin, cout)] = 1.0
        return keras.ops.where(keras.ops.convert_to_tensor(mask) > 0, keras.ops.cast(identity, dtype), kernel)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="keraszoo")
class ScaledBias(keras.layers.Layer):
    """x + scale * b, b trained: the same SGD step moves the effective bias scale**2 times as far."""

    def __init__(self, scale: float = BIAS_LR_SCALE ** 0.5, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, inputs):
        return inputs + keras.ops.cast(self.scale * self.bias, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def whitening_kernel(patches: np.ndarray, *, eps: float = 5e-4) -> np.ndarray:
    """The whitening convolution's kernel (kh, kw, c, 2 * kh * kw * c) from training patches (n, kh, kw, c):
    the eigenvectors of the patches' (uncentred) covariance scaled by 1 / sqrt(eigenvalue + eps), largest
    first, and their negatives (the original's ``init_whitening_conv``)."""
    n, kh, kw, c = patches.shape
    flat = patches.reshape(n, -1).astype("float64")
    covariance = flat.T @ flat / n
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    scaled = eigenvectors / np.sqrt(eigenvalues + eps)  # column i: filter i
    kernel = np.concatenate([scaled, -scaled], axis=1).reshape(kh, kw, c, 2 * kh * kw * c)
    return kernel.astype("float32")


def patches_of(images: np.ndarray, size: int = 2) -> np.ndarray:
    """Every size x size patch (stride 1) of float images (n, h, w, c), as (n * (h-size+1)**2, size, size, c)."""
    n, h, w, c = images.shape
    windows = np.lib.stride_tricks.sliding_window_view(images, (size, size), axis=(1, 2))  # n, h', w', c, s, s
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, size, size, c)


def _TanhGelu(_, name):  # noqa: N802 - stands where keras.layers.Activation does
    return keras.layers.Lambda(lambda x: keras.activations.gelu(x, approximate=True), name=name)


def _conv(filters: int, name: str, seed):
    return keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=DiracInit(seed),
                               name=name)


def _batch_norm(momentum: float, name: str):
    # Scale frozen at 1 (scale=False); epsilon 1.001e-5, the fused kernel's least, where the original has 1e-12.
    return [FusedBatchNormalization(momentum=momentum, epsilon=1.001e-5, center=False, scale=False, name=name),
            ScaledBias(name=f"{name}_bias")]


def build_airbench94(*, widths=(64, 256, 256), batchnorm_momentum: float = 0.6, scaling_factor: float = 1 / 9,
                     num_classes: int = 10, image_shape=(32, 32, 3), whiten_kernel: np.ndarray | None = None,
                     seed: int | None = None, activation: str = "gelu", residual: bool = False,
                     name: str = "airbench94") -> keras.Model:
    """airbench94 from raw uint8 images to logits. ``whiten_kernel`` (see ``whitening_kernel``) sets the frozen
    whitening convolution; without it the layer starts random (a model to load weights into).
    ``activation``: the original's exact GELU; "gelu_tanh" or "relu" only to measure what GELU costs.
    ``residual``: airbench96's three-convolution blocks (``build_airbench96``)."""
    act = keras.layers.Activation if activation != "gelu_tanh" else _TanhGelu
    images = keras.Input(image_shape, dtype="uint8", name="images")
    x = keras.ops.cast(images, "float32") / 255.0
    x = keras.layers.Normalization(mean=CIFAR_MEAN, variance=[s * s for s in CIFAR_STD], name="normalize")(x)
    whiten_width = 2 * image_shape[-1] * 2 * 2
    whiten = keras.layers.Conv2D(whiten_width, 2, padding="valid", use_bias=True, name="whiten",
                                 kernel_initializer=keras.initializers.RandomUniform(-0.5, 0.5, seed=seed))
    x = act(activation, name="whiten_gelu")(whiten(x))
    whiten.kernel.trainable = False  # the kernel is data, not learned; its bias learns (3 epochs)
    if whiten_kernel is not None:
        whiten.kernel.assign(whiten_kernel)
    for block, width in enumerate(widths, start=1):
        x = _conv(width, f"block{block}_conv1", seed)(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        for layer in _batch_norm(batchnorm_momentum, f"block{block}_norm1"):
            x = layer(x)
        x = shortcut = act(activation, name=f"block{block}_gelu1")(x)
        x = _conv(width, f"block{block}_conv2", seed)(x)
        for layer in _batch_norm(batchnorm_momentum, f"block{block}_norm2"):
            x = layer(x)
        x = act(activation, name=f"block{block}_gelu2")(x)
        if residual:
            x = _conv(width, f"block{block}_conv3", seed)(x)
            for layer in _batch_norm(batchnorm_momentum, f"block{block}_norm3"):
                x = layer(x)
            x = keras.layers.Add(name=f"block{block}_residual")([x, shortcut])
            x = act(activation, name=f"block{block}_gelu3")(x)
    x = keras.layers.MaxPooling2D(3, name="pool")(x)  # 3x3 -> 1x1: the global max, as the original
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(num_classes, use_bias=False, name="head",
                           kernel_initializer=keras.initializers.RandomUniform(
                               -1 / np.sqrt(widths[-1]), 1 / np.sqrt(widths[-1]), seed=seed))(x)
    logits = keras.layers.Rescaling(scaling_factor, name="logit_scale", dtype="float32")(x)
    return keras.Model(images, logits, name=name)


def build_airbench96(*, widths=(128, 384, 512), name: str = "airbench96", **kwargs) -> keras.Model:
    """airbench96: airbench94's layout with residual three-convolution blocks, widths 128 / 384 / 512."""
    return build_airbench94(widths=widths, residual=True, name=name, **kwargs)

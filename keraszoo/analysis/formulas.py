"""The course's Q.1 formulas: output sizes and weight counts of convolutions and pooling."""

from __future__ import annotations

import math


def conv_output_size(n: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """Output size along one axis of a convolution or pooling.

        out = floor((n + 2p - d(k - 1) - 1) / s) + 1

    which is floor((n + 2p - k) / s) + 1 for the undilated case (d = 1). Examples:
    a 5x5 conv with padding 2, stride 1 keeps 32 -> 32; a 2x2 pool with stride 2
    halves 32 -> 16 and floors 7 -> 3.
    """
    if min(n, kernel, stride, dilation) < 1 or padding < 0:
        raise ValueError("n, kernel, stride and dilation must be >= 1 and padding >= 0.")
    effective = dilation * (kernel - 1) + 1
    if n + 2 * padding < effective:
        raise ValueError(f"kernel {kernel} (dilation {dilation}) is larger than the padded input {n + 2 * padding}.")
    return (n + 2 * padding - effective) // stride + 1


def same_padding(n: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """Padding (before, after) that Keras/TF's ``padding="same"`` adds along one axis.

        total = max((ceil(n / s) - 1) * s + d(k - 1) + 1 - n, 0), before = total // 2

    The extra pixel of an odd total goes after (bottom/right), unlike PyTorch's symmetric padding.
    """
    total = max((math.ceil(n / stride) - 1) * stride + dilation * (kernel - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def conv_weights(kernel: int | tuple[int, int], in_channels: int, out_channels: int, bias: bool = True) -> tuple[int, int]:
    """(weights, biases) a 2-D convolution learns.

        weights = k_h * k_w * c_in * c_out,  biases = c_out

    Independent of the image size: the kernel is shared over all positions.
    E.g. 5x5, 3 -> 32 channels: 2,400 weights + 32 biases.
    """
    k_h, k_w = (kernel, kernel) if isinstance(kernel, int) else kernel
    return k_h * k_w * in_channels * out_channels, (out_channels if bias else 0)


def dense_equivalent_weights(input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
    """Weights a fully connected layer needs to map the same input to the same output.

        weights = (h_in * w_in * c_in) * (h_out * w_out * c_out)

    E.g. the course's conv1 (32x32x3 -> 32x32x32): 3,072 * 32,768 = 100,663,296
    weights, against 2,400 for the convolution.
    """
    return math.prod(input_shape) * math.prod(output_shape)

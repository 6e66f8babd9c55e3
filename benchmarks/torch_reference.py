"""PyTorch twins of keraszoo's reference models, for benchmarks/train_throughput.py only.

Same shapes, same layers, same optimizer settings as the Keras side; inputs arrive as raw
uint8 NHWC batches (as datasets store them) and are scaled / normalised / augmented inside the
step, as keraszoo's models do in-graph. What was done for PyTorch's speed on a CPU (issue #20):

- the CNN runs in channels_last (NHWC) memory format, weights and activations, which oneDNN's
  convolutions want; its input never leaves NHWC: ``crop_flip_normalize`` crops and flips the
  whole uint8 batch with ONE advanced-indexing gather (per-image offsets, the flip folded into the
  column indices), then converts and normalises once, in place, into a channels_last float tensor;
- the optimizers use PyTorch's fused CPU kernels (``fused=True``: one kernel for all parameters'
  updates instead of one small op per tensor and operation);
- ``zero_grad(set_to_none=True)``, no ``.item()`` or other synchronisation inside the timed steps
  (the running loss and accuracy that Keras's step keeps are summed on the device, in
  train_throughput.py's step);
- as many intra-op threads as TensorFlow gets (the machine's cores);
- eager, not ``torch.compile``: TorchInductor's compiled networks were slower for all three models
  on our CPUs (train_throughput.py --torch-compile times them; docs/performance.md, fifth session).
"""

from __future__ import annotations

import torch
from torch import nn


class CourseCNN(nn.Module):
    """conv5x5 32-64-64 (+BN) + ReLU + maxpool 2, fc 1000 + dropout, fc 10: the batchnorm variant."""

    def __init__(self, in_channels=3, filters=(32, 64, 64), fc_units=1000, num_classes=10, image_side=28,
                 dropout=0.25):  # the batchnorm variant's default since 2026-11-27 (0.5 before: same work)
        super().__init__()
        layers, channels = [], in_channels
        for width in filters:
            layers += [nn.Conv2d(channels, width, 5, padding=2), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        side = image_side // 2 ** len(filters)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * side * side, fc_units),
                                        nn.ReLU(), nn.Dropout(dropout), nn.Linear(fc_units, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_dim, dropout):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim),
                                 nn.Dropout(dropout))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        y = self.norm1(x)
        x = x + self.dropout(self.attention(y, y, y, need_weights=False)[0])
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """keraszoo's build_vit: conv patch embedding, class token, learned positions, pre-norm blocks."""

    def __init__(self, image_side=28, channels=1, patch=7, dim=64, layers=6, heads=4, mlp_dim=128, num_classes=10,
                 dropout=0.1):
        super().__init__()
        tokens = (image_side // patch) ** 2 + 1
        self.patch = nn.Conv2d(channels, dim, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.positions = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_dim, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(len(x), -1, -1), x], dim=1) + self.positions
        x = self.norm(self.blocks(self.dropout(x)))
        return self.head(x[:, 0])


def mlp(input_dim=784, hidden=100, num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_dim, hidden), nn.Tanh(), nn.Linear(hidden, num_classes))


def crop_flip_normalize(images: torch.Tensor, crop: int, mean: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC batch -> float NCHW (channels_last in memory): a random crop per image, a random
    horizontal flip per image, then (x - mean) * inv_std per channel.

    One gather: ``images[n, rows, cols]`` with per-image row and column indices (a flipped image reads
    its columns backwards), on the uint8 batch, so the gather moves a quarter of the float bytes.
    """
    n, h, w, _ = images.shape
    device = images.device  # the indices where the pixels are (a GPU's batch: no copy to the host and back)
    steps = torch.arange(crop, device=device)
    top = torch.randint(0, h - crop + 1, (n, 1, 1), device=device)
    left = torch.randint(0, w - crop + 1, (n, 1, 1), device=device)
    flip = torch.rand(n, 1, 1, device=device) < 0.5
    rows = top + steps.view(1, crop, 1)
    cols = left + torch.where(flip, (crop - 1 - steps).view(1, 1, crop), steps.view(1, 1, crop))
    patches = images[torch.arange(n, device=device).view(n, 1, 1), rows, cols]  # (n, crop, crop, c) uint8
    # NHWC memory seen as NCHW is exactly channels_last; float() keeps that layout.
    return patches.permute(0, 3, 1, 2).float().sub_(mean).mul_(inv_std)

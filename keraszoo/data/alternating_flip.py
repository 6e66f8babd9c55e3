"""airbench's training stream and test-time views, on uint8 images held in memory.

Training (``AlternatingFlipSplit``): every image is flipped left-right on alternate epochs (airbench's
"alternating flip": a random half of the images starts flipped, drawn once per seed, and every image
flips again on each odd epoch, so each is seen both ways in any two consecutive epochs), then translated
by up to ``translate`` pixels (reflection padding, an offset drawn per image and epoch), then, with
``cutout`` (airbench96), a ``cutout`` x ``cutout`` square at a random place (per image and epoch) is filled
with ``cutout_fill``, the mean colour, which the original's zeroes are after normalisation. Batches are whole
(the last partial one is dropped, as the original's loader does). Epoch e's images and order depend on
(seed, e) alone, so a resumed run sees the batches an uninterrupted one sees.

Test time (``tta_views``): the image and its mirror (level 1); and both translated by one pixel up-left
and down-right, each with its mirror (level 2: 6 views). ``tta_logits`` weighs them as the original:
0.5 * mean(untranslated pair) + 0.5 * mean(translated pairs).
"""

from __future__ import annotations

import math

import keras
import numpy as np


def reflect_pad(images: np.ndarray, pad: int) -> np.ndarray:
    return np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def translate(images: np.ndarray, offsets: np.ndarray, pad: int) -> np.ndarray:
    """Each image (n, h, w, c) shifted by its (dy, dx) in [-pad, pad], read from its reflection-padded copy."""
    n, h, w, _ = images.shape
    padded = reflect_pad(images, pad)
    rows = (pad + offsets[:, 0])[:, None] + np.arange(h)[None, :]  # n, h
    cols = (pad + offsets[:, 1])[:, None] + np.arange(w)[None, :]  # n, w
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


class AlternatingFlipSplit:
    """The training split as airbench feeds it (duck-types ``ArraySplit`` for keraszoo's trainer)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, split: str, *, translate: int = 2, flip: bool = True,
                 cutout: int = 0, cutout_fill=(0, 0, 0)):
        self.images, self.labels, self.split = images, labels, split
        self.pad, self.flip, self.cutout = translate, flip, cutout
        self.cutout_fill = np.asarray(cutout_fill, images.dtype)

    @property
    def num_examples(self) -> int:
        return len(self.labels)

    def flipped(self, seed: int, epoch: int) -> np.ndarray:
        """Which images are mirrored in ``epoch``: a seeded half at epoch 0, all of them switched on odd epochs."""
        if not self.flip:
            return np.zeros(self.num_examples, bool)
        start = np.random.default_rng([seed, 0xF11B]).random(self.num_examples) < 0.5
        return start ^ bool(epoch % 2)

    def epoch_images(self, seed: int, epoch: int, indices: np.ndarray) -> np.ndarray:
        mirror, offsets, corners = self._epoch_draws(seed, epoch)
        images = self.images[indices]
        images[mirror[indices]] = images[mirror[indices], :, ::-1]
        images = translate(images, offsets[indices], self.pad) if self.pad else images
        if self.cutout:
            top, left = corners[indices].T
            rows = np.arange(images.shape[1])[None, :, None] - top[:, None, None]  # n, h, 1
            cols = np.arange(images.shape[2])[None, None, :] - left[:, None, None]  # n, 1, w
            images[(rows >= 0) & (rows < self.cutout) & (cols >= 0) & (cols < self.cutout)] = self.cutout_fill
        return images

    def _epoch_draws(self, seed: int, epoch: int):
        """Each image's flip, offset and cutout corner in ``epoch``, whatever batch it falls in: drawn once per
        epoch (the corner within the image, as the original's)."""
        if getattr(self, "_drawn_for", None) != (seed, epoch):
            offsets = np.random.default_rng([seed, epoch, 0x7A]).integers(-self.pad, self.pad + 1,
                                                                           (self.num_examples, 2))
            height, width = self.images.shape[1:3]
            corners = np.random.default_rng([seed, epoch, 0xC07]).integers(
                0, [height - self.cutout + 1, width - self.cutout + 1], (self.num_examples, 2))
            self._draws, self._drawn_for = (self.flipped(seed, epoch), offsets, corners), (seed, epoch)
        return self._draws

    def batches(self, *, batch_size: int):
        """The split unaugmented, in order (evaluation)."""
        from keraszoo.data.arrays import ArraySplit

        return ArraySplit(self.images, self.labels, self.split).batches(batch_size=batch_size)

    def epoch_batches(self, *, batch_size: int, seed: int, first_epoch: int, last_epoch: int):
        if last_epoch <= first_epoch:
            raise ValueError(f"no epoch to run: first_epoch={first_epoch}, last_epoch={last_epoch}.")
        if self.num_examples < batch_size:
            raise ValueError(f"{self.split} holds {self.num_examples} images, fewer than one batch of {batch_size}.")
        stream = _Stream(self, seed, range(first_epoch, last_epoch), batch_size)
        return stream, stream.steps_per_epoch


class _Stream(keras.utils.PyDataset):
    def __init__(self, split: AlternatingFlipSplit, seed: int, epochs: range, batch_size: int):
        super().__init__(workers=1, use_multiprocessing=False)
        self.split, self.seed, self.epochs, self.batch_size = split, seed, epochs, batch_size
        self.steps_per_epoch = split.num_examples // batch_size  # whole batches only
        self._epoch, self._order = None, None

    def __len__(self):
        return self.steps_per_epoch * len(self.epochs)

    def __getitem__(self, index):
        position, step = divmod(index, self.steps_per_epoch)
        epoch = self.epochs[position]
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.split.num_examples)
        chosen = self._order[step * self.batch_size:(step + 1) * self.batch_size]
        return self.split.epoch_images(self.seed, epoch, chosen), self.split.labels[chosen]


def tta_views(images: np.ndarray, level: int = 2) -> list[np.ndarray]:
    """The views of a batch: [x, mirror(x)] (level 1), then [up-left, its mirror, down-right, its mirror]."""
    views = [images] if level == 0 else [images, images[:, :, ::-1]]
    if level >= 2:
        padded = reflect_pad(images, 1)
        h, w = images.shape[1:3]
        for shifted in (padded[:, 0:h, 0:w], padded[:, 2:h + 2, 2:w + 2]):
            views += [shifted, shifted[:, :, ::-1]]
    return views


def tta_logits(model, images: np.ndarray, level: int = 2, batch_size: int = 1000) -> np.ndarray:
    """The model's logits averaged over the views as airbench weighs them."""
    parts = []
    for start in range(0, len(images), batch_size):
        views = [np.asarray(model(view, training=False), "float32")
                 for view in tta_views(images[start:start + batch_size], level)]
        logits = views[0] if level == 0 else 0.5 * (views[0] + views[1])
        if level >= 2:
            logits = 0.5 * logits + 0.5 * 0.25 * (views[2] + views[3] + views[4] + views[5])
        parts.append(logits)
    return np.concatenate(parts) if parts else np.zeros((0,), "float32")


def steps_for(epochs: float, num_examples: int, batch_size: int) -> int:
    """The original's total steps: ceil(whole batches per epoch x epochs)."""
    return math.ceil(num_examples // batch_size * epochs)

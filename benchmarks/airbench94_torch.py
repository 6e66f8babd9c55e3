#!/usr/bin/env python
"""Keller Jordan's airbench94 itself (PyTorch), on keraszoo's data and splits, on this CPU: the other side of
keraszoo's Keras port (issue #38). Does the original reach 94 % on the JPEG-recompressed CIFAR-10 copy here?

The training code is `legacy/airbench94.py` of KellerJordan/cifar10-airbench (MIT licence, © 2024 Keller
Jordan), kept line for line where it can be: hyperparameters, the decoupled lr/wd, the 64x BN-bias rate, the
whitening init, dirac init, alternating flip, translate 2, lookahead, the schedule, 9.9 epochs, label
smoothing, 6-view TTA. What changes, and why:

- the data: keraszoo's pack (`keraszoo pack`, the same pixels TFDS gives the Keras port) instead of
  torchvision's download (no internet here); train on `--train-split` (45,000 images, as the port does), the
  per-epoch accuracy on `--validation-split`, the test split once at the end, plain and with TTA;
- the device: on a GPU (`--device cuda`) the original's float16 network with float32 batch norms
  (`--precision fp16`, the default there); on a CPU PyTorch's bfloat16 autocast (how PyTorch runs mixed
  precision on CPUs), the weights in float32; `--precision fp32` for float32 throughout; channels_last;
- one run with a seed (`torch.manual_seed`) instead of 25; no warm-up run; CPU wall-clock times.

examples:
  keraszoo pack --out .pack/cifar10           # once, where TensorFlow is
  python benchmarks/airbench94_torch.py --data-pack .pack/cifar10 --seed 0 --output docs/records/airbench94_torch/seed0.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from math import ceil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

hyp = {
    'opt': {'train_epochs': 9.9, 'batch_size': 1024, 'lr': 11.5, 'momentum': 0.85, 'weight_decay': 0.0153,
            'bias_scaler': 64.0, 'label_smoothing': 0.2, 'whiten_bias_epochs': 3},
    'aug': {'flip': True, 'translate': 2},
    'net': {'widths': {'block1': 64, 'block2': 256, 'block3': 256}, 'batchnorm_momentum': 0.6,
            'scaling_factor': 1 / 9, 'tta_level': 2},
}
CIFAR_MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
CIFAR_STD = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)


def batch_flip_lr(inputs):
    flip_mask = (torch.rand(len(inputs), device=inputs.device) < 0.5).view(-1, 1, 1, 1)
    return torch.where(flip_mask, inputs.flip(-1), inputs)


def batch_crop(images, crop_size):
    r = (images.size(-1) - crop_size) // 2
    shifts = torch.randint(-r, r + 1, size=(len(images), 2), device=images.device)
    images_out = torch.empty((len(images), 3, crop_size, crop_size), device=images.device, dtype=images.dtype)
    for sy in range(-r, r + 1):  # r <= 2 here: the original's first method
        for sx in range(-r, r + 1):
            mask = (shifts[:, 0] == sy) & (shifts[:, 1] == sx)
            images_out[mask] = images[mask, :, r + sy:r + sy + crop_size, r + sx:r + sx + crop_size]
    return images_out


class CifarLoader:
    """The original's loader on uint8 NHWC arrays: normalised once, pre-flipped and pre-padded at epoch 0."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, train: bool, batch_size: int, aug=None,
                 device="cpu", dtype=torch.float32):
        images = torch.from_numpy(images).to(device)
        self.images = (images.to(dtype) / 255).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        self.labels = torch.from_numpy(labels.astype(np.int64)).to(device)
        self.proc_images, self.epoch, self.aug = {}, 0, aug or {}
        self.batch_size, self.drop_last, self.shuffle = batch_size, train, train

    def normalize(self, images):
        mean, std = (x.to(images.device, images.dtype) for x in (CIFAR_MEAN, CIFAR_STD))
        return (images - mean) / std

    def __len__(self):
        return len(self.images) // self.batch_size if self.drop_last else ceil(len(self.images) / self.batch_size)

    def __iter__(self):
        if self.epoch == 0:
            images = self.proc_images['norm'] = self.normalize(self.images)
            if self.aug.get('flip', False):
                images = self.proc_images['flip'] = batch_flip_lr(images)
            pad = self.aug.get('translate', 0)
            if pad > 0:
                self.proc_images['pad'] = F.pad(images, (pad,) * 4, 'reflect')
        if self.aug.get('translate', 0) > 0:
            images = batch_crop(self.proc_images['pad'], self.images.shape[-2])
        elif self.aug.get('flip', False):
            images = self.proc_images['flip']
        else:
            images = self.proc_images['norm']
        if self.aug.get('flip', False) and self.epoch % 2 == 1:
            images = images.flip(-1)
        self.epoch += 1
        indices = (torch.randperm if self.shuffle else torch.arange)(len(images), device=images.device)
        for i in range(len(self)):
            idxs = indices[i * self.batch_size:(i + 1) * self.batch_size]
            yield images[idxs].contiguous(memory_format=torch.channels_last), self.labels[idxs]


class Mul(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


class BatchNorm(nn.BatchNorm2d):
    def __init__(self, num_features, momentum, eps=1e-12, weight=False, bias=True):
        super().__init__(num_features, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad = weight
        self.bias.requires_grad = bias


class Conv(nn.Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size=3, padding='same', bias=False):
        super().__init__(in_channels, out_channels, kernel_size=kernel_size, padding=padding, bias=bias)

    def reset_parameters(self):
        super().reset_parameters()
        if self.bias is not None:
            self.bias.data.zero_()
        w = self.weight.data
        torch.nn.init.dirac_(w[:w.size(1)])


class ConvGroup(nn.Module):
    def __init__(self, channels_in, channels_out, batchnorm_momentum):
        super().__init__()
        self.conv1 = Conv(channels_in, channels_out)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = BatchNorm(channels_out, batchnorm_momentum)
        self.conv2 = Conv(channels_out, channels_out)
        self.norm2 = BatchNorm(channels_out, batchnorm_momentum)
        self.activ = nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


def make_net(device="cpu", fp16=False):
    widths, momentum = hyp['net']['widths'], hyp['net']['batchnorm_momentum']
    net = nn.Sequential(
        Conv(3, 24, 2, padding=0, bias=True), nn.GELU(),
        ConvGroup(24, widths['block1'], momentum), ConvGroup(widths['block1'], widths['block2'], momentum),
        ConvGroup(widths['block2'], widths['block3'], momentum),
        nn.MaxPool2d(3), nn.Flatten(), nn.Linear(widths['block3'], 10, bias=False), Mul(hyp['net']['scaling_factor']))
    net[0].weight.requires_grad = False
    if fp16:  # the original's: a float16 network, its batch norms in float32
        net = net.half()
    net = net.to(device, memory_format=torch.channels_last)
    for module in net.modules():
        if isinstance(module, BatchNorm):
            module.float()
    return net


def init_whitening_conv(layer, train_set, eps=5e-4):
    c, (h, w) = train_set.shape[1], layer.weight.data.shape[2:]
    patches = train_set.unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c, h, w).float()
    n = len(patches)
    flat = patches.view(n, -1)
    eigenvalues, eigenvectors = torch.linalg.eigh(flat.T @ flat / n, UPLO='U')
    eigenvalues, eigenvectors = eigenvalues.flip(0).view(-1, 1, 1, 1), eigenvectors.T.reshape(c * h * w, c, h, w).flip(0)
    scaled = eigenvectors / torch.sqrt(eigenvalues + eps)
    layer.weight.data[:] = torch.cat((scaled, -scaled))


class LookaheadState:
    def __init__(self, net):
        self.net_ema = {k: v.clone() for k, v in net.state_dict().items()}

    def update(self, net, decay):
        for ema_param, net_param in zip(self.net_ema.values(), net.state_dict().values()):
            if net_param.dtype in (torch.half, torch.float):
                ema_param.lerp_(net_param, 1 - decay)
                net_param.copy_(ema_param)


def infer(model, loader, tta_level, autocast):
    def infer_mirror(inputs):
        return 0.5 * model(inputs) + 0.5 * model(inputs.flip(-1))

    def infer_mirror_translate(inputs):
        padded = F.pad(inputs, (1,) * 4, 'reflect')
        translated = torch.stack([infer_mirror(padded[:, :, 0:32, 0:32]), infer_mirror(padded[:, :, 2:34, 2:34])])
        return 0.5 * infer_mirror(inputs) + 0.5 * translated.mean(0)

    infer_fn = [lambda x: model(x).clone(), infer_mirror, infer_mirror_translate][tta_level]
    model.eval()
    with torch.no_grad(), autocast():
        return torch.cat([infer_fn(x).float() for x in loader.normalize(loader.images).split(2000)])


def evaluate(model, loader, tta_level, autocast):
    return (infer(model, loader, tta_level, autocast).argmax(1) == loader.labels).float().mean().item()


def main(args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads or torch.get_num_threads())

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    precision = args.precision or ("fp16" if device == "cuda" else "bf16")
    dtype = torch.float16 if precision == "fp16" else torch.float32

    def autocast():
        return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")

    def synchronize():  # GPU work is asynchronous: time what ran
        if device == "cuda":
            torch.cuda.synchronize()

    from keraszoo.data.arrays import read_pack_split

    def loader(split, train):
        data = read_pack_split(args.data_pack, split)[0]
        return CifarLoader(data.images, data.labels, train, hyp['opt']['batch_size'] if train else 2000,
                           hyp['aug'] if train else None, device=device, dtype=dtype)

    try:  # a missing, damaged or too small pack: one line that says how to make it, not a traceback
        train_loader = loader(args.train_split, True)
        val_loader, test_loader = loader(args.validation_split, False), loader(args.test_split, False)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    if len(train_loader) == 0:
        raise SystemExit(f"error: {args.train_split} holds fewer than one batch of {hyp['opt']['batch_size']} images.")
    batch_size, epochs, momentum = hyp['opt']['batch_size'], args.epochs, hyp['opt']['momentum']
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = hyp['opt']['lr'] / kilostep_scale
    wd = hyp['opt']['weight_decay'] * batch_size / kilostep_scale
    lr_biases = lr * hyp['opt']['bias_scaler']
    loss_fn = nn.CrossEntropyLoss(label_smoothing=hyp['opt']['label_smoothing'], reduction='none')
    total_train_steps = ceil(len(train_loader) * epochs)

    model = make_net(device, fp16=precision == "fp16")
    norm_biases = [p for k, p in model.named_parameters() if 'norm' in k and p.requires_grad]
    other_params = [p for k, p in model.named_parameters() if 'norm' not in k and p.requires_grad]
    optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                                 dict(params=other_params, lr=lr, weight_decay=wd / lr)], momentum=momentum, nesterov=True)

    def get_lr(step):
        warmup_steps = int(total_train_steps * 0.23)
        if step < warmup_steps:
            frac = step / warmup_steps
            return 0.2 * (1 - frac) + 1.0 * frac
        frac = (step - warmup_steps) / (total_train_steps - warmup_steps)
        return 1.0 * (1 - frac) + 0.07 * frac

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, get_lr)
    alpha_schedule = 0.95 ** 5 * (torch.arange(total_train_steps + 1) / total_train_steps) ** 3
    lookahead_state = LookaheadState(model)
    synchronize()
    start = time.perf_counter()
    init_whitening_conv(model[0], train_loader.normalize(train_loader.images[:5000]))
    synchronize()
    total_time_seconds, current_steps, history = time.perf_counter() - start, 0, []
    for epoch in range(ceil(epochs)):
        model[0].bias.requires_grad = epoch < hyp['opt']['whiten_bias_epochs']
        start = time.perf_counter()
        model.train()
        for inputs, labels in train_loader:
            with autocast():
                outputs = model(inputs)
                loss = loss_fn(outputs.float(), labels).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            current_steps += 1
            if current_steps % 5 == 0:
                lookahead_state.update(model, decay=alpha_schedule[current_steps].item())
            if current_steps >= total_train_steps:
                lookahead_state.update(model, decay=1.0)
                break
        synchronize()
        seconds = time.perf_counter() - start
        total_time_seconds += seconds
        row = {"epoch": epoch + 1, "train_loss": loss.item() / batch_size,
               "train_acc": (outputs.detach().argmax(1) == labels).float().mean().item(),
               "val_acc": evaluate(model, val_loader, 0, autocast), "train_s": round(seconds, 1)}
        history.append(row)
        print(json.dumps(row), flush=True)
    start = time.perf_counter()
    tta_test = evaluate(model, test_loader, hyp['net']['tta_level'], autocast)
    record = {"seed": args.seed, "device": device, "precision": precision, "epochs": epochs, "steps": current_steps,
              "train_split": args.train_split, "validation_split": args.validation_split,
              "test_split": args.test_split, "history": history,
              "val_accuracy": history[-1]["val_acc"],
              "val_tta_accuracy": evaluate(model, val_loader, hyp['net']['tta_level'], autocast),
              "test_accuracy": evaluate(model, test_loader, 0, autocast), "test_tta_accuracy": tta_test,
              "tta_s": round(time.perf_counter() - start, 1), "train_time_s": round(total_time_seconds, 1),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": _cpu(),
              "gpu": torch.cuda.get_device_name() if device == "cuda" else None}
    print(json.dumps({k: v for k, v in record.items() if k != "history"}))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n")


def _cpu() -> str:
    """The CPU's model and the SIMD units that matter here, from /proc/cpuinfo (no TensorFlow, no Keras)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    units = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} ({' '.join(units)})"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-pack", default=".pack/cifar10", help="a keraszoo pack folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=hyp['opt']['train_epochs'],
                        help="the original's 9.9 (default: %(default)s)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if there is one")
    parser.add_argument("--precision", choices=["fp16", "bf16", "fp32"], default=None,
                        help="default: fp16 on a GPU (the original's), bf16 autocast on a CPU")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (default: PyTorch's)")
    parser.add_argument("--train-split", default="train[:-5000]")
    parser.add_argument("--validation-split", default="train[-5000:]")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--output", default="", help="the record (JSON) to write")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.epochs <= 0:
        raise SystemExit(f"error: --epochs {arguments.epochs}: train at least part of an epoch (the original: 9.9).")
    if arguments.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but PyTorch sees no GPU here: leave --device out to use the CPU.")
    main(arguments)

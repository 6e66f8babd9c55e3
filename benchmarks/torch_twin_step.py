"""The PyTorch side of benchmarks/train_throughput.py: a twin's training step as a function, its timing, and
the device it runs on. torch is imported inside each function: the Keras side runs where PyTorch is not."""

from __future__ import annotations

import time


def torch_setup(name, images, labels, config, network_alone=False, metrics=True, bf16=False, compile=False,
                device="cpu"):
    """One training step of the PyTorch twin, as a function: raw uint8 NHWC ``images`` in, or (with
    ``network_alone``) ready float inputs, no preprocessing. With ``metrics`` the step also keeps the
    running loss and accuracy that Keras's step keeps for its logs, as a PyTorch loop that logs them
    would: summed on the device, never read inside the timed steps. With ``bf16`` the forward pass and
    the loss run under ``torch.autocast(device, torch.bfloat16)`` (PyTorch's mixed precision: bfloat16
    matmuls and convolutions, float32 weights), the twin of keraszoo's mixed_bfloat16. With ``compile``
    the network runs under ``torch.compile`` (forward and backward compiled by TorchInductor on the
    first calls; the optimizer step and the input's preparation stay eager). ``device``: "cpu" or "cuda",
    where the batch, the network and the optimizer live (the batch is moved once, before the steps)."""
    import torch

    import torch_reference as ref

    torch.manual_seed(0)
    x = torch.from_numpy(images).to(device)  # NHWC uint8, as stored
    y = torch.from_numpy(labels).long().to(device)
    if name == "mlp":
        model = ref.mlp().to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, fused=True)
        scaled = x.float() / 255.0

        def inputs():
            return scaled if network_alone else x.float().div_(255.0)
    elif name == "cnn_bn":
        model = ref.CourseCNN().to(device, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=config.momentum, fused=True)
        mean, inv_std = torch.full((1, 3, 1, 1), 120.0, device=device), torch.full((1, 3, 1, 1), 1 / 64.0, device=device)
        ready = ref.crop_flip_normalize(x, 28, mean, inv_std)

        def inputs():
            return ready if network_alone else ref.crop_flip_normalize(x, 28, mean, inv_std)
    else:
        model = ref.ViT().to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                                      fused=True)
        nchw = x.permute(0, 3, 1, 2)  # one channel: the same memory either way
        ready = (nchw.float() - 33.3) / 78.6

        def inputs():
            return ready if network_alone else nchw.float().sub_(33.3).div_(78.6)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    if compile:
        model = torch.compile(model)
    loss_sum, correct = torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(inputs())
            loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        if metrics:
            with torch.no_grad():
                loss_sum.add_(loss.detach())
                correct.add_((logits.argmax(1) == y).sum())

    return step


def check_twin_augmentation() -> None:
    """The twin's one-gather crop + flip + normalise equals a per-image loop (else nothing is timed)."""
    import torch

    import torch_reference as ref

    images = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8)
    mean, inv_std = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1), torch.tensor([0.5, 0.25, 1.0]).view(1, 3, 1, 1)
    state = torch.get_rng_state()
    out = ref.crop_flip_normalize(images, 28, mean, inv_std)
    torch.set_rng_state(state)  # replay the same draws: top, left, flip
    top, left, flip = torch.randint(0, 5, (8, 1, 1)), torch.randint(0, 5, (8, 1, 1)), torch.rand(8, 1, 1) < 0.5
    for i in range(8):
        t, l = int(top[i]), int(left[i])
        want = images[i, t:t + 28, l:l + 28].permute(2, 0, 1).float()
        want = (want.flip(2) if flip[i] else want).sub(mean[0]).mul(inv_std[0])
        if not torch.equal(out[i], want):
            raise SystemExit(f"error: torch_reference.crop_flip_normalize differs from a per-image crop at image {i}.")
    if not out.is_contiguous(memory_format=torch.channels_last):
        raise SystemExit("error: torch_reference.crop_flip_normalize did not return a channels_last tensor.")


def time_torch(step, steps, batch, device="cpu"):
    """images/s of ``steps`` calls of ``step``; on a GPU, from an idle device to the end of the last step's work."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch / (time.perf_counter() - start)


def torch_device(args) -> str:
    """Where the twins run: --torch-device, else the GPU when PyTorch sees one (Keras's backend then
    runs there too), else the CPU."""
    import torch

    return args.torch_device or ("cuda" if torch.cuda.is_available() else "cpu")

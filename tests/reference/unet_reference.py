"""Reference outputs of segmentation_models_pytorch's Unet for tests/test-unet.c.

Run with the venv's python from the checkout's root:
  /work/main/.venv/bin/python tests/reference/unet_reference.py

For each encoder (resnet18, resnet50) it builds
smp.Unet(encoder, encoder_weights=None, in_channels=6, classes=2), sets every
tensor by the deterministic rule of lode_weights.py, and runs on a batch of
2 x 6 x 64 x 64 whose values come from the same rule (tensor name
"input.gaussian_matrix": unit variance). The target is an integer rule the C
test computes too:
  t(i) = 255 (ignored) when i % 11 == 0, else ((i // 64) // 8 + (i % 64) // 8 + i // 4096) % 2
for the flat pixel index i of the [2, 64, 64] mask, and the loss is
CrossEntropyLoss(weight=[0.3, 1.7], ignore_index=255).

The model runs twice, in float64 (the reference) and in float32 (to measure
how accurate float32 itself is here: in train mode, batch statistics over
few values make the encoder's gradients ill-conditioned, and PyTorch's own
float32 gradients of resnet50 are off by ~4 % from float64).

Written to tests/data/unet/<encoder>-<mode>-*.f32 (raw little-endian float32,
rounded from float64) and index.tsv (key, file or value, element count), for
mode eval (running statistics) and train (batch statistics; the running
statistics after one forward are recorded too):
  logits               full [2, 2, 64, 64]
  loss                 a scalar in index.tsv
  grad.<name>          the full gradient of a few small tensors
  gradnorm.<name>      the L2 norm of every parameter's gradient (in the TSV)
  f32err.<what>        PyTorch float32's error against float64: max abs for
                       logits, relative for the loss, relative L2 for each
                       parameter's gradient
"""
import os
import sys

import torch
import segmentation_models_pytorch as smp

sys.path.insert(0, os.path.dirname(__file__))
from lode_weights import apply_rule, value_tensor  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "unet")
GRADS = [
    "segmentation_head.0.weight",
    "segmentation_head.0.bias",
    "decoder.blocks.4.conv2.1.weight",
    "decoder.blocks.0.conv2.1.bias",
    "encoder.bn1.weight",
    "encoder.layer4.1.bn2.bias",
]
RUNNING = ["encoder.bn1.running_mean", "encoder.bn1.running_var",
           "decoder.blocks.2.conv1.1.running_var"]


def target():
    i = torch.arange(2 * 64 * 64)
    t = ((i // 64) % 64 // 8 + (i % 64) // 8 + i // 4096) % 2
    t[i % 11 == 0] = 255
    return t.reshape(2, 64, 64)


def write(index, key, tensor):
    name = key.replace("/", "_") + ".f32"
    data = tensor.detach().to(torch.float32).contiguous().numpy().astype("<f4")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data.tobytes())
    index.append((key, name, data.size))


def forward_backward(encoder, mode, dtype):
    model = smp.Unet(encoder, encoder_weights=None, in_channels=6, classes=2)
    apply_rule(model)
    model = model.to(dtype)
    model.train(mode == "train")
    x = value_tensor("input.gaussian_matrix", (2, 6, 64, 64)).to(dtype)
    weight = torch.tensor([0.3, 1.7], dtype=dtype)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=255)
    logits = model(x)
    loss = loss_fn(logits, target())
    loss.backward()
    return model, logits.detach().double(), loss.item()


def rel(a, b):
    return float((a - b).norm() / max(b.norm(), 1e-30))


def run(index, encoder, mode):
    """The reference is the float64 computation; the error of PyTorch's own
    float32 computation against it is recorded beside each value (f32err),
    so that the C test can state its tolerance relative to it."""
    m32, logits32, loss32 = forward_backward(encoder, mode, torch.float32)
    m64, logits64, loss64 = forward_backward(encoder, mode, torch.float64)
    prefix = f"{encoder}-{mode}"
    write(index, f"{prefix}-logits", logits64)
    index.append((f"{prefix}-f32err.logits", repr(float((logits32 - logits64).abs().max())), 1))
    index.append((f"{prefix}-loss", repr(loss64), 1))
    index.append((f"{prefix}-f32err.loss", repr(abs(loss32 - loss64) / loss64), 1))
    p32 = dict(m32.named_parameters())
    p64 = dict(m64.named_parameters())
    for name in GRADS:
        write(index, f"{prefix}-grad.{name}", p64[name].grad)
    for name, p in p64.items():
        g64 = p.grad.double()
        index.append((f"{prefix}-gradnorm.{name}", repr(float(g64.norm())), 1))
        index.append((f"{prefix}-f32err.{name}", repr(rel(p32[name].grad.double(), g64)), 1))
    if mode == "train":
        buffers = dict(m64.named_buffers())
        for name in RUNNING:
            write(index, f"{prefix}-running.{name}", buffers[name])


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    index = []
    for encoder in ("resnet18", "resnet50"):
        for mode in ("eval", "train"):
            run(index, encoder, mode)
    with open(os.path.join(OUT, "index.tsv"), "w") as f:
        f.write("# key\tfile or value\telements (written by tests/reference/unet_reference.py)\n")
        for key, value, n in index:
            f.write(f"{key}\t{value}\t{n}\n")


if __name__ == "__main__":
    main()

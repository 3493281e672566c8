"""PyTorch eager timings on this machine, beside `lode bench train`.

segmentation_models_pytorch's U-Net with a ResNet50 encoder (random
weights), 6 bands, 3 classes, batch 16 at 128 x 128, on two threads:
training steps (forward, cross-entropy, backward, AdamW) and inference, in
images per second after a warm-up. Not a test; run it with the reference
virtual environment:

    .venv/bin/python tests/reference/bench_torch_unet.py
"""
import time

import segmentation_models_pytorch as smp
import torch

torch.set_num_threads(2)
torch.manual_seed(0)
model = smp.Unet("resnet50", encoder_weights=None, in_channels=6, classes=3)
optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
x = torch.randn(16, 6, 128, 128)
y = torch.randint(0, 3, (16, 128, 128))
loss_fn = torch.nn.CrossEntropyLoss()


def step():
    optimiser.zero_grad()
    loss_fn(model(x), y).backward()
    optimiser.step()


model.train()
step()
t = time.perf_counter()
for _ in range(3):
    step()
train = 3 * 16 / (time.perf_counter() - t)
model.eval()
with torch.inference_mode():
    model(x)
    t = time.perf_counter()
    for _ in range(3):
        model(x)
    infer = 3 * 16 / (time.perf_counter() - t)
print(f"torch {torch.__version__}, U-Net ResNet50, batch 16, 128 x 128, 2 threads: "
      f"training {train:.2f} images/s, inference {infer:.2f} images/s")

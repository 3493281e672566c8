"""PyTorch eager timings on this machine, beside `lode bench sam2`.

The official sam2 package's tiny model (random weights from its own
initialisation) through SAM2ImagePredictor on a 128 x 128 patch at input
size 1024, on two threads: one encode (after a warm-up) and the median of
20 single-point clicks with three candidates. Not a test; run it with the
reference virtual environment:

    .venv/bin/python tests/reference/bench_torch_sam2.py
"""
import time

import numpy as np
import torch
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor

torch.set_num_threads(2)
model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu")
predictor = SAM2ImagePredictor(model)
image = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)
with torch.inference_mode():
    predictor.set_image(image)
    t = time.perf_counter()
    predictor.set_image(image)
    encode = time.perf_counter() - t
    clicks = []
    for i in range(20):
        t = time.perf_counter()
        predictor.predict(point_coords=np.array([[64 + i % 5, 60]]), point_labels=np.array([1]),
                          multimask_output=True)
        clicks.append(time.perf_counter() - t)
print(f"torch {torch.__version__}, tiny at 1024, 2 threads: encode {encode * 1000:.0f} ms, "
      f"click median {np.median(clicks) * 1000:.1f} ms")

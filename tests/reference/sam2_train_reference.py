"""Reference loss and gradients of the published SAM2 fine-tuning recipe for
tests/test-sam2-train.c, from the official modelling code (facebookresearch/sam2).

Run from the repository root with the reference venv:
    python tests/reference/sam2_train_reference.py
It writes tests/data/sam2/train-reduced.bin (little-endian float32 gradients)
and tests/data/sam2/train-reduced.ini (a GKeyFile index: the loss, and per
tensor its offset and length in floats).

Model, weights and inputs as in sam2_decoder_reference.py (the reduced
configuration, tests/reference/lode_weights.py's rule, image_embed and the
high-resolution features = 50 * rule("input.*")). The loss is the one of the
published training script (SmallMinesDS, after the SAM2 fine-tuning
tutorial): the prompt encoder gets one positive point per target (boxes=None,
so one padding point is appended), the mask decoder runs with
multimask_output=True, the low-resolution logits are upsampled bilinearly
(align_corners=False) to the patch, and
    prd = sigmoid(masks[:, 0])
    seg = mean(-g log(prd + 1e-5) - (1 - g) log(1 - prd + 1e-5))
    iou = |g & (prd > 0.5)| / (|g| + |prd > 0.5| - |g & (prd > 0.5)|)
    loss = seg + 0.05 * mean(|iou_pred[:, 0] - iou|)
over a batch of the targets of one image (each its own prompt).
"""
import configparser
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lode_weights import value_tensor  # noqa: E402
from sam2_decoder_reference import CONFIGS, build  # noqa: E402

PATCH = (64, 48)   # width, height
# (x, y) of the positive point, and the target: a rectangle x0, y0, x1, y1
TARGETS = [
    ((20.0, 15.0), (8, 6, 36, 30)),
    ((50.0, 35.0), (40, 20, 62, 46)),
]


def target_masks():
    w, h = PATCH
    out = torch.zeros(len(TARGETS), h, w)
    for i, (_, (x0, y0, x1, y1)) in enumerate(TARGETS):
        out[i, y0:y1, x0:x1] = 1.0
    return out


def main():
    cfg = CONFIGS["reduced"]
    torch.set_grad_enabled(True)
    pe, md = build(cfg)
    pe.train()
    md.train()
    c, e, size = cfg["c"], cfg["size"] // 16, cfg["size"]
    image = value_tensor("input.image_embed", (c, e, e))[None] * 50.0
    hr0 = value_tensor("input.high_res_0", (c // 8, 4 * e, 4 * e))[None] * 50.0
    hr1 = value_tensor("input.high_res_1", (c // 4, 2 * e, 2 * e))[None] * 50.0
    w, h = PATCH
    b = len(TARGETS)

    pts = torch.tensor([[p] for p, _ in TARGETS], dtype=torch.float32)
    pts[..., 0] = pts[..., 0] / w
    pts[..., 1] = pts[..., 1] / h
    pts = pts * size
    labs = torch.ones(b, 1, dtype=torch.int32)
    sparse, dense = pe(points=(pts, labs), boxes=None, masks=None)
    low, iou_pred, _, _ = md(
        image_embeddings=image, image_pe=pe.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
        multimask_output=True, repeat_image=True,
        high_res_features=[hr0, hr1])
    up = F.interpolate(low, (h, w), mode="bilinear", align_corners=False)
    gt = target_masks()
    prd = torch.sigmoid(up[:, 0])
    seg = (-gt * torch.log(prd + 0.00001) - (1 - gt) * torch.log((1 - prd) + 0.00001)).mean()
    inter = (gt * (prd > 0.5)).sum(1).sum(1)
    iou = inter / (gt.sum(1).sum(1) + (prd > 0.5).sum(1).sum(1) - inter)
    score = torch.abs(iou_pred[:, 0] - iou).mean()
    loss = seg + score * 0.05
    loss.backward()

    outdir = os.path.join("tests", "data", "sam2")
    os.makedirs(outdir, exist_ok=True)
    ini = configparser.ConfigParser()
    ini.optionxform = str
    ini["config"] = {"d_model": str(c), "heads": str(cfg["heads"]), "mlp": str(cfg["mlp"]),
                     "depth": str(cfg["depth"]), "image_size": str(size),
                     "patch_width": str(w), "patch_height": str(h)}
    ini["loss"] = {"loss": repr(loss.item()), "seg": repr(seg.item()),
                   "iou": repr(iou.mean().item())}
    ini["targets"] = {}
    for i, ((x, y), (x0, y0, x1, y1)) in enumerate(TARGETS):
        ini["targets"][str(i)] = f"{x};{y};{x0};{y0};{x1};{y1}"
    blob = bytearray()
    ini["grads"] = {}
    for prefix, mod in (("sam_prompt_encoder.", pe), ("sam_mask_decoder.", md)):
        for name, p in mod.named_parameters():
            if p.grad is None:
                continue
            g = p.grad.detach().flatten().tolist()
            ini["grads"][prefix + name] = f"{len(blob) // 4};{len(g)}"
            blob += struct.pack(f"<{len(g)}f", *g)
    with open(os.path.join(outdir, "train-reduced.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(outdir, "train-reduced.ini"), "w") as f:
        ini.write(f)
    print("loss", loss.item(), "grads", len(ini["grads"]), "bytes", len(blob))


if __name__ == "__main__":
    main()

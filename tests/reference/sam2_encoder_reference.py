"""Reference outputs of the official SAM2.1 image encoder for Lode's
tests/test-sam2-encoder.c.

Builds the official model with sam2.build_sam.build_sam2 (no checkpoint, no
network), overwrites every parameter and buffer with the deterministic rule
of lode_weights.apply_rule (names are the checkpoint's keys, e.g.
"image_encoder.trunk.blocks.0.attn.qkv.weight"), runs
SAM2ImagePredictor.set_image on a generated RGB image and writes what the
predictor keeps: image_embed and the two high-resolution feature maps, plus
the preprocessed input.

Two cases:
  reduced  a small Hiera (embed 16, stages 1,2,3,2, global block 4, windows
           8,4,6,3 so that windows are padded, bkg 5x5, d_model 32) at 128;
           whole tensors.
  tiny     the published sam2.1_hiera_tiny configuration at 1024; every
           23rd value of each output, every 101st of the input.
  tiny512  the same weights at input size 512 (Lode's faster option), sampled
           the same way.

Files, in tests/data/sam2/:
  encoder-<case>.f32   raw little-endian float32, the tensors one after the
                       other
  encoder-reduced.layout.tsv  the reduced model's state dict: key, shape,
                       dtype, storage key (the form of the shared
                       sam2.1_hiera_tiny.layout.tsv)
  encoder-<case>.tsv   one line per tensor: name, offset (in floats), count,
                       stride (element i of the record is element i*stride of
                       the row-major tensor), shape (comma-separated)

Run from the checkout: /work/main/.venv/bin/python tests/reference/sam2_encoder_reference.py
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lode_weights import apply_rule  # noqa: E402

from sam2.build_sam import build_sam2  # noqa: E402
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "sam2")
# strides of the tiny records: the input is checked whole in the reduced case
TINY_STRIDES = {"input": 101, "image_embed": 23, "high_res_0": 23, "high_res_1": 23}

REDUCED_OVERRIDES = [
    "++model.image_encoder.trunk.embed_dim=16",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,2,3,2]",
    "++model.image_encoder.trunk.global_att_blocks=[4]",
    "++model.image_encoder.trunk.window_spec=[8,4,6,3]",
    "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[5,5]",
    "++model.image_encoder.neck.d_model=32",
    "++model.image_encoder.neck.position_encoding.num_pos_feats=32",
    "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    "++model.image_size=128",
]


def test_image(w: int = 160, h: int = 96) -> np.ndarray:
    """The RGB pattern of the C test (test-sam2-encoder.c make_image):
    H x W x 3 uint8 from integer formulas."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = (3 * x + 5 * y) % 256
    g = (x * y + 17) % 256
    b = (x * x + 7 * y + 11 * ((x // 9 + y // 7) % 3)) % 256
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


@torch.no_grad()
def run(overrides, image_size):
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu",
                       hydra_overrides_extra=overrides)
    apply_rule(model)
    predictor = SAM2ImagePredictor(model)
    s = image_size
    predictor._bb_feat_sizes = [(s // 4, s // 4), (s // 8, s // 8), (s // 16, s // 16)]
    image = test_image()
    preprocessed = predictor._transforms(image)
    predictor.set_image(image)
    feats = predictor._features
    return model, [
        ("input", preprocessed),
        ("image_embed", feats["image_embed"][0]),
        ("high_res_0", feats["high_res_feats"][0][0]),
        ("high_res_1", feats["high_res_feats"][1][0]),
    ]


def write_layout(case, model):
    """The state dict's keys and shapes, as the shared sam2.1_hiera_tiny.layout.tsv."""
    with open(os.path.join(OUT, f"encoder-{case}.layout.tsv"), "w") as f:
        f.write("key\tshape\tdtype\tstorage_key\n")
        for i, (key, t) in enumerate(model.state_dict().items()):
            assert t.dtype == torch.float32, key
            f.write(f"{key}\t{list(t.shape)}\tFloatStorage\t{i}\n")


def write(case, tensors, strides):
    os.makedirs(OUT, exist_ok=True)
    offset = 0
    lines = []
    with open(os.path.join(OUT, f"encoder-{case}.f32"), "wb") as f:
        for name, t in tensors:
            stride = strides.get(name, 1)
            t = t.detach().to(torch.float32).contiguous()
            flat = t.reshape(-1)[::stride].numpy().astype("<f4")
            f.write(flat.tobytes())
            shape = ",".join(str(d) for d in t.shape)
            lines.append(f"{name}\t{offset}\t{flat.size}\t{stride}\t{shape}\n")
            offset += flat.size
    with open(os.path.join(OUT, f"encoder-{case}.tsv"), "w") as f:
        f.write("name\toffset\tcount\tstride\tshape\n")
        f.writelines(lines)


def main():
    torch.set_num_threads(2)
    model, tensors = run(REDUCED_OVERRIDES, 128)
    write("reduced", tensors, {})
    write_layout("reduced", model)
    model, tensors = run([], 1024)
    write("tiny", tensors, TINY_STRIDES)
    model, tensors = run(["++model.image_size=512"], 512)
    write("tiny512", tensors, TINY_STRIDES)


if __name__ == "__main__":
    main()

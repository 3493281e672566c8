"""Reference gradients of Prithvi-EO-2.0 trained with its last blocks
unfrozen, for Lode's tests/test-prithvi-unfreeze.c.

The reduced model of prithvi_reference.py (embed 64, depth 4, heads 4,
decoder channels 32, 3 classes; weights by lode_weights.apply_rule, the
fixed position table put back) in training mode: batch statistics in the
decoder's batch norms, head dropout off (p = 0, so that the C side's own
dropout mask need not be reproduced), no coordinates. One batch of two
64 x 64 patches (raw_input, normalised), logits rescaled to the patch as
TerraTorch does, cross-entropy with ignore_index 255 against the mask
  m_i = ((i * 2654435761) mod 2^32) >> 30, 3 meaning 255 (ignored),
i row-major over [2, 64, 64]. Recorded: the loss and the gradient of every
parameter of blocks 0 to 3 (unfreeze_blocks 4 with the recipe's features
0-3, so that each feature's gradient from the decoder is checked; block 3,
the encoder's last, reaches the decoder through the final norm), as "loss"
and "blocks.N.<timm name>".

Files: tests/data/prithvi/prithvi-unfreeze.{f32,tsv} (format of
prithvi_reference.py's write).

Run from the checkout:
  /work/main/.venv/bin/python tests/reference/prithvi_unfreeze_reference.py
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prithvi_reference import build, normalise, raw_input, set_weights, write  # noqa: E402

UNFROZEN = [0, 1, 2, 3]


def mask(n, h, w):
    i = np.arange(n * h * w, dtype=np.uint64)
    m = ((i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)) >> np.uint64(30)
    m = m.astype(np.int64)
    m[m == 3] = 255
    return torch.from_numpy(m.reshape(n, h, w))


def main():
    torch.set_num_threads(2)
    model = build(3, backbone_embed_dim=64, backbone_depth=4, backbone_num_heads=4,
                  backbone_coords_encoding=["time", "location"], backbone_coords_scale_learn=True,
                  decoder_channels=32)
    set_weights(model)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    x = normalise(raw_input(2, 64, 64))
    logits = model(x).output
    assert logits.shape == (2, 3, 64, 64)
    loss = torch.nn.functional.cross_entropy(logits, mask(2, 64, 64), ignore_index=255)
    loss.backward()
    out = [("loss", loss.detach().reshape(1))]
    for b in UNFROZEN:
        for name, p in model.encoder.blocks[b].named_parameters():
            out.append((f"blocks.{b}.{name}", p.grad))
    write("unfreeze", out, {})
    print("loss", loss.item())


if __name__ == "__main__":
    main()

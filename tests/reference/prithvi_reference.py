"""Reference outputs of Prithvi-EO-2.0 with the UperNet decoder, as the
SmallMinesDS recipe builds it, for Lode's tests/test-prithvi.c.

The model is TerraTorch's own: PrithviModelFactory (deprecated, but what the
published training script calls) with backbone prithvi_eo_v2_300, the six
bands, num_frames 1, decoder UperNetDecoder with decoder_scale_modules=True,
head_dropout 0.1 and rescale=True. Nothing is downloaded (pretrained=False):
every parameter and buffer is overwritten by lode_weights.apply_rule, names
being the state-dict keys ("encoder.blocks.0.attn.qkv.weight",
"decoder.fpn1.0.weight", "head.head.2.weight"), and the fixed sin-cos
position table is then put back, as TerraTorch's checkpoint filter does.

Facts the C code relies on, checked here:
  - the decoder reads the outputs of blocks 0, 1, 2 and 3 (UperNetDecoder with
    scale_modules takes inputs[0..3] of the 24 block outputs); changing block 4
    and later leaves the logits unchanged (asserted below);
  - the output of the last block is the one passed through the final norm.

Input: six bands in raw reflectance units from an integer hash (the same
formula as test-prithvi.c raw_input), normalised with the published
SmallMinesDS mean and std of bands [0,1,2,7,8,9].

Cases:
  reduced  embed 64, depth 4, heads 4, patch 16, decoder channels 32,
           3 classes, time and location encodings (learned scales), batch 2
           at 64 x 64 (4 x 4 tokens; position table interpolated from 14 x 14);
           whole tensors.
  patch14  the 600M's patch 14 in a reduced model (embed 64, depth 4, heads
           4, decoder channels 32, 2 classes, no coordinates), batch 2 at
           70 x 70: a 5 x 5 grid (the border ignored), the position table
           interpolated from 16 x 16, an odd pyramid (5 -> 2 after the max
           pool). TerraTorch 1.2 pads the input evenly by reflection to a
           multiple of twice the patch (84), rescales the logits to 84 and
           crops the centre: "logits". TerraTorch 0.99-1.1, which the
           published training used, pads at the right and bottom and crops
           the top-left: "logits_end", made here by padding by hand (84 is
           a multiple, so the model pads no further); whole tensors.
  300m     the published configuration, 2 classes, 1 image at 128 x 128;
           block outputs 0-3 and 23 every 7th value, logits whole.
  grad     the decoder and head alone (width 16, 8 channels, 3 classes) in
           training mode (batch statistics, no dropout) on four generated
           4 x 4 feature maps per level (hashed(), batch 4), logits upsampled
           to 20 x 20, loss sum(logits * r): the loss, every parameter's
           gradient and the bottleneck's running statistics after the pass.

Files, in tests/data/prithvi/:
  prithvi-<case>.f32   raw little-endian float32, the tensors one after another
  prithvi-<case>.tsv   name, offset (floats), count, stride (element i of the
                       record is element i*stride of the row-major tensor), shape
  prithvi_reduced.layout.tsv    the reduced model's state dict (key, shape, dtype)
  prithvi_300m.layout.tsv       the official Prithvi_EO_V2_300M.pt checkpoint
                                (PrithviMAE, num_frames 4, MAE decoder included)
  prithvi_600m.layout.tsv       the same for Prithvi_EO_V2_600M.pt
  prithvi_300m_upernet.layout.tsv  the UperNet decoder and head of the recipe

Run from the checkout: /work/main/.venv/bin/python tests/reference/prithvi_reference.py
"""
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lode_weights import apply_rule  # noqa: E402

warnings.filterwarnings("ignore")
from terratorch.models import PrithviModelFactory  # noqa: E402
from terratorch.models.backbones.prithvi_mae import PrithviMAE, get_3d_sincos_pos_embed  # noqa: E402
from terratorch.models.backbones.prithvi_vit import prithvi_cfgs  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "prithvi")
BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
# FORMAT.md, bands 0, 1, 2, 7, 8, 9
MEAN = [1473.81388377, 1703.35249650, 1696.67685941, 3832.39764247, 3156.11122121, 2226.06822112]
STD = [223.43533204, 285.53613398, 413.82320306, 389.61483882, 451.49534791, 468.26765909]


def raw_input(n, h, w):
    """Element i (row-major over [n, 6, h, w]) of band c:
    mean[c] + std[c] * (3 u - 1.5), u = ((i * 2654435761) mod 2^32) / 2^32,
    in float64, rounded to float32 once."""
    i = np.arange(n * 6 * h * w, dtype=np.uint64)
    u = ((i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)).astype(np.float64) / 4294967296.0
    c = (i // np.uint64(h * w)) % np.uint64(6)
    mean = np.array(MEAN)[c.astype(np.int64)]
    std = np.array(STD)[c.astype(np.int64)]
    return (mean + std * (3.0 * u - 1.5)).astype(np.float32).reshape(n, 6, h, w)


def hashed(n, salt):
    """((i + salt) * 2654435761 mod 2^32) / 2^32 * 4 - 2 for i < n, float64
    rounded to float32 (test-prithvi.c hashed)."""
    i = np.arange(n, dtype=np.uint64) + np.uint64(salt)
    u = ((i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)).astype(np.float64) / 4294967296.0
    return (u * 4.0 - 2.0).astype(np.float32)


def normalise(raw):
    m = torch.tensor(MEAN, dtype=torch.float32).view(1, 6, 1, 1)
    s = torch.tensor(STD, dtype=torch.float32).view(1, 6, 1, 1)
    return (torch.from_numpy(raw) - m) / s


def build(num_classes, backbone="prithvi_eo_v2_300", **kwargs):
    return PrithviModelFactory().build_model(
        task="segmentation", backbone=backbone, bands=BANDS, in_channels=6,
        num_classes=num_classes, pretrained=False, decoder="UperNetDecoder", rescale=True,
        backbone_num_frames=1, head_dropout=0.1, decoder_scale_modules=True, **kwargs)


@torch.no_grad()
def set_weights(model):
    apply_rule(model)
    enc = model.encoder
    table = get_3d_sincos_pos_embed(enc.pos_embed.shape[-1], enc.patch_embed.grid_size, add_cls_token=True)
    enc.pos_embed.copy_(torch.from_numpy(table).float().unsqueeze(0))
    model.eval()


@torch.no_grad()
def run(model, x, blocks, **coords):
    feats = model.encoder.forward_features(x, **coords)
    logits = model(x, **coords).output
    # the decoder must depend on the first four blocks only
    if len(model.encoder.blocks) > 4:
        saved = model.encoder.blocks[4].mlp.fc2.bias.clone()
        model.encoder.blocks[4].mlp.fc2.bias.add_(1.0)
        assert torch.equal(model(x, **coords).output, logits)
        model.encoder.blocks[4].mlp.fc2.bias.copy_(saved)
    out = []
    for b in blocks:
        tokens = feats[b]                      # [n, 1 + L, E], cls first
        out.append((f"block{b}", tokens))
    out.append(("logits", logits))
    return out


def write(case, tensors, strides):
    os.makedirs(OUT, exist_ok=True)
    offset = 0
    lines = []
    with open(os.path.join(OUT, f"prithvi-{case}.f32"), "wb") as f:
        for name, t in tensors:
            stride = strides.get(name, 1)
            t = t.detach().to(torch.float32).contiguous()
            flat = t.reshape(-1)[::stride].numpy().astype("<f4")
            f.write(flat.tobytes())
            shape = ",".join(str(d) for d in t.shape)
            lines.append(f"{name}\t{offset}\t{flat.size}\t{stride}\t{shape}\n")
            offset += flat.size
    with open(os.path.join(OUT, f"prithvi-{case}.tsv"), "w") as f:
        f.write("name\toffset\tcount\tstride\tshape\n")
        f.writelines(lines)


def write_layout(name, state_dict, keep=lambda k: True):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        f.write("key\tshape\tdtype\n")
        for k, v in state_dict.items():
            if keep(k):
                dtype = "LongStorage" if v.dtype == torch.int64 else "FloatStorage"
                f.write(f"{k}\t[{', '.join(str(d) for d in v.shape)}]\t{dtype}\n")


def reduced():
    model = build(3, backbone_embed_dim=64, backbone_depth=4, backbone_num_heads=4,
                  backbone_coords_encoding=["time", "location"], backbone_coords_scale_learn=True,
                  decoder_channels=32)
    set_weights(model)
    write_layout("prithvi_reduced.layout.tsv", model.state_dict())
    x = normalise(raw_input(2, 64, 64))
    coords = dict(temporal_coords=torch.tensor([[[2016.0, 15.0]], [[2022.0, 200.0]]]),
                  location_coords=torch.tensor([[6.25, -1.75], [5.5, -2.125]]))
    write("reduced", run(model, x, [0, 1, 2, 3], **coords), {})


def patch14():
    model = build(2, backbone="prithvi_eo_v2_600", backbone_embed_dim=64, backbone_depth=4,
                  backbone_num_heads=4, decoder_channels=32)
    set_weights(model)
    write_layout("prithvi_patch14.layout.tsv", model.state_dict())
    x = normalise(raw_input(2, 70, 70))
    out = run(model, x, [0, 1, 2, 3])
    with torch.no_grad():
        padded = torch.nn.functional.pad(x, (0, 14, 0, 14), mode="reflect")
        out.append(("logits_end", model(padded).output[..., :70, :70]))
    write("patch14", out, {})


def official_layout(variant, file):
    cfg = dict(prithvi_cfgs[variant])
    for k in ("mean", "std", "bands", "mask_ratio", "norm_pix_loss"):
        cfg.pop(k)
    with torch.device("meta"):
        mae = PrithviMAE(**cfg)
    write_layout(file, mae.state_dict())


def large():
    torch.manual_seed(0)
    official_layout("prithvi_eo_v2_300", "prithvi_300m.layout.tsv")
    official_layout("prithvi_eo_v2_600", "prithvi_600m.layout.tsv")
    model = build(2)
    set_weights(model)
    write_layout("prithvi_300m_upernet.layout.tsv", model.state_dict(),
                 keep=lambda k: not k.startswith("encoder."))
    x = normalise(raw_input(1, 128, 128))
    blocks = [0, 1, 2, 3, 23]
    strides = {f"block{b}": 7 for b in blocks}
    write("300m", run(model, x, blocks), strides)


def grad():
    from terratorch.models.decoders.upernet_decoder import UperNetDecoder
    from terratorch.models.heads import SegmentationHead

    class DecoderAndHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder = UperNetDecoder([16] * 4, channels=8, scale_modules=True)
            self.head = SegmentationHead(8, 3, dropout=0)

    model = DecoderAndHead()
    apply_rule(model)
    model.train()
    feats = [torch.from_numpy(hashed(4 * 16 * 4 * 4, 1000 * k)).reshape(4, 16, 4, 4) for k in range(4)]
    r = torch.from_numpy(hashed(4 * 3 * 20 * 20, 77)).reshape(4, 3, 20, 20)
    logits = torch.nn.functional.interpolate(model.head(model.decoder(feats)), size=(20, 20), mode="bilinear")
    loss = (logits * r).sum()
    loss.backward()
    out = [("loss", loss.detach().reshape(1))]
    out += [(k, p.grad) for k, p in model.named_parameters()]
    out += [("decoder.bottleneck.norm.running_mean", model.decoder.bottleneck.norm.running_mean),
            ("decoder.bottleneck.norm.running_var", model.decoder.bottleneck.norm.running_var)]
    write("grad", out, {})


def main():
    torch.set_num_threads(2)
    reduced()
    patch14()
    large()
    grad()


if __name__ == "__main__":
    main()

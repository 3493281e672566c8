"""Reference outputs of SAM2.1's prompt encoder and mask decoder for
tests/test-sam2-decoder.c, from the official modelling code (facebookresearch/sam2).

Run from the repository root with the reference venv:
    python tests/reference/sam2_decoder_reference.py
It writes tests/data/sam2/decoder-<config>.bin (little-endian float32 arrays and
packed mask bits) and tests/data/sam2/decoder-<config>.ini (a GKeyFile index).

Weights: tests/reference/lode_weights.py's rule on the checkpoint names
(sam_prompt_encoder.*, sam_mask_decoder.*). Inputs that both sides compute:
  image_embed = 50 * rule("input.image_embed", [C, E, E])        (values in [-1, 1))
  high_res_0  = 50 * rule("input.high_res_0", [C/8, 4E, 4E])
  high_res_1  = 50 * rule("input.high_res_1", [C/4, 2E, 2E])
  mask_input  = 500 * rule("input.mask_input", [4E, 4E])         (a previous low-res mask)
The prompts follow SAM2ImagePredictor.predict: point and box coordinates in
patch pixels are divided by the patch width/height and multiplied by the input
size; the box corners come first (labels 2, 3), then the points; the prompt
encoder gets boxes=None and so appends one padding point; the masks are the
low-resolution logits upsampled bilinearly (align_corners=False) to the patch.
"""
import configparser
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lode_weights import apply_rule, value_tensor  # noqa: E402

from sam2.modeling.sam.mask_decoder import MaskDecoder  # noqa: E402
from sam2.modeling.sam.prompt_encoder import PromptEncoder  # noqa: E402
from sam2.modeling.sam.transformer import TwoWayTransformer  # noqa: E402

CONFIGS = {
    # name: d_model, heads, mlp, depth, image size, patch (w, h),
    #       low-res sampling step, patch logits sampling step
    "reduced": dict(c=32, heads=4, mlp=64, depth=2, size=128, patch=(128, 96),
                    low_step=1, logit_step=2),
    "tiny": dict(c=256, heads=8, mlp=2048, depth=2, size=1024, patch=(128, 128),
                 low_step=4, logit_step=4),
}

# Prompts in patch pixels (x, y, label) for a 128-wide patch; scaled to the
# patch height by the same numbers (they lie inside 128 x 96).
CASES = [
    ("one-positive", dict(points=[(40.3, 50.7, 1)], multimask=True)),
    ("positive-negative", dict(points=[(40.0, 50.0, 1), (90.5, 20.25, 0)], multimask=True)),
    ("box", dict(box=(20.0, 15.0, 100.0, 80.0), multimask=False)),
    ("box-point", dict(box=(20.0, 15.0, 100.0, 80.0), points=[(60.0, 40.0, 1)], multimask=True)),
    ("previous-mask", dict(points=[(40.3, 50.7, 1), (70.0, 30.0, 1)], mask=True, multimask=False)),
    ("single", dict(points=[(100.0, 70.0, 1)], multimask=False)),
    ("single-two", dict(points=[(12.0, 8.0, 1), (64.0, 64.0, 0)], multimask=False)),
    # the single-mask token itself, as without dynamic_multimask_via_stability
    ("token-zero", dict(points=[(100.0, 70.0, 1)], multimask=False, no_dynamic=True)),
]


def build(cfg):
    c, e = cfg["c"], cfg["size"] // 16
    pe = PromptEncoder(embed_dim=c, image_embedding_size=(e, e),
                       input_image_size=(cfg["size"], cfg["size"]), mask_in_chans=16)
    md = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=cfg["depth"], embedding_dim=c,
                                      mlp_dim=cfg["mlp"], num_heads=cfg["heads"]),
        transformer_dim=c, iou_head_depth=3, iou_head_hidden_dim=256,
        use_high_res_features=True, iou_prediction_use_sigmoid=True,
        pred_obj_scores=True, pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
        dynamic_multimask_via_stability=True,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98)
    apply_rule(pe, "sam_prompt_encoder.")
    apply_rule(md, "sam_mask_decoder.")
    pe.eval()
    md.eval()
    return pe, md


def inputs(cfg):
    c, e = cfg["c"], cfg["size"] // 16
    image = value_tensor("input.image_embed", (c, e, e)) * 50.0
    hr0 = value_tensor("input.high_res_0", (c // 8, 4 * e, 4 * e)) * 50.0
    hr1 = value_tensor("input.high_res_1", (c // 4, 2 * e, 2 * e)) * 50.0
    mask = value_tensor("input.mask_input", (4 * e, 4 * e)) * 500.0
    return image[None], [hr0[None], hr1[None]], mask[None, None]


def pack_bits(mask):
    flat = mask.flatten().to(torch.uint8).tolist()
    out = bytearray((len(flat) + 7) // 8)
    for i, v in enumerate(flat):
        if v:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


@torch.no_grad()
def run_config(name, cfg, outdir):
    pe, md = build(cfg)
    image, high_res, mask_input = inputs(cfg)
    size = cfg["size"]
    pw, ph = cfg["patch"]
    blob = bytearray()
    ini = configparser.ConfigParser()
    ini.optionxform = str
    ini["config"] = {
        "d_model": str(cfg["c"]), "heads": str(cfg["heads"]), "mlp": str(cfg["mlp"]),
        "depth": str(cfg["depth"]), "image_size": str(size),
        "patch_width": str(pw), "patch_height": str(ph),
        "low_res_step": str(cfg["low_step"]), "logit_step": str(cfg["logit_step"]),
    }

    for case, p in CASES:
        coords, labels = [], []
        if "box" in p:
            x0, y0, x1, y1 = p["box"]
            coords += [(x0, y0), (x1, y1)]
            labels += [2, 3]
        for x, y, lab in p.get("points", []):
            coords.append((x, y))
            labels.append(lab)
        # transform_coords: / (w, h) * resolution, in float32
        pts = torch.tensor(coords, dtype=torch.float32)
        pts[:, 0] = pts[:, 0] / pw
        pts[:, 1] = pts[:, 1] / ph
        pts = (pts * size)[None]
        labs = torch.tensor(labels, dtype=torch.int32)[None]
        m_in = mask_input if p.get("mask") else None

        sparse, dense = pe(points=(pts, labs), boxes=None, masks=m_in)
        all_masks, all_iou, _, obj = md.predict_masks(
            image_embeddings=image, image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            repeat_image=False, high_res_features=high_res)
        low, iou, _, obj2 = md(
            image_embeddings=image, image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=p["multimask"], repeat_image=False,
            high_res_features=high_res)
        assert torch.equal(obj, obj2)
        stab = md._get_stability_scores(all_masks[:, 0:1]).item()
        fallback = (not p["multimask"]) and stab < 0.98
        if p.get("no_dynamic"):
            low, iou, fallback = all_masks[:, 0:1], all_iou[:, 0:1], False
        masks = F.interpolate(low, (ph, pw), mode="bilinear", align_corners=False)

        n = low.shape[1]
        ls = low.shape[-1]
        sec = {
            "points": ";".join(f"{x!r},{y!r},{lab}" for x, y, lab in p.get("points", [])),
            "box": ",".join(repr(v) for v in p["box"]) if "box" in p else "",
            "mask_input": "true" if p.get("mask") else "false",
            "multimask": "true" if p["multimask"] else "false",
            "n_masks": str(n),
            "iou": ";".join(f"{v:.9g}" for v in iou[0].tolist()),
            "object_score": f"{obj[0, 0].item():.9g}",
            "stability": f"{stab:.9g}",
            "fallback": "true" if fallback else "false",
            "dynamic": "false" if p.get("no_dynamic") else "true",
        }
        step = cfg["low_step"]
        sampled = low[0, :, ::step, ::step].contiguous()
        sec["low_res_offset"] = str(len(blob))
        sec["low_res_side"] = str((ls + step - 1) // step)
        blob += struct.pack(f"<{sampled.numel()}f", *sampled.flatten().tolist())
        lstep = cfg["logit_step"]
        sampled = masks[0, :, ::lstep, ::lstep].contiguous()
        sec["logits_offset"] = str(len(blob))
        blob += struct.pack(f"<{sampled.numel()}f", *sampled.flatten().tolist())
        sec["bits_offset"] = str(len(blob))
        blob += pack_bits(masks[0] > 0.0)
        while len(blob) % 4:
            blob.append(0)
        ini[case] = sec
        print(f"{name:8s} {case:18s} n={n} iou={iou[0].tolist()} obj={obj.item():.4f} "
              f"stability={stab:.4f} fallback={fallback} "
              f"fg={(masks > 0).float().mean().item():.3f}")

    with open(os.path.join(outdir, f"decoder-{name}.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(outdir, f"decoder-{name}.ini"), "w") as f:
        f.write("# written by tests/reference/sam2_decoder_reference.py\n")
        ini.write(f)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outdir = os.path.join(root, "data", "sam2")
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(2)
    for name, cfg in CONFIGS.items():
        run_config(name, cfg, outdir)


if __name__ == "__main__":
    main()

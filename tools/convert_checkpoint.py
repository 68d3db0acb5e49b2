#!/usr/bin/env python
"""Convert a released GDT checkpoint (or a reference trainer's file) into this project's checkpoint format.

    python tools/convert_checkpoint.py --input gdt_K400.pth --output gdt_K400_video.pyth
    python tools/convert_checkpoint.py --input gdt_IG65M.pth --output gdt_IG65M_av.pyth --keep audio,heads

The input is read with ``weights_only=True`` and the explicit allow-list of ``stica_ext.models.weights`` (the
pickled ``argparse.Namespace`` and scheduler objects become inert stand-ins and are not written out). The output
is ``{"epoch", "model_state", "optimizer_state": None, "scaler_state": None, "cfg": <minimal YAML>,
"converted_from"}`` with the reference key names (which are this project's GDT names), readable with
``torch.load(weights_only=True)`` and ``stica_ext.engine.checkpoint.load_checkpoint``; use it with
``TRAIN.CHECKPOINT_TYPE pytorch``. The video backbone is always kept and checked strictly against an R(2+1)D
built on the ``meta`` device; ``--keep`` adds other parts. The load report of the kept weights is printed.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# torch and the package are imported where they are used, so that --help answers at once.

#: ``--keep`` groups -> checkpoint key prefixes. The video backbone is always kept.
GROUPS = {
    "video": ("video_network.",),
    "audio": ("audio_network.",),
    "heads": ("mlp_v.", "mlp_a.", "mlp_t."),
    "text": ("text_network.",),
    "pooling": ("video_pooling.",),
}
KEEP_CHOICES = ("audio", "heads", "text", "pooling", "all")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Convert a released GDT checkpoint (gdt_K400.pth, gdt_HT100M.pth, gdt_IG65M.pth) or a reference "
                    "trainer checkpoint into a stica_ext checkpoint (model_state format).")
    p.add_argument("--input", required=True, help="released / reference checkpoint file")
    p.add_argument("--output", required=True, help="converted checkpoint to write (e.g. converted.pyth)")
    p.add_argument("--arch", default="auto", choices=("auto", "r2plus1d_18", "r2plus1d_34"),
                   help="video backbone the weights must fit exactly (default: inferred from the keys)")
    p.add_argument("--keep", default="",
                   help=f"comma-separated parts to keep besides the video backbone: {', '.join(KEEP_CHOICES)} "
                        "(default: video backbone only)")
    p.add_argument("--checkpoint-type", default="auto", choices=("auto", "gdt", "pytorch"),
                   help="layout of the input (default: detected from its keys)")
    return p.parse_args(argv)


def parse_keep(text):
    parts = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in parts if t not in KEEP_CHOICES]
    if bad:
        raise ValueError(f"unknown --keep part(s) {bad}; choose from {list(KEEP_CHOICES)}")
    return set(parts)


def select(state, keep):
    """Entries of ``state`` kept by ``keep`` (``"all"`` keeps everything; the video group always)."""
    if "all" in keep:
        return dict(state)
    prefixes = tuple(p for g in {"video"} | keep for p in GROUPS[g])
    return {k: v for k, v in state.items() if k.startswith(prefixes)}


def minimal_cfg(info, arch):
    """YAML of the config keys that rebuild a matching GDT (``GDT.MLP_HIDDEN_DIM`` is given at width 64, as the
    config scales it by ``RESNET.WIDTH_PER_GROUP / 64``)."""
    from fvcore.common.config import CfgNode

    node = {"MODEL": {"MODEL_NAME": "GDT", "ARCH": arch}, "RESNET": {"WIDTH_PER_GROUP": info["width"]}}
    if info["audio_arch"]:
        node["AUDIO"] = {"ARCH": info["audio_arch"]}
    if info["use_mlp"] is not None:
        gdt = {"USE_MLP": info["use_mlp"]}
        if info["embed_dim"]:
            gdt["EMBED_DIM"] = info["embed_dim"]
        hidden, width = info["mlp_hidden_dim"], info["width"]
        if hidden and (hidden * 64) % width == 0:
            gdt["MLP_HIDDEN_DIM"] = hidden * 64 // width
        node["GDT"] = gdt
    return CfgNode(node).dump()


def validation_model(info, arch, kept):
    """The model the kept weights are checked against, on the meta device: a GDT when audio weights are kept,
    else a container holding only ``video_network.base``."""
    import torch
    import torch.nn as nn

    from stica_ext.models.gdt import GDT, VideoBaseNetwork, build_video_base

    with torch.device("meta"):
        if info["audio_arch"] and any(k.startswith("audio_network.") for k in kept):
            kwargs = dict(video_arch=arch, audio_arch=info["audio_arch"], width=info["width"],
                          audio_dead_fc=info["audio_dead_fc"], use_mlp=info["use_mlp"] is not False)
            if info["embed_dim"]:
                kwargs["embed_dim"] = info["embed_dim"]
            if info["mlp_hidden_dim"]:
                kwargs["mlp_hidden_dim"] = info["mlp_hidden_dim"]
            return GDT(**kwargs)
        model = nn.Module()
        model.video_network = VideoBaseNetwork(build_video_base(arch, info["width"]))
        return model


def convert(input_path, output_path, arch="auto", keep=(), checkpoint_type="auto", log=print):
    """Convert ``input_path`` to ``output_path``; returns ``(output dict, LoadReport)``."""
    import torch

    from stica_ext.models.weights import (
        detect_checkpoint_type,
        extract_state_dict,
        infer_gdt_kwargs,
        load_pretrained,
        read_checkpoint_file,
    )
    from stica_ext.utils.io import atomic_save

    keep = set(keep)
    ckpt = read_checkpoint_file(input_path, allow_pickled_reference=True)
    kind = detect_checkpoint_type(ckpt)
    state = extract_state_dict(ckpt, checkpoint_type)
    info = infer_gdt_kwargs(state)
    arch = info["video_arch"] if arch == "auto" else arch
    kept = select(state, keep)
    epoch = ckpt.get("epoch", 0) if kind != "state_dict" else 0
    target = validation_model(info, arch, kept)
    report = load_pretrained(target, {"model": kept, "epoch": epoch}, strict_prefixes=("video_network.base.",),
                             dry_run=True, source=f"{input_path} (kept entries)", log_report=False)
    out = {
        "epoch": int(epoch) if isinstance(epoch, (int, float)) else 0,
        "model_state": {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in kept.items()},
        "optimizer_state": None,
        "scaler_state": None,
        "cfg": minimal_cfg(info, arch),
        "converted_from": os.path.abspath(input_path),
    }
    atomic_save(out, output_path, torch.save)
    back = read_checkpoint_file(output_path, allow_pickled_reference=False)  # what the engine will do
    if sorted(back["model_state"]) != sorted(out["model_state"]):
        raise RuntimeError(f"{output_path}: written entries differ from the converted ones")
    if hasattr(target, "audio_network"):
        checked = f"GDT({arch}, {info['audio_arch']}, width {info['width']}) built on the meta device"
    else:
        checked = (f"the {arch} video backbone (width {info['width']}) built on the meta device; kept entries of "
                   "other parts show as not in the model")
    log(f"checked against {checked}:")
    log(str(report))
    counts = {g: sum(k.startswith(GROUPS[g]) for k in kept) for g in GROUPS}
    parts = ", ".join(f"{g} {n}" for g, n in counts.items() if n)
    log(f"input {input_path}: layout {kind}, {len(state)} entries, epoch {out['epoch']}, video {arch} width "
        f"{info['width']}, audio {info['audio_arch'] or 'none'}")
    dropped = len(state) - len(kept)
    log(f"wrote {output_path}: {len(kept)} entries ({parts})"
        + (f"; dropped {dropped} (use --keep to add parts)" if dropped else ""))
    return out, report


def main(argv=None):
    args = parse_args(argv)
    try:
        convert(args.input, args.output, arch=args.arch, keep=parse_keep(args.keep),
                checkpoint_type=args.checkpoint_type)
    except (OSError, RuntimeError, ValueError) as e:
        print(f"convert_checkpoint.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

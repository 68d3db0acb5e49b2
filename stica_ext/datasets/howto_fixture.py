"""A small HowTo100M-style video-text dataset made from synthetic clips, for tests and demos.

:func:`make_howto_fixture` renders clips with :func:`stica_ext.datasets.synthetic.generate_clip` (one moving shape
that bounces under gravity or slides like a billiard ball), writes them as video-only mp4 files, and writes captions
that describe what is drawn in each time span ("First, a red circle bounces on the floor", "Then the red circle hits
the wall", ...) -- the colour, the shape and the motion events (floor / wall / ceiling impacts, kicks) of that span.
Caption spans are random, with fractional boundaries, and usually shorter than 4 s, so caption widening is
exercised. Folder layout::

    <root>/videos/<video_id>.mp4      H.264, no audio
    <root>/captions/<video_id>.csv    header start,end,text
    <root>/caption.json               {video_id: {"start": [...], "end": [...], "text": [...]}}
    <root>/videos.csv                 header video_id, one id per row
    <root>/dict.npy                   numpy array of the (lower-case) words; token id = index + 1
    <root>/word2vec.pth               (len(words) + 1) x word_dim float32 tensor (row 0 = padding, zeros)
    <root>/manifest.json              generation parameters and per-video details

Everything is a deterministic function of the arguments (no global random state).
"""

import colorsys
import csv
import json
import os
import re

import numpy as np
import torch

from .synthetic import NUM_CLASSES, REGIMES, SHAPES, generate_clip, label_to_shape_regime, write_av_file

__all__ = ["make_howto_fixture", "fixture_overrides", "describe_span", "colour_name"]

_COLOURS = ((0.0, "red"), (30.0, "orange"), (60.0, "yellow"), (120.0, "green"), (180.0, "cyan"), (240.0, "blue"),
            (285.0, "purple"), (330.0, "pink"), (360.0, "red"))
_ORDER_WORDS = ("First,", "Then", "Later", "After that", "Finally")
_EVENT_PHRASES = {
    ("gravity", "floor"): "bounces on the floor",
    ("gravity", "wall"): "hits the wall",
    ("gravity", "ceiling"): "hits the ceiling",
    ("gravity", "kick"): "jumps up again",
    ("billiard", "wall"): "slides and hits the wall",
    ("billiard", "kick"): "is pushed in a new direction",
}
_IDLE_PHRASES = {"gravity": "falls through the air", "billiard": "slides slowly"}
# Words of the vocabulary that never occur in captions (so the vocabulary is more than the caption words).
_EXTRA_WORDS = ("ball", "box", "moves", "fast", "slow", "left", "right", "up", "down", "and")


def colour_name(rgb):
    """A colour word for an RGB triple in [0, 1] (by hue)."""
    h, _, _ = colorsys.rgb_to_hsv(*[float(c) for c in rgb])
    hue = h * 360.0
    return min(_COLOURS, key=lambda c: abs(c[0] - hue))[1]


def describe_span(order, colour, shape, regime, kinds):
    """Caption of one time span: an order word, the object, then up to two motion phrases.

    ``kinds`` are the sounding events of the span in time order (``"floor"``, ``"wall"``, ``"ceiling"``, ``"kick"``).
    """
    lead = _ORDER_WORDS[min(order, len(_ORDER_WORDS) - 1)]
    article = ("an" if colour[0] in "aeiou" else "a") if order == 0 else "the"
    phrases = []
    for k in kinds:
        p = _EVENT_PHRASES.get((regime, k), _EVENT_PHRASES.get((regime, "wall")))
        if p not in phrases:
            phrases.append(p)
        if len(phrases) == 2:
            break
    if not phrases:
        phrases = [_IDLE_PHRASES[regime]]
    body = " and then ".join(phrases)
    return f"{lead} {article} {colour} {shape} {body}."


def _span_bounds(rng, duration, count):
    """``count`` consecutive spans covering ``[0, duration]``: random lengths (ratios 1 : 3 at most), boundaries on a
    0.01 s grid (fractional seconds)."""
    lengths = rng.uniform(0.5, 1.5, size=count)
    cuts = np.round(np.concatenate([[0.0], np.cumsum(lengths) / lengths.sum() * duration]), 2)
    cuts[-1] = round(float(duration), 2)
    return [(float(cuts[i]), float(cuts[i + 1])) for i in range(count)]


def make_howto_fixture(root, num_videos=8, seed=0, size=112, duration=6.0, *, fps=30, captions_per_video=4,
                       word_dim=300):
    """Write a HowTo100M-style dataset of ``num_videos`` synthetic videos under ``root`` (see the module docstring).

    Args:
        root: output folder (created; existing files of the same names are overwritten).
        num_videos: number of videos (ids ``vid_00000``, ...).
        seed: master seed (per-video seeds, labels, caption spans and word vectors derive from it).
        size: frame side in pixels (even).
        duration: video length in seconds.
        fps: frame rate of the written videos.
        captions_per_video: captions per video (consecutive spans covering the video).
        word_dim: size of the random word vectors.

    Returns:
        dict with ``root``, ``video_root``, ``caption_root``, ``caption_json``, ``video_list``, ``dict_path``,
        ``word2vec_path``, ``video_ids``, ``captions`` (``{video_id: [(start, end, text), ...]}``), ``words``.
    """
    if num_videos < 1 or captions_per_video < 1:
        raise ValueError("num_videos and captions_per_video must be >= 1")
    root = os.path.abspath(os.fspath(root))
    video_root = os.path.join(root, "videos")
    caption_root = os.path.join(root, "captions")
    os.makedirs(video_root, exist_ok=True)
    os.makedirs(caption_root, exist_ok=True)
    master = np.random.SeedSequence([int(seed), 0x48_54])
    children = master.spawn(num_videos + 1)
    captions, manifest_videos, video_ids = {}, [], []
    for i in range(num_videos):
        rng = np.random.default_rng(children[i])
        vid = f"vid_{i:05d}"
        label = int(rng.integers(NUM_CLASSES))
        clip_seed = int(rng.integers(2**31 - 1))
        clip = generate_clip(clip_seed, label, size=size, duration=duration, fps=fps, sample_rate=8000)
        write_av_file(os.path.join(video_root, f"{vid}.mp4"), clip.frames, None, fps, 8000)
        shape_idx, regime_idx = label_to_shape_regime(label)
        shape, regime = SHAPES[shape_idx], REGIMES[regime_idx]
        colour = colour_name(clip.meta["colour"])
        kinds = clip.meta["impact_kinds"]
        rows = []
        for order, (start, end) in enumerate(_span_bounds(rng, duration, captions_per_video)):
            span_kinds = [k for t, k in zip(clip.impact_times, kinds) if start <= t < end]
            rows.append((start, end, describe_span(order, colour, shape, regime, span_kinds)))
        captions[vid] = rows
        video_ids.append(vid)
        manifest_videos.append({"video_id": vid, "label": label, "seed": clip_seed, "shape": shape, "regime": regime,
                                "colour": colour, "impact_times": clip.impact_times, "impact_kinds": kinds})
        with open(os.path.join(caption_root, f"{vid}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["start", "end", "text"])
            for start, end, text in rows:
                w.writerow([repr(start), repr(end), text])

    caption_json = os.path.join(root, "caption.json")
    with open(caption_json, "w") as f:
        json.dump({vid: {"start": [r[0] for r in rows], "end": [r[1] for r in rows], "text": [r[2] for r in rows]}
                   for vid, rows in captions.items()}, f)
    video_list = os.path.join(root, "videos.csv")
    with open(video_list, "w", newline="") as f:
        f.write("video_id\n" + "".join(f"{v}\n" for v in video_ids))

    words = set(_EXTRA_WORDS)
    for rows in captions.values():
        for _, _, text in rows:
            words.update(w.lower() for w in re.findall(r"[\w']+", text))
    words = sorted(words)
    dict_path = os.path.join(root, "dict.npy")
    np.save(dict_path, np.array(words))
    vec_rng = np.random.default_rng(children[-1])
    vectors = vec_rng.normal(0.0, 1.0, size=(len(words) + 1, int(word_dim))).astype(np.float32)
    vectors[0] = 0.0
    word2vec_path = os.path.join(root, "word2vec.pth")
    torch.save(torch.from_numpy(vectors), word2vec_path)

    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump({"params": {"num_videos": num_videos, "seed": seed, "size": size, "duration": duration, "fps": fps,
                              "captions_per_video": captions_per_video, "word_dim": word_dim},
                   "videos": manifest_videos}, f, indent=1)
    return {
        "root": root,
        "video_root": video_root,
        "caption_root": caption_root,
        "caption_json": caption_json,
        "video_list": video_list,
        "dict_path": dict_path,
        "word2vec_path": word2vec_path,
        "video_ids": video_ids,
        "captions": captions,
        "words": words,
    }


def fixture_overrides(fixture, use_json=False):
    """``KEY VALUE`` config overrides (a flat list, for ``cfg.merge_from_list`` or ``tools/run_net.py``) that point
    the ``TEXT`` node at a fixture made by :func:`make_howto_fixture`."""
    out = ["TEXT.VIDEO_LIST", fixture["video_list"], "TEXT.VIDEO_ROOT", fixture["video_root"],
           "TEXT.DICT_PATH", fixture["dict_path"], "TEXT.WORD2VEC_PATH", fixture["word2vec_path"]]
    if use_json:
        out += ["TEXT.CAPTION_JSON", fixture["caption_json"]]
    else:
        out += ["TEXT.CAPTION_ROOT", fixture["caption_root"]]
    return out

"""Video clip transforms (spec 3.3), on float tensors ``C x T x H x W`` unless noted.

Every random transform takes an explicit ``random.Random`` so that a sample's augmentation is a pure function of
its seed (per rank, epoch and index) and never depends on global state or on the DataLoader worker it ran in.
"""

import math

import torch
import torch.nn.functional as F

# RGB luminance weights (ITU-R BT.601).
_LUMA = (0.299, 0.587, 0.114)


def uint8_thwc_to_float_cthw(frames):
    """``T x H x W x 3`` uint8 -> ``3 x T x H x W`` float in [0, 1]."""
    return frames.permute(3, 0, 1, 2).float().div_(255.0)


def short_side_size(h, w, size):
    """Frame size ``(new_h, new_w)`` of :func:`resize_short_side` for an ``h x w`` frame."""
    if min(h, w) == size:
        return h, w
    if h <= w:
        return size, int(math.floor(w / h * size))
    return int(math.floor(h / w * size)), size


def resize_short_side(x, size):
    """Bilinear resize (align_corners False) so that the short side is ``size``; the long side is
    ``floor(long / short · size)``. No-op when the short side already equals ``size``."""
    h, w = x.shape[-2:]
    if min(h, w) == size:
        return x
    return F.interpolate(x, size=short_side_size(h, w, size), mode="bilinear", align_corners=False)


def random_short_side_scale_jitter(x, min_size, max_size, rng):
    """Resize so the short side is ``round(U(min_size, max_size))``."""
    return resize_short_side(x, int(round(rng.uniform(min_size, max_size))))


def random_crop(x, size, rng):
    """Random ``size x size`` crop; every valid offset ``0..H-size`` (inclusive) can be drawn."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from a {h}x{w} clip")
    y0 = rng.randint(0, h - size)
    x0 = rng.randint(0, w - size)
    return x[..., y0:y0 + size, x0:x0 + size]


def uniform_crop(x, size, spatial_idx):
    """Deterministic crop for testing: ``spatial_idx`` 0/1/2 = left/centre/right when ``W > H`` (top/centre/bottom
    when ``H > W``); the centre offset is ``ceil((L - size) / 2)``."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from a {h}x{w} clip")
    y0 = int(math.ceil((h - size) / 2))
    x0 = int(math.ceil((w - size) / 2))
    if spatial_idx != 1:
        end = spatial_idx == 2
        if w > h:
            x0 = (w - size) if end else 0
        elif h > w:
            y0 = (h - size) if end else 0
    return x[..., y0:y0 + size, x0:x0 + size]


def random_resized_crop_box(h, w, scale, ratio, rng, attempts=10):
    """Box ``(y0, x0, ch, cw)`` of a RandomResizedCrop on an ``h x w`` frame.

    Up to ``attempts`` draws of an area fraction ``U(scale)`` and a log-uniform aspect ratio ``w/h`` in ``ratio``
    (``cw = round(sqrt(area * r))``, ``ch = round(sqrt(area / r))``); the first box that fits is placed uniformly
    over every valid offset ``0 .. h - ch`` / ``0 .. w - cw`` (both ends included). Fallback: the largest centred
    box whose aspect ratio is clamped to ``ratio``.
    """
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target = area * rng.uniform(scale[0], scale[1])
        r = math.exp(rng.uniform(*log_r))
        cw = int(round(math.sqrt(target * r)))
        ch = int(round(math.sqrt(target / r)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, h - ch), rng.randint(0, w - cw), ch, cw
    in_ratio = w / h
    if in_ratio < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        ch, cw = h, int(round(h * max(ratio)))
    else:
        ch, cw = h, w
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_resized_crop(x, size, scale, ratio, rng):
    """Crop a :func:`random_resized_crop_box` and resize it (bilinear) to ``size x size``."""
    y0, x0, ch, cw = random_resized_crop_box(x.shape[-2], x.shape[-1], scale, ratio, rng)
    x = x[..., y0:y0 + ch, x0:x0 + cw]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def horizontal_flip(x, p, rng):
    return x.flip(-1) if rng.random() < p else x


def _grey(x):
    """Per-frame luminance ``1 x T x H x W`` of an RGB clip ``3 x T x H x W``."""
    return _LUMA[0] * x[0:1] + _LUMA[1] * x[1:2] + _LUMA[2] * x[2:3]


def draw_color_ops(brightness, contrast, saturation, rng):
    """The random part of :func:`color_jitter`: ``[(kind, factor), ...]`` with kinds ``"b"``, ``"c"``, ``"s"``
    (factor ``1 + U(-s, s)``, drawn in that order for the non-zero strengths), then shuffled."""
    ops = []
    if brightness > 0:
        ops.append(("b", 1.0 + rng.uniform(-brightness, brightness)))
    if contrast > 0:
        ops.append(("c", 1.0 + rng.uniform(-contrast, contrast)))
    if saturation > 0:
        ops.append(("s", 1.0 + rng.uniform(-saturation, saturation)))
    rng.shuffle(ops)
    return ops


def color_jitter(x, brightness, contrast, saturation, rng):
    """Brightness / contrast / saturation jitter in random order, one factor ``1 + U(-s, s)`` per clip, applied
    frame by frame (contrast around each frame's mean grey level, saturation towards each frame's grey image)."""
    return apply_color_ops(x, draw_color_ops(brightness, contrast, saturation, rng))


def apply_color_ops(x, ops):
    """Apply the colour operations of :func:`draw_color_ops` to a float clip ``3 x T x H x W``."""
    for kind, alpha in ops:
        if kind == "b":
            x = x * alpha
        elif kind == "c":
            ref = _grey(x).mean(dim=(-2, -1), keepdim=True)
            x = alpha * x + (1 - alpha) * ref
        else:
            x = alpha * x + (1 - alpha) * _grey(x)
    return x


def grayscale(x):
    """Replace each frame by its RGB luminance, replicated to 3 channels."""
    return _grey(x).expand_as(x).clone()


def gaussian_blur(x, sigma, kernel_size=11):
    """Isotropic Gaussian blur of every frame (separable, reflect padding)."""
    half = kernel_size // 2
    t = torch.arange(-half, half + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c, tt, h, w = x.shape
    y = x.reshape(c * tt, 1, h, w)
    pad_h, pad_w = min(half, h - 1), min(half, w - 1)
    kh = k[half - pad_h: half + pad_h + 1]
    kw = k[half - pad_w: half + pad_w + 1]
    y = F.conv2d(F.pad(y, (0, 0, pad_h, pad_h), mode="reflect"), (kh / kh.sum()).view(1, 1, -1, 1))
    y = F.conv2d(F.pad(y, (pad_w, pad_w, 0, 0), mode="reflect"), (kw / kw.sum()).view(1, 1, 1, -1))
    return y.reshape(c, tt, h, w)


def reference_color_jitter(x, brightness, contrast, saturation, rng):
    """Compatibility mode: the GDT reference's pretraining colour jitter (spec 3.3a), bit for bit in behaviour.

    The reference's helpers expect ``T x C x H x W`` but get ``C x T x H x W``: its "grey image" is zero except in
    frames 0-2, which hold ``0.299·f2 + 0.587·f1 + 0.114·f0`` of each channel. Saturation blends towards that
    image (frames 3.. are only scaled), contrast towards its per-channel mean. Use only to reproduce the released
    models' training distribution; :func:`color_jitter` is the intended jitter.
    """
    grey = torch.zeros_like(x)
    if x.shape[1] >= 3:
        mix = 0.299 * x[:, 2] + 0.587 * x[:, 1] + 0.114 * x[:, 0]
        grey[:, 0:3] = mix.unsqueeze(1)
    ops = []
    if brightness > 0:
        ops.append(("b", 1.0 + rng.uniform(-brightness, brightness)))
    if contrast > 0:
        ops.append(("c", 1.0 + rng.uniform(-contrast, contrast)))
    if saturation > 0:
        ops.append(("s", 1.0 + rng.uniform(-saturation, saturation)))
    rng.shuffle(ops)
    for kind, alpha in ops:
        if kind == "b":
            x = x * alpha
        elif kind == "c":
            x = alpha * x + (1 - alpha) * grey.mean(dim=(1, 2, 3), keepdim=True)
        else:
            x = alpha * x + (1 - alpha) * grey
    return x


def normalize(x, mean, std):
    mean = torch.as_tensor(mean, dtype=x.dtype).view(-1, 1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype).view(-1, 1, 1, 1)
    return (x - mean) / std


# ---------------------------------------------------------------------------------------------------------------
# Fast path: geometry on uint8 frames, colour jitter + greyscale + normalisation as one per-frame affine map
# ---------------------------------------------------------------------------------------------------------------
#
# The float path converts the whole decoded clip (e.g. 30 x 256 x 340) to float, resizes it, crops, and then makes
# one pass per colour operation. The fast path resizes the uint8 frames with PyTorch's vectorised uint8 bilinear
# kernel (channels-last, same sampling positions as the float resize; results rounded to integers), converts only
# the crop to float and applies every colour operation and the normalisation in one pass: brightness, saturation,
# greyscale and normalisation are linear / affine maps of the RGB vector, and contrast blends towards a frame's mean
# grey level, which is the affine image of the frame's mean RGB. Flips (horizontal, and in time for reversed views)
# are applied to the small uint8 crop. A Gaussian blur is applied last (it commutes with per-frame affine colour
# maps because its kernel sums to 1). Random draws are made in the same order as on the float path, so that the
# same ``rng`` state gives the same view up to uint8 rounding of the resized pixels.


def resize_u8(x, size):
    """Bilinear resize (align_corners False, no antialiasing) of a uint8 ``T x 3 x H x W`` clip to ``size``."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    x = x.contiguous(memory_format=torch.channels_last)
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def _color_affine(ops, gray, mean, std, frame_means):
    """Compose colour operations, greyscale and normalisation into ``out = A @ rgb + c`` for ``rgb`` in [0, 255].

    Returns ``A`` (3 x 3, shared by all frames) and ``c`` (3 x T, or 3 x 1 without contrast). ``frame_means`` (3 x T, mean RGB of each frame in
    [0, 255]) is called lazily, only when a contrast operation needs it.
    """
    luma = torch.tensor(_LUMA, dtype=torch.float64)
    a = torch.eye(3, dtype=torch.float64) / 255.0
    c = torch.zeros(3, 1, dtype=torch.float64)
    means = None
    for kind, alpha in ops:
        if kind == "b":
            a, c = a * alpha, c * alpha
        elif kind == "c":
            if means is None:
                means = frame_means().double()
            ref = luma @ (a @ means + c)  # T: mean grey level of each frame at this point of the chain
            a, c = a * alpha, c * alpha + (1.0 - alpha) * ref.unsqueeze(0)
        else:
            p = alpha * torch.eye(3, dtype=torch.float64) + (1.0 - alpha) * torch.ones(3, 1, dtype=torch.float64) * luma
            a, c = p @ a, p @ c
    if gray:
        p = torch.ones(3, 1, dtype=torch.float64) * luma
        a, c = p @ a, p @ c
    inv_std = 1.0 / torch.as_tensor(std, dtype=torch.float64).view(3, 1)
    a = a * inv_std
    c = (c - torch.as_tensor(mean, dtype=torch.float64).view(3, 1)) * inv_std
    return a.float(), c.float()


def _flip_u8(x, flip, reverse):
    dims = ([-1] if flip else []) + ([0] if reverse else [])
    return x.flip(dims) if dims else x


def defer_view_u8(x, *, mean, std, ops=(), gray=False, flip=False, reverse=False):
    """The deferred form of :func:`finish_view_u8` (``DATA.COLOR_ON_DEVICE``): the flipped / reversed uint8 view
    ``3 x T x S x S`` and its colour map ``3 x (3 + T)`` (``[A | c]``: ``out = A @ rgb + c[:, t]`` for ``rgb`` in
    [0, 255], colour operations, greyscale and normalisation composed), for :func:`apply_view_colors` to finish on
    the training device. The frame means a contrast operation needs are taken from the uint8 view here."""
    x = _flip_u8(x, flip, reverse).permute(1, 0, 2, 3).contiguous()
    count = x.shape[-1] * x.shape[-2]
    a, c = _color_affine(ops, gray, mean, std, lambda: x.sum(dim=(-2, -1), dtype=torch.int64).double() / count)
    return x, torch.cat([a, c.expand(3, x.shape[1])], dim=1)


def apply_view_colors(video, color, blur=None):
    """Finish deferred views (:func:`defer_view_u8`) on whatever device they are on: ``video`` uint8
    ``... x 3 x T x S x S``, ``color`` ``... x 3 x (3 + T)`` with the same leading dimensions, optional ``blur``
    ``...`` (Gaussian sigma per view, 0 = none, as :func:`stica_video_transform` draws it). Returns float32
    ``... x 3 x T x S x S``, equal to the views the workers would have finished (up to float rounding)."""
    lead, (ch, t, h, w) = video.shape[:-4], video.shape[-4:]
    if color.shape != (*lead, 3, 3 + t):
        raise ValueError(f"color must have shape {(*lead, 3, 3 + t)} for video {tuple(video.shape)}, "
                         f"got {tuple(color.shape)}")
    x = video.reshape(-1, ch, t * h * w).float()
    cm = color.reshape(-1, 3, 3 + t).float()
    out = torch.bmm(cm[:, :, :3], x).view(-1, 3, t, h, w) + cm[:, :, 3:].view(-1, 3, t, 1, 1)
    if blur is not None:
        sigmas = blur.reshape(-1).tolist()
        for i, sigma in enumerate(sigmas):
            if sigma > 0:
                out[i] = gaussian_blur(out[i], sigma)
    return out.view(*lead, 3, t, h, w)


def finish_view_u8(x, *, mean, std, ops=(), gray=False, flip=False, reverse=False, out=None):
    """Final steps of a fast-path view: ``x`` is the resized and cropped uint8 clip ``T x 3 x S x S``; optional
    horizontal flip and time reversal, then colour operations (:func:`draw_color_ops`), greyscale and normalisation
    in one affine pass. Returns ``3 x T x S x S`` float32 (contiguous), written into ``out`` when given (e.g. one
    view of a preallocated multi-view sample)."""
    x = _flip_u8(x, flip, reverse)
    xf = x.permute(1, 0, 2, 3).to(torch.float32, memory_format=torch.contiguous_format)
    a, c = _color_affine(ops, gray, mean, std, lambda: xf.mean(dim=(-2, -1)))
    if out is not None and (out.shape != xf.shape or not out.is_contiguous() or out.dtype != torch.float32):
        raise ValueError(f"out must be a contiguous float32 tensor of shape {tuple(xf.shape)}")
    if gray or any(kind == "s" for kind, _ in ops):
        res = torch.mm(a, xf.view(3, -1), out=None if out is None else out.view(3, -1)).view_as(xf)
    else:  # diagonal map: per-channel scale
        res = torch.mul(xf, a.diagonal().view(3, 1, 1, 1), out=out) if out is not None else xf.mul_(
            a.diagonal().view(3, 1, 1, 1))
    res += c.view(3, -1, 1, 1)  # 3 x T (contrast) or 3 x 1
    return res


def train_video_transform(frames, *, jitter_scales, crop_size, mean, std, rng, flip=True, color=None,
                          reference_color=False, fast=True, reverse=False, out=None, defer_color=False):
    """GDT pretraining / training augmentation (spec 3.3a, with the intended per-frame colour jitter): short side
    resized to ``round(U(jitter_scales))``, random ``crop_size`` crop, horizontal flip with p 0.5, colour jitter,
    normalisation.

    Args:
        frames: ``T x H x W x 3`` uint8.
        color: ``(brightness, contrast, saturation)`` or None for no colour jitter.
        reference_color: use :func:`reference_color_jitter` (the reference's layout quirk; always the float path).
        fast: resize in uint8 and fuse the colour operations (see the fast-path notes above); False = float path.
        reverse: return the view time-reversed (same as reversing ``frames`` first: every step acts frame by frame).
        out: optional preallocated ``3 x T x S x S`` float32 tensor to write the view into.
        defer_color: return ``(uint8 view, colour map)`` of :func:`defer_view_u8` instead (fast path only; same
            random draws), for :func:`apply_view_colors` on the training device.

    Returns:
        ``3 x T x crop_size x crop_size`` float, normalised.
    """
    if defer_color and (not fast or reference_color):
        raise ValueError("defer_color needs the fast path without the reference colour jitter")
    if not fast or reference_color:
        x = uint8_thwc_to_float_cthw(frames.flip(0) if reverse else frames)
        x = random_short_side_scale_jitter(x, jitter_scales[0], jitter_scales[1], rng)
        x = random_crop(x, crop_size, rng)
        if flip:
            x = horizontal_flip(x, 0.5, rng)
        if color is not None:
            x = (reference_color_jitter if reference_color else color_jitter)(x, *color, rng)
        x = normalize(x, mean, std).contiguous()
        return out.copy_(x) if out is not None else x
    size = int(round(rng.uniform(jitter_scales[0], jitter_scales[1])))
    x = resize_u8(frames.permute(0, 3, 1, 2), short_side_size(frames.shape[1], frames.shape[2], size))
    x = random_crop(x, crop_size, rng)
    do_flip = bool(flip) and rng.random() < 0.5
    ops = draw_color_ops(*color, rng) if color is not None else ()
    if defer_color:
        return defer_view_u8(x, mean=mean, std=std, ops=ops, flip=do_flip, reverse=reverse)
    return finish_view_u8(x, mean=mean, std=std, ops=ops, flip=do_flip, reverse=reverse, out=out)


def eval_video_transform(frames, *, crop_size, spatial_idx, mean, std, fast=True):
    """Deterministic evaluation view: short side resized to ``crop_size``, uniform crop ``spatial_idx``."""
    if not fast:
        x = uint8_thwc_to_float_cthw(frames)
        x = resize_short_side(x, crop_size)
        x = uniform_crop(x, crop_size, spatial_idx)
        return normalize(x, mean, std).contiguous()
    x = resize_u8(frames.permute(0, 3, 1, 2), short_side_size(frames.shape[1], frames.shape[2], crop_size))
    return finish_view_u8(uniform_crop(x, crop_size, spatial_idx), mean=mean, std=std)


def stica_video_transform(frames, *, crop_size, mean, std, rng, scale=(0.14, 1.0), ratio=(3 / 4, 4 / 3), flip=True,
                          color=(0.4, 0.4, 0.4), color_prob=0.8, gray_prob=0.2, blur_prob=0.5, blur_sigma=(0.1, 2.0),
                          fast=True, defer_color=False):
    """STiCA pretraining view (spec 3.3b, intended version): RandomResizedCrop, flip, colour jitter with
    probability ``color_prob`` (per-frame RGB, on [0, 1] values), greyscale with ``gray_prob``, Gaussian blur with
    ``blur_prob`` and a random isotropic sigma ``U(blur_sigma)``; then normalisation. ``3 x T x S x S`` out.
    ``fast``: uint8 geometry and one fused colour pass (see the fast-path notes above). ``defer_color`` (fast path
    only): return ``(uint8 view, colour map, blur sigma or 0)`` for :func:`apply_view_colors` instead."""
    if defer_color and not fast:
        raise ValueError("defer_color needs the fast path")
    if not fast:
        x = uint8_thwc_to_float_cthw(frames)
        x = random_resized_crop(x, crop_size, scale, ratio, rng)
        if flip:
            x = horizontal_flip(x, 0.5, rng)
        if color is not None and rng.random() < color_prob:
            x = color_jitter(x, *color, rng)
        if rng.random() < gray_prob:
            x = grayscale(x)
        if rng.random() < blur_prob:
            x = gaussian_blur(x, rng.uniform(*blur_sigma))
        return normalize(x, mean, std).contiguous()
    y0, x0, ch, cw = random_resized_crop_box(frames.shape[1], frames.shape[2], scale, ratio, rng)
    x = resize_u8(frames[:, y0:y0 + ch, x0:x0 + cw].permute(0, 3, 1, 2), (crop_size, crop_size))
    do_flip = bool(flip) and rng.random() < 0.5
    ops = draw_color_ops(*color, rng) if (color is not None and rng.random() < color_prob) else ()
    gray = rng.random() < gray_prob
    sigma = rng.uniform(*blur_sigma) if rng.random() < blur_prob else None
    if defer_color:
        return (*defer_view_u8(x, mean=mean, std=std, ops=ops, gray=gray, flip=do_flip), sigma or 0.0)
    x = finish_view_u8(x, mean=mean, std=std, ops=ops, gray=gray, flip=do_flip)
    return gaussian_blur(x, sigma).contiguous() if sigma is not None else x

"""Small meters for training / evaluation statistics."""

import math
import time
from collections import defaultdict


def mean_std(values):
    """``(mean, sample standard deviation)`` of ``values`` (std 0 for a single value; ``(None, None)`` when
    empty)."""
    values = [float(v) for v in values]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


class ScalarMeter:
    """Running sum / count of scalars (global average) plus the last value."""

    def __init__(self):
        self.total = 0.0
        self.count = 0
        self.last = float("nan")

    def update(self, value, n=1):
        self.last = float(value)
        self.total += float(value) * n
        self.count += n

    @property
    def avg(self):
        return self.total / max(self.count, 1)


class MeterDict:
    def __init__(self):
        self.meters = defaultdict(ScalarMeter)

    def update(self, n=1, **values):
        for k, v in values.items():
            self.meters[k].update(v, n)

    def averages(self):
        return {k: m.avg for k, m in self.meters.items()}

    def __getitem__(self, k):
        return self.meters[k]


class Timer:
    def __init__(self):
        self.reset()

    def reset(self):
        self.start = time.perf_counter()

    def seconds(self):
        return time.perf_counter() - self.start


def topk_correct(logits, labels, ks=(1, 5)):
    """Number of rows whose label is among the top-k logits, for each k (k clipped to the number of classes)."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices
    hit = top == labels.view(-1, 1)
    return [int(hit[:, : min(k, maxk)].any(dim=1).sum()) for k in ks]

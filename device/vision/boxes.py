"""Box overlap and association across frames: pure geometry on [x, y, width, height] boxes."""
from __future__ import annotations


def iou(a, b) -> float:
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def match(previous: list, current: list, threshold: float) -> list[tuple[int, int]]:
    """Greedy IoU association, best pairs first: (index in previous, index in current) of the boxes that
    continue one another (IoU >= threshold). The camera loop's tracks and contract 4's `removed` both use it."""
    pairs = sorted(((iou(a, b), pi, ci) for pi, a in enumerate(previous) for ci, b in enumerate(current)),
                   reverse=True)
    used_p, used_c, result = set(), set(), []
    for overlap, pi, ci in pairs:
        if overlap < threshold:
            break
        if pi in used_p or ci in used_c:
            continue
        used_p.add(pi)
        used_c.add(ci)
        result.append((pi, ci))
    return result

"""Fewer points for a chart, same shape: min-max per bucket, first and last kept.

A run of 200,000 steps logs 200,000 loss points; drawn one `<circle>` each, that is a 20 MB page.
Each bucket of consecutive points keeps its lowest and highest (in step order), so spikes and
plateaus survive where plain striding would skip them.
"""

from __future__ import annotations

MAX_POINTS = 2000


def downsample(
    points: list[tuple[float, float]], max_points: int = MAX_POINTS
) -> list[tuple[float, float]]:
    """At most `max_points` of `points` (sorted by step), keeping the first, the last, and the
    minimum and maximum of each of `(max_points - 2) // 2` consecutive buckets."""
    if len(points) <= max_points:
        return list(points)
    inner = points[1:-1]
    buckets = max(1, (max_points - 2) // 2)
    size = len(inner) / buckets
    kept = [points[0]]
    for index in range(buckets):
        bucket = inner[int(index * size) : int((index + 1) * size)]
        if not bucket:
            continue
        low = min(range(len(bucket)), key=lambda i: bucket[i][1])
        high = max(range(len(bucket)), key=lambda i: bucket[i][1])
        kept.extend(bucket[i] for i in sorted({low, high}))
    kept.append(points[-1])
    return kept

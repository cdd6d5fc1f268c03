"""Which comments of a file the LLM answers to teach: a draw that covers the file, then, for
each node or flag the answers show too rarely, the unsampled comments nearest to it."""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from sklearn.cluster import KMeans

MIN_SAMPLE = 200  # comments the LLM answers at least, however small the share
SHARE = 0.05  # of the file, where that is more
PER_CLUSTER = 8  # sample comments per region of the file the draw is spread over


def sample_size(total: int, setting: float = 0.0) -> int:
    """How many comments to sample: `setting` of them where it is 1 or more, that share of the
    file where it is below 1, and by default `SHARE` of it but at least `MIN_SAMPLE`."""
    if setting >= 1:
        wanted = int(setting)
    elif setting > 0:
        wanted = math.ceil(setting * total)
    else:
        wanted = max(MIN_SAMPLE, math.ceil(SHARE * total))
    return min(total, wanted)


def covering(vectors: np.ndarray, size: int, seed: int) -> list[int]:
    """`size` row indices spread over the file: its embeddings grouped in regions (k-means),
    each region drawn at random in proportion to its size and at least once, so a small
    region of unusual comments is seen and a large one is not over-drawn. Sorted."""
    total = len(vectors)
    if size >= total:
        return list(range(total))
    regions = max(1, min(size // PER_CLUSTER, total))
    region = KMeans(n_clusters=regions, n_init=1, random_state=seed).fit_predict(vectors) if regions > 1 \
        else np.zeros(total, dtype=int)
    members = [np.flatnonzero(region == r) for r in range(regions)]
    quota = _apportioned([len(m) for m in members], size)
    rng = np.random.default_rng(seed)
    return sorted(int(k) for m, q in zip(members, quota) for k in rng.choice(m, size=q, replace=False))


def _apportioned(sizes: Sequence[int], size: int) -> list[int]:
    """`size` seats over regions of `sizes` (fewer regions than seats): one each, the rest by largest remainder."""
    quota = [min(1, s) for s in sizes]
    left, room = size - sum(quota), [s - q for s, q in zip(sizes, quota)]
    share = [left * r / max(1, sum(room)) for r in room]
    quota = [q + int(s) for q, s in zip(quota, share)]
    for k in np.argsort([-(s - int(s)) for s in share], kind="stable")[: size - sum(quota)]:
        quota[k] += 1
    return [min(q, s) for q, s in zip(quota, sizes)]


def near(vectors: np.ndarray, queries: Mapping[str, tuple[np.ndarray, int]], taken: set[int], limit: int) -> list[int]:
    """For each short node (name -> (a unit vector near what it is about, comments it lacks)), the
    comments not taken yet that are nearest to it, rarest need first, `limit` in all. Sorted."""
    picked: set[int] = set()
    free = np.array([k for k in range(len(vectors)) if k not in taken], dtype=int)
    for name, (query, lacking) in sorted(queries.items(), key=lambda item: (-item[1][1], item[0])):
        if not len(free) or len(picked) >= limit:
            break
        order = free[np.argsort(-(vectors[free] @ query), kind="stable")]
        fresh = [int(k) for k in order if k not in picked][: min(lacking, limit - len(picked))]
        picked.update(fresh)
    return sorted(picked)

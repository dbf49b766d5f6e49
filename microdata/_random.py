"""Named, independent random streams derived from one seed.

Each generator step draws from its own stream, so changing one step (say, the business
register) does not shift the random numbers of another (say, the farms): the world stays
comparable across generator edits, and a test can plant effects in one part only.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    """A ``numpy`` generator for step *name* under *seed* (stable across Python runs)."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, key])


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float64, safe for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def gumbel_choice(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of *logits* (rows are units), by the Gumbel-max trick."""
    g = rng.gumbel(size=logits.shape).astype(np.float32)
    return np.argmax(logits + g, axis=1).astype(np.int8)


def rank_within(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Rank (0-based) of each element by *keys* within its group."""
    order = np.lexsort((keys, groups))
    sorted_groups = groups[order]
    starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
    ranks = np.empty(len(groups), dtype=np.int64)
    ranks[order] = np.arange(len(groups)) - starts
    return ranks


def match_within_groups(
    demand_group: np.ndarray, supply_group: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Give each demand a distinct random supply index from the same group.

    Returns an array of supply indices aligned with *demand_group*; ``-1`` where the group
    ran out of supply. Vectorised: shuffle both sides, sort by group, pair by rank.
    """
    sp = rng.permutation(len(supply_group))
    sp = sp[np.argsort(supply_group[sp], kind="stable")]
    sg = supply_group[sp]
    dp = rng.permutation(len(demand_group))
    dp = dp[np.argsort(demand_group[dp], kind="stable")]
    dg = demand_group[dp]
    rank = np.arange(len(dp)) - np.searchsorted(dg, dg, side="left")
    lo = np.searchsorted(sg, dg, side="left")
    hi = np.searchsorted(sg, dg, side="right")
    ok = lo + rank < hi
    out = np.full(len(demand_group), -1, dtype=np.int64)
    out[dp[ok]] = sp[lo[ok] + rank[ok]]
    return out


def sample_within_groups(
    demand_group: np.ndarray, supply_group: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Like :func:`match_within_groups` but with replacement; ``-1`` for empty groups."""
    sp = np.argsort(supply_group, kind="stable")
    sg = supply_group[sp]
    lo = np.searchsorted(sg, demand_group, side="left")
    hi = np.searchsorted(sg, demand_group, side="right")
    n = hi - lo
    pick = lo + np.floor(rng.random(len(demand_group)) * np.maximum(n, 1)).astype(np.int64)
    out = np.full(len(demand_group), -1, dtype=np.int64)
    ok = n > 0
    out[ok] = sp[pick[ok]]
    return out

"""Bradley-Terry ratings from pairwise comparisons (Bradley & Terry 1952; Hunter 2004).

Entrant i has strength p_i > 0 and beats j with probability p_i / (p_i + p_j). Given the win
matrix W (W[i, j] = wins of i over j, a tie counting half to each), the maximum-likelihood
strengths solve Hunter's minorise-maximise fixed point

    p_i <- W_i / sum_{j != i} (W[i, j] + W[j, i]) / (p_i + p_j),   W_i = sum_j W[i, j],

normalised to geometric mean 1 each round. Ratings are reported on the Elo scale,
400 log10(p_i) + 1000, so 400 points mean 10:1 odds. A tiny prior (``pseudo`` wins of each
entrant over every other) keeps strengths finite when one entrant wins everything.
"""

from __future__ import annotations

import math

import numpy as np

ELO_BASE = 1000.0


def fit_strengths(
    wins: np.ndarray, *, pseudo: float = 0.1, iterations: int = 10_000, tol: float = 1e-12
) -> np.ndarray:
    """Maximum-likelihood (lightly regularised) strengths p (K,), geometric mean 1."""
    w = np.asarray(wins, dtype=np.float64)
    k = w.shape[0]
    if w.shape != (k, k) or k < 2:
        raise ValueError(f"wins must be a square (K, K) matrix with K >= 2, got {w.shape}")
    if (w < 0).any():
        raise ValueError("win counts must be non-negative")
    w = w + pseudo * (1 - np.eye(k))
    np.fill_diagonal(w, 0.0)
    games = w + w.T  # (K, K) comparisons between each pair
    p = np.ones(k)
    for _ in range(iterations):
        denominator = (games / (p[:, None] + p[None, :])).sum(1)
        new = w.sum(1) / denominator
        new /= math.exp(np.log(new).mean())
        if np.abs(new - p).max() < tol:
            return new
        p = new
    return p


def elo(strengths: np.ndarray) -> np.ndarray:
    """Strengths on the Elo scale (1000 at geometric mean strength)."""
    return 400 * np.log10(strengths) + ELO_BASE


def win_matrix(outcomes: list[tuple[int, int, float]], k: int) -> np.ndarray:
    """W from (i, j, score of i) triples: score 1 = i won, 0 = j won, 0.5 = tie."""
    w = np.zeros((k, k))
    for i, j, s in outcomes:
        w[i, j] += s
        w[j, i] += 1 - s
    return w


def bootstrap_ratings(
    groups: list[list[tuple[int, int, float]]],
    k: int,
    *,
    n_boot: int = 500,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elo ratings (K,) and their 95% percentile intervals, resampling ``groups`` of outcomes
    (say all comparisons on one prompt) with replacement."""
    if not groups:
        raise ValueError("no comparisons to rate")
    ratings = elo(fit_strengths(win_matrix([o for g in groups for o in g], k)))
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, k))
    for b in range(n_boot):
        picked = rng.integers(0, len(groups), len(groups))
        draws[b] = elo(fit_strengths(win_matrix([o for i in picked for o in groups[i]], k)))
    return ratings, np.percentile(draws, 2.5, axis=0), np.percentile(draws, 97.5, axis=0)

"""Bradley-Terry fitting against closed forms and a direct likelihood maximisation (scipy)."""

import numpy as np
import pytest
from scipy.optimize import minimize

from atelier.eval.bradley_terry import bootstrap_ratings, elo, fit_strengths, win_matrix


def test_two_entrants_match_the_closed_form():
    # With two entrants the MLE gives P(A beats B) = wins_A / games.
    p = fit_strengths(np.array([[0, 30], [10, 0]]), pseudo=0.0)
    assert p[0] / (p[0] + p[1]) == pytest.approx(0.75, abs=1e-9)
    assert elo(p)[0] - elo(p)[1] == pytest.approx(400 * np.log10(3), abs=1e-6)


def test_matches_direct_maximum_likelihood():
    wins = np.array([[0, 7, 9, 4], [3, 0, 6, 5], [1, 4, 0, 2], [6, 5, 8, 0]], dtype=float)

    def nll(theta):
        theta = np.concatenate([[0.0], theta])  # fix entrant 0's log-strength at 0
        diff = theta[:, None] - theta[None, :]
        return -(wins * (diff - np.logaddexp(0, diff))).sum()

    theta = minimize(nll, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    reference = np.exp(np.concatenate([[0.0], theta]))
    ours = fit_strengths(wins, pseudo=0.0)
    np.testing.assert_allclose(ours / ours[0], reference / reference[0], rtol=1e-5)


def test_ties_and_sweeps_stay_finite():
    w = win_matrix([(0, 1, 1.0)] * 5 + [(0, 1, 0.5)] * 2, 2)
    assert w[0, 1] == 6 and w[1, 0] == 1
    p = fit_strengths(np.array([[0, 10], [0, 0]]))  # a clean sweep
    assert np.isfinite(p).all() and p[0] > 10 * p[1]
    with pytest.raises(ValueError, match="square"):
        fit_strengths(np.zeros((2, 3)))


def test_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(0)
    groups = [[(0, 1, float(rng.random() < 0.7)), (1, 2, float(rng.random() < 0.6))]
              for _ in range(60)]  # fmt: skip
    ratings, low, high = bootstrap_ratings(groups, 3, n_boot=200)
    assert (low <= ratings + 1e-9).all() and (ratings <= high + 1e-9).all()
    assert ratings[0] > ratings[1] > ratings[2]

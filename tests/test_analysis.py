"""Trajectory analysis on synthetic curves with known answers."""

import numpy as np
import pytest

from dln_kernels.measure.analysis import (
    crossing_time,
    descent_duration,
    detect_plateaus,
    late_decay_rate,
    search_end_time,
    train_test_delay as drop_delay,
)

T = np.concatenate([[0.0], np.geomspace(1e-2, 1e3, 400)])


def test_crossing_time_interpolates_exponential_exactly():
    e = np.exp(-0.7 * T)
    # log e is linear in t, so the (t, log e) interpolation is exact on any grid
    assert crossing_time(T, e, np.exp(-0.7 * 3.3)) == pytest.approx(3.3, rel=1e-10)
    assert np.isnan(crossing_time(T, e, -1.0))


def test_search_end_of_a_plateau_then_drop():
    # E = E0 for t < t0 then E0·exp(−(t − t0)): half of E0 at t0 + ln 2
    t0 = 12.0
    e = 0.3 * np.exp(-np.clip(T - t0, 0, None))
    assert search_end_time(T, e) == pytest.approx(t0 + np.log(2), rel=1e-6)
    assert descent_duration(T, e, 0.5, 1e-2) == pytest.approx(np.log(100) - np.log(2), rel=1e-6)


def test_test_drop_delay():
    e_train = np.exp(-T)
    e_test = np.exp(-np.clip(T - 50.0, 0, None) * 0.5)
    t_tr, t_te, delay = drop_delay(T, e_train, e_test)
    assert t_tr == pytest.approx(np.log(2), rel=1e-6)
    assert t_te == pytest.approx(50 + 2 * np.log(2), rel=1e-6)
    assert delay == pytest.approx(t_te - t_tr)


def test_late_rate_with_noise_and_floor_mask():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 100, 300)
    e = 2.0 * np.exp(-0.25 * t) * np.exp(0.05 * rng.standard_normal(t.size))
    floor = 1e-9
    e_obs = np.maximum(e, floor * np.exp(0.5 * rng.standard_normal(t.size)))  # noise floor at late times
    fit = late_decay_rate(t, e_obs, valid=e_obs > 10 * floor, tail_fraction=0.5)
    assert fit.rate == pytest.approx(0.25, abs=4 * fit.rate_se + 1e-3)
    assert fit.rate_se < 0.01 and fit.r_squared > 0.99
    assert fit.t_end < 80  # the window stops before the floor
    unmasked = late_decay_rate(t, e_obs, tail_fraction=0.5)
    # the floor flattens an unmasked fit, far outside its own error bar: the mask matters
    assert abs(unmasked.rate - 0.25) > 5 * unmasked.rate_se


def test_late_rate_needs_points():
    assert np.isnan(late_decay_rate([0, 1, 2], [1, 0.5, 0.25]).rate)


def staircase(t, levels, times, width=0.05):
    """Drops from level i to i+1 at times[i] (sigmoids in log t)."""
    le = np.full(t.shape, np.log10(levels[0]))
    for i, tc in enumerate(times):
        s = 1 / (1 + np.exp(-(np.log10(np.maximum(t, 1e-300)) - np.log10(tc)) / width))
        le += s * (np.log10(levels[i + 1]) - np.log10(levels[i]))
    return 10**le


def test_detect_plateaus_of_a_staircase():
    t = np.geomspace(1e-2, 1e4, 2000)
    levels, times = [1.0, 0.2, 0.03, 1e-3], [1.0, 30.0, 800.0]
    p = detect_plateaus(t, staircase(t, levels, times))
    assert p.count == 4
    np.testing.assert_allclose(p.heights, levels, rtol=0.05)
    # each step (end of a plateau) lies just before the drop's midpoint
    assert np.all(p.step_times < np.array(times)) and np.all(p.step_times > np.array(times) / 3)


def test_single_exponential_has_one_plateau():
    t = np.geomspace(1e-3, 1e2, 500)
    assert detect_plateaus(t, np.exp(-t)).count == 1

"""Threshold calibration modes, the plateau rule on constructed curves."""
import numpy as np
import pytest

from bah.apps.challenge.calibration import CALIBRATIONS, GRID, calibrate, f1_curve, plateau_threshold, smooth


def _curve(pieces):
    """99 values on GRID (0.01..0.99): 0.5 everywhere except ``{(lo, hi): value}`` (inclusive)."""
    c = np.full(GRID.size, 0.5)
    for (lo, hi), v in pieces.items():
        c[(GRID >= lo - 1e-9) & (GRID <= hi + 1e-9)] = v
    return c


def test_registry_lists_the_four_modes():
    assert CALIBRATIONS.list() == ["argmax", "base_rate", "fixed", "plateau"]
    assert CALIBRATIONS.get("argmax").optimistic and not CALIBRATIONS.get("plateau").optimistic


def test_smoothing_is_a_centred_moving_average_that_shrinks_at_the_ends():
    s = smooth(np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(s, [5 / 3, 5 / 4, 1.0, 1.0, 1.0, 0.0, 0.0])


def test_plateau_centre_beats_a_raw_spike():
    # a one-point spike of 0.80 at 0.30 and a broad plateau of 0.75 on 0.55..0.75:
    # smoothed, the spike is (0.8 + 4*0.5)/5 = 0.56; the plateau keeps 0.75 on 0.57..0.73
    c = _curve({(0.30, 0.30): 0.80, (0.55, 0.75): 0.75})
    got = plateau_threshold(c)
    assert got == {"threshold": 0.65, "low": 0.57, "high": 0.73}
    assert float(GRID[np.argmax(c)]) == 0.30


def test_the_widest_near_best_run_wins_over_a_slightly_higher_narrow_one():
    # 0.20..0.30 at 0.760 (smoothed interior 0.76, 7 points 0.22..0.28) vs 0.50..0.80 at 0.755
    # (within the 0.01 tolerance, 27 points 0.52..0.78): the wide run's centre is 0.65
    c = _curve({(0.20, 0.30): 0.760, (0.50, 0.80): 0.755})
    assert plateau_threshold(c)["threshold"] == 0.65
    # outside the tolerance the narrow, higher run is the only near-best one
    c = _curve({(0.20, 0.30): 0.80, (0.50, 0.80): 0.755})
    assert plateau_threshold(c) == {"threshold": 0.25, "low": 0.22, "high": 0.28}


def test_modes_through_calibrate():
    probs = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.35, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 1, 0, 0, 1, 0, 0])
    assert calibrate("fixed", probs, labels, 0.5) == 0.5
    # base rate 0.3 of 10 videos: exactly the top 3 are positive, halfway between 0.8 and 0.7
    t = calibrate("base_rate", probs, labels, 0.3)
    assert t == pytest.approx(0.75) and int((probs >= t).sum()) == 3
    curve = f1_curve(labels, probs)
    assert calibrate("argmax", probs, labels, 0.5) == float(GRID[np.argmax(curve)])
    assert calibrate("plateau", probs, labels, 0.5) == plateau_threshold(curve)["threshold"]
    with pytest.raises(KeyError, match="registered: argmax, base_rate, fixed, plateau"):
        calibrate("median", probs, labels, 0.5)
    with pytest.raises(ValueError, match="unlabelled"):
        calibrate("plateau", probs, -np.ones(10), 0.5)


def test_f1_curve_matches_the_metric_at_one_threshold():
    from bah.metrics.frame import frame_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50)
    probs = rng.random(50)
    curve = f1_curve(labels, probs)
    k = int(np.flatnonzero(GRID == 0.42)[0])
    assert curve[k] == frame_metrics(labels, preds=(probs >= 0.42).astype(int))["avgf1"]


def test_threshold_curve_plot_is_a_png(tmp_path):
    from bah.metrics.plots import plot_threshold_curve

    c = _curve({(0.55, 0.75): 0.75})
    p = plateau_threshold(c)
    dest = plot_threshold_curve(GRID, c, tmp_path / "curve.png", p["threshold"], smoothed=smooth(c),
                                band=(p["low"], p["high"]))
    assert dest.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="PNG"):
        plot_threshold_curve(GRID, c, tmp_path / "curve.pdf", 0.5)

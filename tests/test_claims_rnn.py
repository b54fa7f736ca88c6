"""The claims of rnn_time, lyapunov and cliff on constructed summaries: each can pass and fail."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnsim.claims import NotApplicable
from rnnsim.experiment import load_script

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def script(name):
    return load_script(EXPERIMENTS / f"{name}.py")


# -- rnn_time -------------------------------------------------------------------------------------


def _rnn_time_summary(**changes):
    s = pd.DataFrame(
        {
            "activation": "tanh",
            "init": ["gaussian", "gaussian"],
            "gain": [0.9, 3.0],
            "T": 200,
            "n": 64,
            "input_scale": 1.0,
            "samples": 4,
            "seeds": 3,
            "ln_norm_T": [-95.0, 50.0],
            "slope": [-0.48, 0.25],
            "lyapunov_max": [-0.47, 0.23],
            "bound_slope": [0.6, 1.8],
            "bound_margin": [0.1, 3e-9],
        }
    )
    for column, values in changes.items():
        s[column] = values
    return s


def test_rnn_time_explodes_and_vanishes():
    check = script("rnn_time").explodes_and_vanishes
    assert check(_rnn_time_summary()).passed
    verdict = check(_rnn_time_summary(ln_norm_T=[-95.0, 2.0]))  # nothing explodes
    assert not verdict.passed and verdict.numbers["max_ln_norm_T"] == 2.0


def test_rnn_time_slope_is_the_lyapunov_exponent():
    check = script("rnn_time").slope_is_lyapunov
    assert check(_rnn_time_summary()).passed
    verdict = check(_rnn_time_summary(slope=[-0.48, 0.4]))
    assert not verdict.passed and verdict.numbers["max_gap"] == pytest.approx(0.17)


def test_rnn_time_bound_holds():
    check = script("rnn_time").bound_holds
    assert check(_rnn_time_summary()).passed
    assert not check(_rnn_time_summary(bound_margin=[0.1, -1e-3])).passed


def test_rnn_time_summary_fits_slopes_and_bound_margins():
    lag = np.arange(0, 11)
    jac = pd.DataFrame({"sample": 0, "lag": lag, "log_spectral": -0.5 * lag + 1.0 * (lag > 0)})
    jac = jac.assign(lyapunov_max=-0.5, bound_slope=0.0, seed=0)
    grad = pd.DataFrame({"sample": -1, "lag": lag[1:], "log_grad_W": 0.0, "seed": 0})
    table = pd.concat([jac, grad], ignore_index=True).assign(
        activation="tanh", init="gaussian", gain=0.9, T=10, n=8, input_scale=1.0, samples=1
    )
    s = script("rnn_time").summary(table)
    assert len(s) == 1
    row = s.iloc[0]
    assert row.slope == pytest.approx(-0.5) and row.lyapunov_max == -0.5
    assert row.ln_norm_T == pytest.approx(-4.0)
    assert row.bound_margin == pytest.approx(-0.5)  # lag 1: 0 - (-0.5 + 1)


# -- lyapunov -------------------------------------------------------------------------------------


def _lyapunov_summary(lam=(-0.2, -0.09, -0.001, 0.003, 0.04, 0.15), n=256):
    gains = [0.8, 0.9, 1.1, 1.25, 1.5, 2.0]
    s = pd.DataFrame(
        {"gain": gains, "n": n, "steps": 1000, "transient": 250, "exponents": 8, "seeds": 3}
    )
    s["lambda_max"] = lam
    s["mean_field"] = [-0.223, -0.105, 0.005, 0.024, 0.065, 0.155]
    return s


def test_lyapunov_transition_at_one():
    check = script("lyapunov").transition_at_one
    verdict = check(_lyapunov_summary())
    assert verdict.passed and 1.1 < verdict.numbers["g_crossing"] < 1.25
    late = check(_lyapunov_summary(lam=(-0.2, -0.09, -0.03, -0.02, -0.01, 0.15)))
    assert not late.passed and late.numbers["g_crossing"] > 1.5  # crossing too far from 1
    positive_below = check(_lyapunov_summary(lam=(-0.2, 0.01, 0.02, 0.03, 0.04, 0.15)))
    assert not positive_below.passed
    with pytest.raises(NotApplicable):
        check(_lyapunov_summary().query("gain > 1"))


def test_lyapunov_mean_field_above_one():
    check = script("lyapunov").mean_field_above_one
    assert check(_lyapunov_summary()).passed
    verdict = check(_lyapunov_summary(lam=(-0.2, -0.09, -0.001, 0.003, 0.0, 0.15)))
    assert not verdict.passed and verdict.numbers["max_gap"] == pytest.approx(0.065)
    with pytest.raises(NotApplicable):  # no row at n >= 256
        check(_lyapunov_summary(n=64))


def test_lyapunov_summary_reports_lambda_max_per_gain_with_mean_field():
    table = pd.DataFrame(
        {
            "gain": [2.0] * 6,
            "n": 8,
            "steps": 10,
            "transient": 0,
            "exponents": 2,
            "seed": [0, 0, 1, 1, 2, 2],
            "index": [1, 2] * 3,
            "exponent": [0.1, -0.5, 0.2, -0.4, 0.3, -0.3],
        }
    )
    s = script("lyapunov").summary(table)
    assert len(s) == 1 and s["seeds"].iloc[0] == 3
    assert s["lambda_max"].iloc[0] == pytest.approx(0.2)
    assert s["lambda_max_low"].iloc[0] < 0.2 < s["lambda_max_high"].iloc[0]
    assert s["mean_field"].iloc[0] == pytest.approx(0.1547, abs=1e-3)


# -- cliff ----------------------------------------------------------------------------------------


def _cliff_summary(offset=(np.nan, 1e-3, 1e-9), b_wall=(np.nan, -4.5, -9.0), steps=(9.5, 0.5)):
    wall = pd.DataFrame(
        {
            "kind": "wall",
            "T": 50,
            "w": [4.0, 5.0, 12.0],
            "wall": [False, True, True],
            "b_wall": b_wall,
            "offset": offset,
        }
    )
    descent = pd.DataFrame(
        {
            "kind": "descent",
            "T": 50,
            "start": ["0", "0"],
            "clipping": ["none", "norm 0.5"],
            "longest_step": steps,
            "loss_end": [0.09, 0.02],
        }
    )
    return pd.concat([wall, descent], ignore_index=True)


def test_cliff_wall_on_the_basin_boundary_and_drawn_only_there():
    check = script("cliff").wall_on_boundary
    verdict = check(_cliff_summary())
    assert verdict.passed and verdict.numbers["w_onset"] == 5.0
    assert not check(_cliff_summary(offset=(np.nan, 0.05, 1e-9))).passed  # 0.05 > 1/T
    drawn_without = check(_cliff_summary(b_wall=(-2.0, -4.5, -9.0)))
    assert not drawn_without.passed and drawn_without.numbers["drawn_without"] == 1
    with pytest.raises(NotApplicable):
        check(_cliff_summary().query("kind == 'descent'"))


def test_cliff_clipping_keeps_descent_beside_the_wall():
    check = script("cliff").clipping_keeps_descent
    assert check(_cliff_summary()).passed
    assert not check(_cliff_summary(steps=(2.0, 0.5))).passed  # unclipped not thrown
    assert not check(_cliff_summary(steps=(9.5, 6.0))).passed  # clipped thrown too


def test_cliff_summary_reports_the_wall_per_w_and_each_descent():
    axes = {"T": 50, "n_grid": 10, "n_w": 2, "lr": 1.0, "clip": 0.5, "steps": 2, "seed": 0}
    cliff = pd.DataFrame(
        {"kind": "cliff", "w": [4.0, 5.0], "b_cliff": [-2.0, -4.5], "wall": [False, True]}
    ).assign(b_basin_boundary=[np.nan, -4.501])
    traj = pd.DataFrame(
        {
            "kind": "trajectory",
            "start": "0",
            "clipping": "none",
            "step": [0, 1, 2],
            "w": [5.0, 8.0, 8.0],
            "b": [-4.0, 0.0, 0.0],
            "loss": [0.4, 0.09, 0.09],
            "step_length": [0.0, 5.0, 0.0],
        }
    )
    s = script("cliff").summary(pd.concat([cliff, traj], ignore_index=True).assign(**axes))
    wall = s[s["kind"] == "wall"]
    assert wall["b_wall"].isna().tolist() == [True, False]
    assert wall["offset"].iloc[1] == pytest.approx(0.001)
    descent = s[s["kind"] == "descent"].iloc[0]
    assert descent.longest_step == 5.0 and descent.final_distance == pytest.approx(5.0)
    assert descent.loss_start == 0.4 and descent.loss_end == 0.09


def test_rnn_time_slope_claim_leaves_out_exactly_singular_products():
    check = script("rnn_time").slope_is_lyapunov
    verdict = check(_rnn_time_summary(lyapunov_max=[-0.47, -np.inf]))
    assert verdict.passed and verdict.numbers["singular"] == 1 and verdict.numbers["configs"] == 1
    with pytest.raises(NotApplicable):
        check(_rnn_time_summary(lyapunov_max=[-np.inf, -np.inf]))


def test_lyapunov_theory_curves_follow_the_mean_field_for_every_configuration():
    from rnnsim import theory

    lyap = script("lyapunov")
    table = pd.DataFrame(
        {"gain": [0.5, 2.0, 0.5, 2.0], "n": [64, 64, 256, 256], "steps": 1000}
        | {"transient": 250, "exponents": 8, "index": 1, "exponent": 0.0}
    )
    curves = lyap.theory_curves(table)
    assert sorted(curves["n"].unique()) == [64, 256] and (curves["index"] == 1).all()
    g = curves["gain"].to_numpy()
    assert g.min() == 0.5 and g.max() == 2.0
    want = [theory.rnn_max_lyapunov("tanh", v * v) for v in g]
    np.testing.assert_allclose(curves["exponent"], want, rtol=0, atol=0)
    assert lyap.EXPERIMENT.theory is lyap.theory_curves

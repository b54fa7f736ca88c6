"""The claims of rnn_time, lyapunov and cliff on constructed summary tables: each can pass and fail."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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

"""The training loop: learning, divergence recorded, clipping records, callbacks, determinism."""

import numpy as np
import pandas as pd
import pytest

from rnnsim import MLP, RNN, tasks
from rnnsim.optim import Optimizer
from rnnsim.train import evaluate, train

REQUIRED = [
    "step",
    "loss",
    "grad_norm",
    "grad_norm_clipped",
    "clipped",
    "param_norm",
    "diverged",
    "error_rate",
    "success",
]


def tiny_rnn(seed=0, **kw):
    kw.setdefault("activation", "tanh")
    kw.setdefault("init", "orthogonal")
    return RNN.random(2, 16, 1, seed=seed, **kw)


def test_tiny_rnn_learns_adding_T10():
    task = tasks.make("adding", 10, variant="pascanu2013")
    m0 = tiny_rnn()
    model, df = train(m0, task, optimizer="adam", lr=0.01, steps=600, seed=0, eval_every=50,
                      eval_batch=500, clip=("norm", 1.0))  # fmt: skip
    assert df.attrs["solved"] and not df.attrs["diverged"]
    assert df.attrs["steps_run"] < 600
    # the solved model passes Pascanu et al.'s rule on fresh sequences; the initial one does not
    assert evaluate(model, task, 10_000, 99)["success"]
    assert not evaluate(m0, task, 2_000, 99)["success"]
    assert set(REQUIRED) <= set(df.columns)
    assert df["step"].tolist() == list(range(len(df)))
    assert df.loc[df["solved"].fillna(False), "step"].iloc[0] == df.attrs["solved_step"]
    assert (df[["task", "variant", "T", "optimizer", "clip"]].iloc[0] == [
        "adding", "pascanu2013", 10, "adam", "norm"]).all()  # fmt: skip
    assert df["loss"].iloc[-50:].mean() < task.baseline / 5


def test_diverging_run_is_recorded_not_raised():
    task = tasks.make("adding", 20, variant="arjovsky2016")
    m0 = RNN.random(2, 8, 1, activation="linear", init="gaussian", gain=1.5, seed=1)
    model, df = train(m0, task, optimizer="sgd", lr=1e3, steps=200, seed=0, eval_every=0)
    assert df.attrs["diverged"] and not df.attrs["solved"]
    assert len(df) < 200 and df["diverged"].iloc[-1] and not df["diverged"].iloc[:-1].any()
    assert not np.isfinite(df["loss"].iloc[-1]) or not np.isfinite(df["grad_norm"].iloc[-1])
    assert np.isfinite(model.params_vector()).all()
    # the same run with norm clipping stays finite for the whole budget
    _, dfc = train(m0, task, optimizer="sgd", lr=1e-3, steps=50, seed=0, eval_every=0,
                   clip=("norm", 1.0))  # fmt: skip
    assert not dfc.attrs["diverged"] and len(dfc) == 50


def test_max_loss_counts_as_divergence():
    task = tasks.make("adding", 10, variant="arjovsky2016")
    _, df = train(tiny_rnn(), task, lr=0.01, steps=20, eval_every=0, max_loss=1e-6)
    assert df.attrs["diverged_step"] == 0 and len(df) == 1


def test_clipping_records():
    task = tasks.make("temporal_order", 20)
    m0 = RNN.random(6, 12, 4, activation="tanh", init="gaussian", gain=3.0, seed=2)
    _, df = train(m0, task, lr=0.05, steps=40, clip=("norm", 0.5), eval_every=0)
    assert (df["grad_norm_clipped"] <= 0.5 * (1 + 1e-12)).all()
    assert (df["clipped"] == (df["grad_norm"] >= 0.5)).all()
    assert df["clipped"].any()
    same = ~df["clipped"]
    assert np.allclose(df.loc[same, "grad_norm"], df.loc[same, "grad_norm_clipped"])
    _, dfn = train(m0, task, lr=0.05, steps=5, eval_every=0)
    assert (dfn["grad_norm"] == dfn["grad_norm_clipped"]).all() and not dfn["clipped"].any()
    assert dfn["grad_norm"].iloc[0] == df["grad_norm"].iloc[0]
    _, dfv = train(m0, task, lr=0.05, steps=5, eval_every=0, clip=("value", 1e-3))
    assert dfv["clipped"].all() and (dfv["clip"] == "value").all()


def test_same_seed_same_table_and_schedule():
    task = tasks.make("adding", 12, variant="pascanu2013")
    kw = dict(optimizer="momentum", lr=0.05, steps=30, seed=3, eval_every=10,
              schedule=("step", 10, 0.5))  # fmt: skip
    _, a = train(tiny_rnn(), task, **kw)
    _, b = train(tiny_rnn(), task, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert a["lr_step"].tolist()[:21:10] == [0.05, 0.025, 0.0125]
    _, c = train(tiny_rnn(), task, **{**kw, "seed": 4})
    assert not np.array_equal(a["loss"], c["loss"])
    assert a["eval_loss"].notna().sum() == 3


def test_callback_signature_and_merge():
    task = tasks.make("adding", 10, variant="arjovsky2016")
    m0 = tiny_rnn()
    seen = []

    def cb(step, model, x, target, grad):
        assert isinstance(step, int) and grad.ndim == 1 and grad.size == model.n_params
        assert x.shape[1:] == (20, 2) and target.shape == (20, 1)
        _, g = model.loss_and_grad_vector(x, target, "mse_last")
        np.testing.assert_array_equal(g, grad)  # unclipped gradient at the row's parameters
        seen.append(step)
        return {"probe": float(step) * 2}

    _, df = train(m0, task, lr=0.01, steps=10, clip=("norm", 1e-3), callback=cb,
                  callback_every=3, eval_every=0)  # fmt: skip
    assert seen == [0, 3, 6, 9]
    assert df.loc[seen, "probe"].tolist() == [0.0, 6.0, 12.0, 18.0]
    assert df["probe"].isna().sum() == 6


def test_curvature_callback_of_issue_7_plugs_in():
    curvature = pytest.importorskip("rnnsim.curvature")
    if not hasattr(RNN, "hvp"):
        pytest.skip("RNN.hvp (issue 7) not there yet")
    task = tasks.make("adding", 10, variant="arjovsky2016")
    cb = curvature.curvature_callback(0.01, loss=task.loss)
    _, df = train(tiny_rnn(), task, lr=0.01, steps=4, callback=cb, callback_every=2, eval_every=0)
    assert df["gTHg"].notna().sum() == 2


def test_mlp_on_teacher():
    task = tasks.make("teacher", d_in=4, d_out=1, width=8, depth=1, teacher_seed=1)
    m0 = MLP.random(16, 2, n_in=4, n_out=1, seed=0)
    model, df = train(m0, task, optimizer="adam", lr=0.01, steps=300, batch_size=64,
                      eval_every=100)  # fmt: skip
    assert df["loss"].iloc[-20:].mean() < 0.3 * df["loss"].iloc[:5].mean()
    assert df["T"].isna().all()


def test_optimizer_object_and_errors():
    task = tasks.make("adding", 10, variant="arjovsky2016")
    opt = Optimizer("nesterov", 0.01, clip=("value", 1.0))
    _, df = train(tiny_rnn(), task, optimizer=opt, lr=None, steps=3, eval_every=0)
    assert (df["optimizer"] == "nesterov").all() and (df["clip_threshold"] == 1.0).all()
    with pytest.raises(ValueError, match="steps must be an integer >= 1; got 0"):
        train(tiny_rnn(), task, lr=0.1, steps=0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train(tiny_rnn(), task, optimizer="lbfgs", lr=0.1, steps=1)
    with pytest.raises(ValueError, match="clip must be"):
        train(tiny_rnn(), task, lr=0.1, steps=1, clip=("norm", -1))
    with pytest.raises(ValueError, match="model must take single inputs"):
        train(tiny_rnn(), tasks.make("teacher"), lr=0.1, steps=1)
    with pytest.raises(ValueError, match="model must take sequences"):
        train(MLP.random(4, 1, n_in=10, n_out=1), task, lr=0.1, steps=1)


def test_long_lag_gradient_column():
    pytest.importorskip("rnnsim.jacobians")
    task = tasks.make("adding", 12, variant="arjovsky2016")
    _, df = train(tiny_rnn(), task, lr=0.01, steps=5, lag_every=2, long_lag=6, eval_every=0)
    got = df["long_lag_grad_norm"]
    assert got.notna().tolist() == [True, False, True, False, True]
    assert (got.dropna() > 0).all()
    frac = df["long_lag_fraction"].dropna()
    assert ((frac > 0) & (frac < 1)).all()


def test_progress_bar_runs(capsys):
    task = tasks.make("adding", 10, variant="arjovsky2016")
    _, df = train(tiny_rnn(), task, lr=0.01, steps=3, eval_every=0, progress=True)
    assert len(df) == 3


def test_wilson_interval_solves_its_defining_quadratic():
    from scipy.stats import norm

    from rnnsim.train import wilson_interval

    k, n = np.array([0, 3, 7, 10]), np.array([10, 10, 20, 10])
    lo, hi = wilson_interval(k, n)
    z = norm.ppf(0.975)
    # the bounds are the roots p of (k/n - p)^2 = z^2 p (1 - p) / n
    for p in (lo, hi):
        np.testing.assert_allclose((k / n - p) ** 2, z**2 * p * (1 - p) / n, atol=1e-14)
    assert lo[0] == pytest.approx(0.0, abs=1e-15) and hi[-1] == pytest.approx(1.0, abs=1e-15)
    assert hi[0] == pytest.approx(z**2 / (10 + z**2), rel=1e-12)  # k = 0: z^2 / (n + z^2)
    assert (lo < k / n).sum() == 3 and (hi > k / n).sum() == 3
    lo99, hi99 = wilson_interval(3, 10, level=0.99)
    assert lo99 < lo[1] and hi99 > hi[1]
    with pytest.raises(ValueError, match="level"):
        wilson_interval(1, 2, level=1.5)
    with pytest.raises(ValueError, match="n must be"):
        wilson_interval(0, 0)


def test_success_rates_counts_runs():
    from rnnsim.train import success_rates, wilson_interval

    # condition a: 3 runs (2 solved, 1 diverged, 4 / 2 / 6 steps); condition b: 1 run
    runs = [("a", 0, True, False, 4), ("a", 1, True, False, 2), ("a", 2, False, True, 6),
            ("b", 0, False, False, 5)]  # fmt: skip
    table = pd.concat([pd.DataFrame({"cond": c, "seed": s, "solved": ok, "run_diverged": dv,
                                     "step": range(n)}) for c, s, ok, dv, n in runs])  # fmt: skip
    out = success_rates(table, ["cond"])
    assert out["cond"].tolist() == ["a", "b"]
    assert out["runs"].tolist() == [3, 1] and out["solved"].tolist() == [2, 0]
    assert out["diverged"].tolist() == [1, 0] and out["median_steps"].tolist() == [4.0, 5.0]
    np.testing.assert_allclose(out["success_rate"], [2 / 3, 0.0])
    np.testing.assert_allclose(out["divergence_rate"], [1 / 3, 0.0])
    lo, hi = wilson_interval(np.array([2, 0]), np.array([3, 1]))
    np.testing.assert_allclose(out["success_lo"], lo, rtol=1e-15)
    np.testing.assert_allclose(out["success_hi"], hi, rtol=1e-15)
    with pytest.raises(ValueError, match="run_diverged"):
        success_rates(table.drop(columns="run_diverged"), ["cond"])

"""The compiled update loop (`rnnsim.kernels.train`) against its Python twin (`rnnsim.train`'s
loop for any model, on `Optimizer.step`): the same tables and final parameters, bit for bit."""

import importlib

import numpy as np
import pandas as pd
import pytest
from numba import config

from rnnsim import RNN, tasks
from rnnsim.ensemble import Ensemble
from rnnsim.kernels import train as kt
from rnnsim.optim import OPTIMIZERS, Optimizer
from rnnsim.train import split_members, train

train_module = importlib.import_module("rnnsim.train")  # the module (rnnsim.train is the function)

# Without the JIT (tests/test_nojit.py) the kernels run as Python: two optimisers cover every line.
TRAINED = ("sgd", "adam") if config.DISABLE_JIT else OPTIMIZERS


def both(monkeypatch, model, task, **kw):
    """``train`` run compiled and in Python: ((model, table), (model, table))."""
    compiled = train(model, task, **kw)
    with monkeypatch.context() as m:
        m.setattr(train_module, "_compiled", lambda model: False)
        python = train(model, task, **kw)
    return compiled, python


def assert_same_run(a, b):
    (ma, ta), (mb, tb) = a, b
    pd.testing.assert_frame_equal(ta, tb, check_exact=True)
    assert ta.attrs == tb.attrs
    np.testing.assert_array_equal(ma.params_vector(), mb.params_vector())


def small(seed=1, **kw):
    kw.setdefault("gain", 1.6)
    return RNN.random(2, 8, 1, seed=seed, **kw)


@pytest.mark.parametrize("optimizer", TRAINED)
@pytest.mark.parametrize("clip", [None, ("norm", 0.5), ("value", 0.02)])
def test_every_optimizer_and_clipping_bit_for_bit(monkeypatch, optimizer, clip):
    task = tasks.make("adding", 10, variant="pascanu2013")
    lr = 0.05 if optimizer in ("sgd", "momentum", "nesterov") else 0.005
    a, b = both(monkeypatch, small(), task, optimizer=optimizer, lr=lr, clip=clip, steps=25,
                seed=2, eval_every=10, eval_batch=50)  # fmt: skip
    assert_same_run(a, b)
    assert a[1]["clipped"].any() == (clip is not None)


def test_classes_schedules_callbacks_and_lag_records_bit_for_bit(monkeypatch):
    task = tasks.make("temporal_order", 10)
    model = RNN.random(task.d_in, 8, task.d_out, gain=2.0, seed=3)

    def probe(step, model, x, target, grad):
        norm = float(np.linalg.norm(model.params_vector()))
        return {"probe": float(grad[0]), "norm": norm, "grad_norm": -1.0}  # the update's wins

    a, b = both(monkeypatch, model, task, optimizer="adam", lr=0.01, schedule="cosine",
                clip=("norm", 0.5), steps=20, eval_every=7, eval_batch=50, callback=probe,
                callback_every=3, lag_every=4)  # fmt: skip
    assert_same_run(a, b)
    assert a[1]["probe"].notna().sum() == 7 and a[1]["long_lag_grad_norm"].notna().sum() == 5
    assert (a[1]["grad_norm"] > 0).all() and list(a[1].columns).count("grad_norm") == 1


def test_divergence_bit_for_bit(monkeypatch):
    task = tasks.make("adding", 20, variant="arjovsky2016")
    model = RNN.random(2, 8, 1, activation="linear", gain=1.5, seed=1)
    for kw in ({"lr": 1e3}, {"lr": 0.3, "max_loss": 0.05}):
        a, b = both(monkeypatch, model, task, steps=100, eval_every=4, **kw)
        assert_same_run(a, b)
        assert a[1].attrs["diverged"] and a[1]["diverged"].iloc[-1]
        assert np.isfinite(a[0].params_vector()).all()


@pytest.mark.skipif(
    config.DISABLE_JIT, reason="400 updates: slow as Python, no kernel line of its own"
)
def test_early_stop_bit_for_bit(monkeypatch):
    task = tasks.make("adding", 10, variant="pascanu2013")
    model = RNN.random(2, 16, 1, init="orthogonal", seed=0)
    a, b = both(monkeypatch, model, task, optimizer="adam", lr=0.01, steps=400, eval_every=50,
                eval_batch=500, clip=("norm", 1.0))  # fmt: skip
    assert_same_run(a, b)
    assert a[1].attrs["solved"] and len(a[1]) == a[1].attrs["solved_step"] + 1
    assert np.isnan(a[1]["lr_step"].iloc[-1])


def test_a_ready_optimizer_continues_as_its_own_loop_would(monkeypatch):
    task = tasks.make("adding", 10, variant="arjovsky2016")
    states = []
    for compiled in (True, False):
        opt = Optimizer("adam", 0.01, clip=("value", 1.0))
        with monkeypatch.context() as m:
            m.setattr(train_module, "_compiled", lambda model, c=compiled: c)
            model, _ = train(small(), task, optimizer=opt, lr=None, steps=4, eval_every=0)
            model, table = train(model, task, optimizer=opt, lr=None, steps=3, eval_every=0)
        states.append((opt.t, opt.state, table, model.params_vector()))
    (ta, sa, da, pa), (tb, sb, db, pb) = states
    assert ta == tb == 7 and sa.keys() == sb.keys() == {"m", "v"}
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
    pd.testing.assert_frame_equal(da, db, check_exact=True)
    np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("clip", [None, ("norm", 1.0), ("value", 0.3)])
def test_update_step_is_optimizer_step(name, clip, rng):
    """The compiled optimiser step against `Optimizer.step`, three steps from a used state."""
    P, steps = 37, 3
    opt = Optimizer(name, 0.1, clip=clip, schedule=("step", 2, 0.5), accumulator_init=1e-3)
    theta = rng.normal(size=P)
    grads = rng.normal(size=(steps, P)) * np.array([[0.1], [10.0], [1.0]])
    setup = kt.Setup(1, 1, 1, 0, 0, OPTIMIZERS.index(name),
                     0 if clip is None else ("norm", "value").index(clip[0]) + 1,
                     0.0 if clip is None else clip[1], opt.momentum, opt.decay, opt.beta1,
                     opt.beta2, opt.eps, np.inf, *train_module._schedule(opt, steps))  # fmt: skip
    s1, s2 = train_module._optimizer_state(opt, P)
    state = kt.State(theta[None].copy(), theta[None].copy(), s1[None], s2[None],
                     np.zeros((1, P)), np.zeros(1, np.int64),
                     np.full((1, steps, len(kt.RECORDS)), np.nan))  # fmt: skip
    for k in range(steps):
        state.grad[0] = grads[k]
        kt.update_step(0, k, setup, state)
        theta, info = opt.step(theta, grads[k])
        np.testing.assert_array_equal(state.theta[0], theta)
        rec = dict(zip(kt.RECORDS, state.records[0, k], strict=True))
        assert rec["lr_step"] == info["lr"] and rec["clipped"] == info["clipped"]
        assert rec["grad_norm"] == info["grad_norm"]
        assert rec["grad_norm_clipped"] == info["grad_norm_clipped"]


def test_members_in_parallel_only_without_nested_threads():
    assert not kt.members_in_parallel(1, 40, 20, 32, 2, 1)
    assert kt.members_in_parallel(32, 40, 20, 32, 2, 1) == (kt.THREADS > 1)
    assert not kt.members_in_parallel(32, 100_000, 20, 32, 2, 1)


# ----------------------------------------------------------------------------------------------
# ensembles: member i is the single-model run with its seed
# ----------------------------------------------------------------------------------------------


def assert_members_are_single_runs(ensemble, task, seeds, **kw):
    """Train ``ensemble`` at once and each member alone; assert equal tables and parameters."""
    final, table = train(ensemble, task, seed=seeds, **kw)
    assert table.columns[0] == "member" and isinstance(final, Ensemble)
    for e, (seed, got) in enumerate(zip(seeds, split_members(table), strict=True)):
        model, alone = train(ensemble[e], task, seed=seed, **kw)
        pd.testing.assert_frame_equal(got, alone, check_exact=True)
        assert got.attrs == alone.attrs
        np.testing.assert_array_equal(final[e].params_vector(), model.params_vector())
    return table


@pytest.mark.parametrize("clip", [None, ("norm", 1.0)])
def test_members_equal_single_runs(clip):
    task = tasks.make("adding", 10, variant="pascanu2013")
    ens = Ensemble.random(5, 2, 8, 1, gains=[0.8, 1.2, 1.6, 2.0, 3.0], seeds=range(5))
    table = assert_members_are_single_runs(ens, task, [7, 3, 3, 0, 11], lr=0.1, clip=clip,
                                           steps=40, eval_every=15, eval_batch=50)  # fmt: skip
    assert table["clipped"].any() == (clip is not None)


def test_one_member_diverges_the_others_go_on():
    task = tasks.make("adding", 20, variant="arjovsky2016")
    members = [RNN.random(2, 8, 1, activation="linear", gain=g, seed=1) for g in (0.5, 3.0, 0.7)]
    table = assert_members_are_single_runs(Ensemble(members), task, [0, 0, 1], lr=0.01,
                                           steps=30, eval_every=0, max_loss=1.0)  # fmt: skip
    assert table.attrs["diverged"] == [False, True, False]
    assert table.attrs["steps_run"][0] == table.attrs["steps_run"][2] == 30


@pytest.mark.skipif(
    config.DISABLE_JIT, reason="300 updates: slow as Python, no kernel line of its own"
)
def test_one_member_solves_and_stops_the_others_go_on():
    task = tasks.make("adding", 10, variant="pascanu2013")
    orth = Ensemble.random(2, 2, 16, 1, init="orthogonal", seeds=[0, 1])
    members = Ensemble([orth[0], RNN.random(2, 16, 1, gain=0.1, seed=2), orth[1]])
    table = assert_members_are_single_runs(members, task, [0, 1, 0], optimizer="adam",
                                           lr=0.01, steps=300, eval_every=50, eval_batch=300,
                                           clip=("norm", 1.0))  # fmt: skip
    assert table.attrs["solved"][0] and len(set(table.attrs["steps_run"])) > 1


def test_ensemble_of_one_is_the_single_model():
    task = tasks.make("temporal_order", 10)
    model = RNN.random(task.d_in, 8, task.d_out, gain=2.0, seed=3)
    final, table = train(Ensemble([model]), task, lr=0.05, steps=12, seed=4, eval_every=5)
    alone_final, alone = train(model, task, lr=0.05, steps=12, seed=4, eval_every=5)
    pd.testing.assert_frame_equal(table.drop(columns="member"), alone, check_exact=True)
    np.testing.assert_array_equal(final[0].params_vector(), alone_final.params_vector())
    with pytest.raises(ValueError, match="seed must be an int or a sequence of 1 ints"):
        train(Ensemble([model]), task, lr=0.05, steps=2, seed=[1, 2])

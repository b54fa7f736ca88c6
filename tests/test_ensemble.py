"""Ensembles (issue 16): member e of an ensemble gives the numbers of the single RNN made of its
parameters, the stacked NumPy twin agrees, gradients match finite differences, and one member's
overflow never reaches another."""

import warnings

import numpy as np
import pandas as pd
import pytest

from rnnsim import RNN, Ensemble, jacobian_norms, lyapunov_spectrum
from rnnsim import reference as ref
from rnnsim.kernels.blas import THREADS
from rnnsim.kernels.ensemble import LANES, split_members, use_lanes
from rnnsim.models import Model

# Members over threads run the single model's kernel: equal bit for bit. Members in SIMD lanes, and
# the stacked NumPy twin, take sums in other orders: equal at RTOL elementwise, with an absolute
# floor of RTOL times the array's largest entry for entries that are sums which cancel.
RTOL = 1e-12


def assert_close(actual, desired, msg=""):
    floor = RTOL * np.nanmax(np.abs(desired), initial=0.0)
    np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=floor, err_msg=msg)


LOSSES = ["mse_last", "mse_all", "xent_last", "xent_all"]
PARAMS = ("W", "U", "b", "V", "c")


def make_target(loss, T, B, d_out, rng, front=()):
    if loss == "mse_last":
        return rng.normal(size=(*front, B, d_out))
    if loss == "mse_all":
        return rng.normal(size=(*front, T, B, d_out))
    if loss == "xent_last":
        return rng.integers(0, d_out, size=(*front, B))
    return rng.integers(0, d_out, size=(*front, T, B))


def members(E, activation="tanh", n_in=2, n=5, n_out=3):
    return [
        RNN.random(n_in, n, n_out, activation=activation, gain=0.8 + 0.2 * e, bias_std=0.3, seed=e)
        for e in range(E)
    ]


def pick(a, e, per_member):
    return a[e] if per_member else a


def assert_members_equal_single(ens, x, target, loss, h0, per_x, per_t, per_h):
    """Loss and gradients of every member: bit for bit those of the single model, or at RTOL when
    the members run in SIMD lanes."""
    T, B = np.shape(x)[-3:-1]
    lanes = use_lanes(len(ens), T, B, ens.n_hidden, ens.n_in, ens.n_out)
    same = assert_close if lanes else np.testing.assert_array_equal
    losses, grads = ens.loss_and_grad(x, target, loss, h0)
    assert losses.shape == (len(ens),) and grads["W"].shape == (
        len(ens),
        ens.n_hidden,
        ens.n_hidden,
    )
    for e in range(len(ens)):
        h0e = None if h0 is None else pick(h0, e, per_h)
        value, g = ens[e].loss_and_grad(pick(x, e, per_x), pick(target, e, per_t), loss, h0e)
        same(losses[e], value)
        for k in PARAMS:
            same(grads[k][e], g[k], f"member {e} {k}")
    return losses, grads


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("per_member", [False, True])
@pytest.mark.parametrize("E", [4, LANES + 5])
def test_members_equal_the_single_model(loss, per_member, E, rng):
    """Members over threads (E = 4) and in SIMD lanes (a full block and a part-filled one)."""
    T, B = 7, 3
    ens = Ensemble(members(E))
    assert use_lanes(E, T, B, 5, 2, 3) == (E > LANES)
    assert not use_lanes(E, 10_000, 100, 5, 2, 3)  # a block's states would not fit
    assert split_members(E, T, B, 5, 2, 3) == (THREADS > 1)
    front = (E,) if per_member else ()
    x = rng.normal(size=(*front, T, B, 2))
    target = make_target(loss, T, B, 3, rng, front)
    h0 = rng.normal(size=(*front, B, 5)) * 0.5
    assert_members_equal_single(ens, x, target, loss, h0, per_member, per_member, per_member)
    # data shared and per member mixed; h0 (n,) shared
    x1 = rng.normal(size=(T, B, 2))
    assert_members_equal_single(
        ens, x1, target, loss, h0.reshape(-1, 5)[0], False, per_member, False
    )


def test_members_equal_the_single_model_when_each_splits_its_batch(rng):
    """Members large enough to split their own batch over threads run one after another."""
    E, T, B, n = 2, 5, 64, 48
    ens = Ensemble(members(E, n=n))
    assert not split_members(E, T, B, n, 2, 3)
    x = rng.normal(size=(T, B, 2))
    assert_members_equal_single(
        ens, x, rng.normal(size=(B, 3)), "mse_last", None, False, False, False
    )
    H, Y = ens.forward(x)
    for e in range(E):
        He, Ye = ens[e].forward(x)
        np.testing.assert_array_equal(H[e], He)
        np.testing.assert_array_equal(Y[e], Ye)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("E", [3, LANES + 1])
def test_matches_the_stacked_numpy_twin(activation, loss, E, rng):
    T, B = 6, 4
    ens = Ensemble(members(E, activation))
    x = rng.normal(size=(E, T, B, 2))
    h0 = rng.normal(size=(E, B, 5)) * 0.5
    target = make_target(loss, T, B, 3, rng, (E,))
    losses, grads = ens.loss_and_grad(x, target, loss, h0)
    want_losses, want = ref.ensemble_loss_and_grad(
        ens.W, ens.U, ens.b, ens.V, ens.c, x, h0, activation, target, loss
    )
    assert_close(losses, want_losses)
    for k in PARAMS:
        assert_close(grads[k], want[k], k)
    H, Y = ens.forward(x, h0)
    H_ref, Y_ref = ref.ensemble_forward(ens.W, ens.U, ens.b, ens.V, ens.c, x, h0, activation)
    assert_close(H, H_ref)
    assert_close(Y, Y_ref)
    np.testing.assert_array_equal(ens.predict(x, h0), Y)


@pytest.mark.parametrize("loss", ["mse_all", "xent_last"])
@pytest.mark.parametrize("E", [3, LANES])
def test_gradients_match_central_differences(loss, E, rng):
    T, B = 5, 2
    ens = Ensemble(members(E, "tanh"))
    x = rng.normal(size=(T, B, 2))
    target = make_target(loss, T, B, 3, rng, (E,))
    _, g = ens.loss_and_grad_vector(x, target, loss)
    theta = ens.params_vector()
    eps = 1e-6
    for j in rng.choice(ens.n_params, size=12, replace=False):
        step = np.zeros_like(theta)
        step[:, j] = eps
        up = ens.with_params(theta + step).loss_and_grad(x, target, loss)[0]
        down = ens.with_params(theta - step).loss_and_grad(x, target, loss)[0]
        np.testing.assert_allclose((up - down) / (2 * eps), g[:, j], rtol=1e-6, atol=1e-8)


def test_random_members_are_the_single_models_and_their_params():
    ens = Ensemble.random(
        3, 2, 6, 1, activation="relu", init=["gaussian", "orthogonal", "identity"],
        gains=[0.5, 1.0, 1.5], seeds=[7, 8, 9], bias_std=0.1,
    )  # fmt: skip
    for e, (init, gain, seed) in enumerate(
        zip(["gaussian", "orthogonal", "identity"], [0.5, 1.0, 1.5], [7, 8, 9], strict=True)
    ):
        want = RNN.random(2, 6, 1, activation="relu", init=init, gain=gain, seed=seed, bias_std=0.1)
        np.testing.assert_array_equal(ens[e].params_vector(), want.params_vector())
        np.testing.assert_array_equal(ens.params_vector()[e], want.params_vector())
        assert ens[e].activation == "relu"
    params = ens.member_params()
    assert list(params.columns) == ["member", "seed", "init", "gain"]
    assert params["gain"].tolist() == [0.5, 1.0, 1.5] and params["seed"].tolist() == [7, 8, 9]
    default = Ensemble.random(2, 1, 3, 1)
    assert default.member_params()["seed"].tolist() == [0, 1]
    np.testing.assert_array_equal(default[-1].W, RNN.random(1, 3, 1, seed=1).W)
    assert len(default) == 2 and "E=2" in repr(default) and isinstance(default, Model)


def test_interface_rows_are_the_members(rng):
    ens = Ensemble(members(3), params={"seed": [0, 1, 2]})
    x, t = rng.normal(size=(4, 2, 2)), rng.normal(size=(3, 2, 3))
    theta = ens.params_vector()
    assert theta.shape == (3, ens.n_params) and ens.n_params == ens[0].n_params
    again = ens.with_params(theta)
    np.testing.assert_array_equal(again.W, ens.W)
    pd.testing.assert_frame_equal(again.member_params(), ens.member_params())
    v = rng.normal(size=theta.shape)
    hv = ens.hvp(x, t, v)
    np.testing.assert_array_equal(ens.hvp_operator(x, t)(v), hv)
    for e in range(3):
        np.testing.assert_array_equal(hv[e], ens[e].hvp(x, t[e], v[e]))
    assert ens.filters()[0] == ens[0].filters()[0]
    assert ens.loss_name() == "mse_last" and ens.sequential
    with pytest.raises(TypeError, match="one Jacobian chain per member"):
        jacobian_norms(ens, x)


def test_an_ensemble_of_one_is_the_single_model(rng):
    rnn = RNN.random(2, 6, 2, gain=1.3, seed=4)
    ens = Ensemble([rnn])
    x, t = rng.normal(size=(8, 3, 2)), rng.normal(size=(3, 2))
    losses, grads = ens.loss_and_grad(x, t)
    value, want = rnn.loss_and_grad(x, t)
    assert losses.tolist() == [value]
    for k in PARAMS:
        np.testing.assert_array_equal(grads[k][0], want[k])
    for direction in ("backward", "forward"):
        table = ens.jacobian_norms(x, direction)
        assert (table["member"] == 0).all()
        pd.testing.assert_frame_equal(
            table.drop(columns="member"), jacobian_norms(rnn, x, direction)
        )
    h0 = rng.normal(size=6)
    table = ens.lyapunov_spectrum(steps=200, transient=20, h0=h0, k=3)
    np.testing.assert_array_equal(
        table["exponent"], lyapunov_spectrum(rnn, steps=200, transient=20, h0=h0, k=3)
    )
    assert table["rank"].tolist() == [1, 2, 3]


def test_analysis_tables_carry_member_and_params(rng):
    ens = Ensemble.random(3, 1, 4, 1, gains=[0.5, 1.0, 2.0])
    x = rng.normal(size=(3, 5, 2, 1))
    table = ens.jacobian_norms(x)
    assert {"member", "seed", "init", "gain", "log_spectral", "n_hidden"} <= set(table.columns)
    for e in range(3):
        part = table[table["member"] == e].drop(columns=["member", "seed", "init", "gain"])
        pd.testing.assert_frame_equal(part.reset_index(drop=True), jacobian_norms(ens[e], x[e]))
        assert (table.loc[table["member"] == e, "gain"] == [0.5, 1.0, 2.0][e]).all()
    h0 = rng.normal(size=(3, 4))
    lyap = ens.lyapunov_spectrum(steps=100, transient=10, h0=h0, seed=[1, 2, 3])
    for e in range(3):
        want = lyapunov_spectrum(ens[e], steps=100, transient=10, h0=h0[e], seed=e + 1)
        np.testing.assert_array_equal(lyap.loc[lyap["member"] == e, "exponent"], want)
    assert lyap.groupby("member").size().tolist() == [4, 4, 4]


@pytest.mark.parametrize("E", [4, LANES + 2])
def test_overflow_in_one_member_never_touches_the_others(E, rng):
    """A ReLU member at gain 40 overflows float64; the others keep the single model's numbers
    (bit for bit over threads, at RTOL in lanes)."""
    gains = [1.0, 40.0, 0.9, 1.1] + [1.0] * (E - 4)
    models = [RNN.random(1, 6, 1, activation="relu", gain=g, seed=s) for s, g in enumerate(gains)]
    ens = Ensemble(models)
    x, t = rng.normal(size=(300, 2, 1)), rng.normal(size=(2, 1))
    with pytest.warns(RuntimeWarning, match=rf"1 of {E} members overflowed float64 \(members 1\)"):
        losses, grads = ens.loss_and_grad(x, t)
    assert not np.isfinite(losses[1])
    same = assert_close if E > LANES else np.testing.assert_array_equal
    for e in set(range(E)) - {1}:
        value, want = models[e].loss_and_grad(x, t)
        assert np.isfinite(losses[e])
        same(losses[e], value)
        for k in PARAMS:
            same(grads[k][e], want[k])
    with pytest.warns(RuntimeWarning, match=rf"hidden state of 1 of {E} members"):
        H, _ = ens.forward(x)
    assert np.isfinite(np.delete(H, 1, axis=0)).all()
    nan_x = np.broadcast_to(x, (2, *x.shape)).copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ens2 = Ensemble([models[0], models[2]])
        ens2.loss_and_grad(nan_x[:2], t)  # no warning when every member is finite


def test_bad_members_and_data_are_named(rng):
    with pytest.raises(ValueError, match=r"models\[2\] has n_hidden 4 but models\[0\] has 5"):
        Ensemble(members(2) + [RNN.random(2, 4, 3)])
    with pytest.raises(
        ValueError, match=r"models\[1\] has activation 'relu' but models\[0\] has 'tanh'"
    ):
        Ensemble([members(1)[0], members(1, "relu")[0]])
    with pytest.raises(ValueError, match=r"models\[1\] has n_in 3"):
        Ensemble([members(1)[0], members(1, n_in=3)[0]])
    with pytest.raises(ValueError, match=r"models\[1\] has n_out 1"):
        Ensemble([members(1)[0], members(1, n_out=1)[0]])
    with pytest.raises(TypeError, match=r"models\[0\] must be an rnnsim.RNN"):
        Ensemble(["rnn"])
    with pytest.raises(ValueError, match="non-empty list"):
        Ensemble([])
    with pytest.raises(ValueError, match="gains must be one value or 3 values"):
        Ensemble.random(3, 1, 2, 1, gains=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"params\['seed'\] must have one value per member"):
        Ensemble(members(2), params={"seed": [1]})
    ens = Ensemble(members(3))
    with pytest.raises(ValueError, match=r"x must be \(T, B, d_in\), shared by the members"):
        ens.loss_and_grad(np.zeros((4, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(3, any, any, 2\)"):
        ens.loss_and_grad(np.zeros((2, 4, 2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"must be \(2, 3\), shared, or \(3, 2, 3\)"):
        ens.loss_and_grad(np.zeros((4, 2, 2)), np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match="target labels must lie in 0..2"):
        ens.loss_and_grad(np.zeros((4, 2, 2)), np.full((3, 2), 5), "xent_last")
    with pytest.raises(ValueError, match=r"h0 must have shape \(3, 2, 5\)"):
        ens.loss_and_grad(np.zeros((4, 2, 2)), np.zeros((2, 3)), h0=np.zeros((2, 2, 5)))
    with pytest.raises(IndexError, match="member 3 out of range"):
        ens[3]
    with pytest.raises(TypeError, match="indexed by an int member"):
        ens["0"]

"""Extremes (issue 18): overflowing gradients are reported, empty batches are refused by name, and
a ReLU network whose state overflows gives Jacobian tables, not a LinAlgError."""

import warnings

import numpy as np
import pytest

import rnnsim
from rnnsim import tasks


@pytest.fixture(scope="module")
def chaotic_tanh():
    """A tanh RNN at gain 10 whose backward pass overflows over T = 1,500 steps while its forward
    pass stays bounded (tanh saturates): the loss is finite, the gradient is not."""
    rnn = rnnsim.RNN.random(1, 64, 1, gain=10.0, seed=0)
    x = np.random.default_rng(0).normal(size=(1500, 2, 1))
    return rnn, x


def test_overflowing_gradient_warns_with_the_step(chaotic_tanh):
    rnn, x = chaotic_tanh
    with pytest.warns(RuntimeWarning, match=r"gradient overflowed float64 .* at step (\d+)") as rec:
        loss, grads = rnn.loss_and_grad(x, np.zeros((2, 1)))
    assert np.isfinite(loss) and not np.isfinite(grads["W"]).any()
    step = int(rec[0].message.args[0].split("at step ")[1].split(" ")[0])
    finite_rows = np.isfinite(grads["h"]).reshape(x.shape[0] + 1, -1).all(axis=1)
    # the backward chain runs from T down: dL/dh_k is finite above the step named, not at it
    assert finite_rows[step + 1 :].all() and not finite_rows[step]
    with pytest.warns(RuntimeWarning, match="gradient overflowed"):
        rnn.loss_and_grad_vector(x, np.zeros((2, 1)))


def test_finite_gradient_does_not_warn(chaotic_tanh):
    rnn, x = chaotic_tanh
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rnn.loss_and_grad(x[:50], np.zeros((2, 1)))


def test_mlp_overflowing_gradient_names_the_layer():
    mlp = rnnsim.MLP.random(64, 1200, activation="tanh", sigma_w=10.0, n_out=1, seed=0)
    x = np.random.default_rng(1).normal(size=(2, 64))
    with pytest.warns(RuntimeWarning, match=r"gradient overflowed float64 .* at layer \d+"):
        _, grad = mlp.loss_and_grad_vector(x, np.ones((2, 1)))
    assert not np.isfinite(grad).all()


def test_train_table_marks_the_step_whose_gradient_overflowed():
    task = tasks.make("adding", 1500)
    rnn = rnnsim.RNN.random(task.d_in, 64, task.d_out, gain=10.0, seed=0)
    _, table = rnnsim.train(rnn, task, lr=0.01, steps=3, batch_size=2, eval_every=0, eval_batch=2)
    assert table["grad_finite"].dtype == bool
    assert not table["grad_finite"].iloc[-1] and table["diverged"].iloc[-1]
    assert table["grad_finite"].iloc[:-1].all()


def _empty_batch_calls():
    rnn = rnnsim.RNN.random(2, 3, 2, seed=0)
    mlp = rnnsim.MLP.random(3, 2, n_in=2, n_out=2, seed=0)
    x_rnn, x_mlp = np.zeros((4, 0, 2)), np.zeros((0, 2))
    calls = {
        "RNN.forward": lambda: rnn.forward(x_rnn),
        "RNN.predict": lambda: rnn.predict(x_rnn),
        "RNN.loss_and_grad": lambda: rnn.loss_and_grad(x_rnn, np.zeros((0, 2))),
        "RNN.loss_and_grad_vector": lambda: rnn.loss_and_grad_vector(x_rnn, np.zeros((0, 2))),
        "RNN.hvp": lambda: rnn.hvp(x_rnn, np.zeros((0, 2)), np.zeros(rnn.n_params)),
        "RNN.hvp_operator": lambda: rnn.hvp_operator(x_rnn, np.zeros((0, 2))),
        "MLP.forward": lambda: mlp.forward(x_mlp),
        "MLP.predict": lambda: mlp.predict(x_mlp),
        "MLP.loss_and_grad": lambda: mlp.loss_and_grad(x_mlp, np.zeros((0, 2))),
        "MLP.loss_and_grad_vector": lambda: mlp.loss_and_grad_vector(x_mlp, np.zeros((0, 2))),
        "MLP.hvp": lambda: mlp.hvp(x_mlp, np.zeros((0, 2)), np.zeros(mlp.n_params)),
        "MLP.hvp_operator": lambda: mlp.hvp_operator(x_mlp, np.zeros((0, 2))),
    }
    for model, x in ((rnn, x_rnn), (mlp, x_mlp)):
        kind = type(model).__name__
        calls[f"jacobian_norms({kind})"] = lambda m=model, x=x: rnnsim.jacobian_norms(m, x)
        calls[f"jacobian_spectrum({kind})"] = lambda m=model, x=x: rnnsim.jacobian_spectrum(m, x)
    return calls


@pytest.mark.parametrize("name", sorted(_empty_batch_calls()))
def test_empty_batch_is_an_error_naming_x(name):
    with pytest.raises(ValueError, match=r"^x must have .*B >= 1 samples"):
        _empty_batch_calls()[name]()


@pytest.mark.parametrize("function", ["jacobian_norms", "lyapunov_spectrum"])
def test_relu_gain_10_long_run_gives_finite_logs_or_marked_rows(function):
    """The ReLU state overflows to inf after ~350 steps at gain 10: the Jacobian functions give
    finite logs up to there and marked rows after, never a bare LinAlgError (issue 18)."""
    rnn = rnnsim.RNN.random(1, 8, 1, activation="relu", gain=10.0, seed=0)
    x = np.random.default_rng(0).normal(size=(100_000, 1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the state's own overflow warning
        if function == "jacobian_norms":
            table = rnnsim.jacobian_norms(rnn, x)
            assert np.isfinite(table["log_spectral"]).any()
        else:
            exponents = rnnsim.lyapunov_spectrum(rnn, x[:, 0, :])
            assert exponents.shape == (8,)

"""The model interface (`rnnsim.models.Model`): RNN and MLP implement it, and a third model kind
runs through training, curvature, landscape and Jacobian analyses without any of them knowing it."""

import numpy as np
import pandas as pd
import pytest

from rnnsim import MLP, RNN, tasks
from rnnsim.curvature import curvature_callback
from rnnsim.jacobians import gradient_contributions, jacobian_norms
from rnnsim.landscape import filter_normalized_direction, interpolate, minima_summary
from rnnsim.models import Model
from rnnsim.train import train


class Wrapped:
    """A minimal third model kind: an RNN behind the interface, nothing else."""

    def __init__(self, rnn):
        self.rnn = rnn
        self.activation = rnn.activation

    n_params = property(lambda self: self.rnn.n_params)
    sequential = property(lambda self: True)

    def loss_name(self, loss=None):
        return self.rnn.loss_name(loss)

    def loss_and_grad(self, x, target, loss=None, h0=None):
        return self.rnn.loss_and_grad(x, target, loss, h0)

    def loss_and_grad_vector(self, x, target, loss=None, h0=None):
        return self.rnn.loss_and_grad_vector(x, target, loss, h0)

    def predict(self, x, h0=None):
        return self.rnn.predict(x, h0)

    def hvp(self, x, target, v, loss=None, h0=None):
        return self.rnn.hvp(x, target, v, loss, h0)

    def hvp_operator(self, x, target, loss=None, h0=None):
        return self.rnn.hvp_operator(x, target, loss, h0)

    def params_vector(self):
        return self.rnn.params_vector()

    def with_params(self, vector):
        return Wrapped(self.rnn.with_params(vector))

    def filters(self):
        return self.rnn.filters()

    def jacobian_chain(self, x, h0=None):
        return self.rnn.jacobian_chain(x, h0)


@pytest.fixture
def rnn():
    return RNN.random(2, 6, 1, seed=3)


def test_rnn_and_mlp_implement_the_interface(rnn):
    assert isinstance(rnn, Model) and isinstance(MLP.random(3, 2, seed=0), Model)
    assert isinstance(Wrapped(rnn), Model) and not isinstance("rnn", Model)


def test_a_third_model_kind_trains_like_the_model_it_wraps(rnn):
    task = tasks.make("adding", 10, variant="pascanu2013")
    options = dict(lr=0.05, steps=12, eval_every=5, lag_every=4, callback_every=3)
    cb = curvature_callback(0.05, loss=task.loss, lanczos_steps=3)
    final, table = train(Wrapped(rnn), task, callback=cb, **options)
    want_final, want = train(
        rnn, task, callback=curvature_callback(0.05, lanczos_steps=3), **options
    )
    assert isinstance(final, Wrapped)
    np.testing.assert_array_equal(final.params_vector(), want_final.params_vector())
    pd.testing.assert_frame_equal(table, want)
    assert table["gTHg"].notna().sum() == 4 and table["long_lag_fraction"].notna().any()


def test_a_third_model_kind_in_the_analyses(rnn, rng):
    x, t = rng.normal(size=(5, 3, 2)), rng.normal(size=(3, 1))
    other = rnn.with_params(rnn.params_vector() * 0.5)
    line = interpolate(Wrapped(rnn), Wrapped(other), x, t, alphas=[0.0, 0.5, 1.0])
    pd.testing.assert_frame_equal(line, interpolate(rnn, other, x, t, alphas=[0.0, 0.5, 1.0]))
    minima = minima_summary([Wrapped(rnn)], x, t, lanczos_steps=5)
    pd.testing.assert_frame_equal(minima, minima_summary([rnn], x, t, lanczos_steps=5))
    np.testing.assert_array_equal(
        filter_normalized_direction(Wrapped(rnn), 1), filter_normalized_direction(rnn, 1)
    )
    pd.testing.assert_frame_equal(jacobian_norms(Wrapped(rnn), x), jacobian_norms(rnn, x))
    pd.testing.assert_frame_equal(
        gradient_contributions(Wrapped(rnn), x, t), gradient_contributions(rnn, x, t)
    )


def test_default_losses_and_mlp_limits(rnn, rng):
    x, t = rng.normal(size=(4, 2, 2)), rng.normal(size=(2, 1))
    assert rnn.loss_and_grad(x, t)[0] == rnn.loss_and_grad(x, t, "mse_last")[0]
    mlp = MLP.random(3, 2, n_out=1, seed=0)
    xm, tm = rng.normal(size=(4, 3)), rng.normal(size=(4, 1))
    assert mlp.loss_name() == mlp.loss_name("mse_last") == "mse"
    value, grads = mlp.loss_and_grad(xm, tm)
    assert set(grads) == {"weights", "biases", "V", "c", "h"}
    assert mlp.loss_and_grad_vector(xm, tm, "mse")[0] == value
    with pytest.raises(ValueError, match="loss must be None, 'mse' or 'mse_last'.*'xent_last'"):
        mlp.loss_and_grad(xm, tm, "xent_last")
    with pytest.raises(ValueError, match="h0 must be None for an MLP"):
        mlp.loss_and_grad_vector(xm, tm, h0=np.zeros(3))
    with pytest.raises(ValueError, match="h0 must be None for an MLP"):
        mlp.hvp_operator(xm, tm, h0=np.zeros(3))

"""rnnsim.layers: per-layer statistics of MLPs against the NumPy reference, their summaries and
the mean-field profile."""

import numpy as np
import pandas as pd
import pytest

from rnnsim import MLP, layers
from rnnsim import reference as ref
from rnnsim.kernels.activations import record
from rnnsim.theory import gradient_ratios

#: Norms and means of the same numbers, summed in another order, agree to this relative tolerance.
SUM_ORDER_TOL = 1e-12


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "linear"])
def test_layer_statistics_match_the_reference_backprop(activation):
    net = MLP.random(6, 4, n_in=6, n_out=2, activation=activation, sigma_w=1.3, seed=1)
    rng = np.random.default_rng(2)
    x, target = rng.standard_normal((8, 6)), rng.standard_normal((8, 2))
    got = layers.layer_statistics(net, x, target, saturation=0.3)
    weights, biases = list(net.weights), list(net.biases)
    hs, _ = ref.mlp_forward(weights, biases, activation, x, net.readout)
    _, grads, gs = ref.mlp_loss_and_grad(weights, biases, activation, x, target, net.readout)
    gamma = {"sigmoid": 0.25}.get(activation, 1.0)
    pre = [h @ W.T + b for h, W, b in zip(hs[:-1], weights, biases, strict=True)]
    want = pd.DataFrame({
        "layer": np.arange(5),
        "grad_h_norm": [8 * np.sqrt(np.sum(g**2) / 8) for g in gs],
        "grad_W_norm": [np.nan] + [np.linalg.norm(g) for g in grads["weights"]],
        "act_mean": [h.mean() for h in hs],
        "act_std": [h.std() for h in hs],
        "frac_saturated": [np.nan] + [np.mean(record(activation).dphi(a) < 0.3 * gamma) for a in pre],
    })  # fmt: skip
    pd.testing.assert_frame_equal(got, want, rtol=SUM_ORDER_TOL)
    with pytest.raises(TypeError, match="mlp must be an rnnsim.MLP"):
        layers.layer_statistics("net", x, target)


def test_end_ratios_compare_the_input_end_with_the_top():
    rows = [
        {"act": a, "seed": s, "layer": l, "grad_h_norm": (s + 1) * k**l, "grad_W_norm": 2.0 * l,
         "frac_saturated": 0.1 * l}
        for a, k in (("x", 2.0), ("y", 0.5)) for s in range(2) for l in range(4)
    ]  # fmt: skip
    table = pd.DataFrame(rows)
    r = layers.end_ratios(table, ["act", "seed"])
    pd.testing.assert_frame_equal(
        r,
        pd.DataFrame(
            {
                "act": ["x", "x", "y", "y"],
                "seed": [0, 1, 0, 1],
                "ratio": [2.0**-3, 2.0**-3, 8.0, 8.0],
            }
        ),  # fmt: skip
    )


def test_gradient_theory_is_the_mean_field_ratio_anchored_at_the_geometric_mean_top():
    rows = [
        {"activation": "tanh", "init": i, "sigma_w": sw, "seed": s, "layer": l,
         "grad_h_norm": 4.0 if s == 0 else 9.0}
        for i, sw in (("he", 1.0), ("gaussian", 0.5)) for s in range(2) for l in range(6)
    ]  # fmt: skip
    got = layers.gradient_theory(pd.DataFrame(rows))
    assert list(got.columns) == ["activation", "init", "sigma_w", "layer", "grad_h_norm"]
    for (init, sw2), part in zip(
        (("he", 2.0), ("gaussian", 0.25)), (got.iloc[:6], got.iloc[6:]), strict=True
    ):
        assert set(part["init"]) == {init} and list(part["layer"]) == list(range(6))
        np.testing.assert_allclose(part["grad_h_norm"], 6.0 * gradient_ratios("tanh", sw2, 5))
    with pytest.raises(ValueError, match="by must hold"):
        layers.gradient_theory(pd.DataFrame(rows), by=["activation", "init"])

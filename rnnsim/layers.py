"""Layer by layer through a deep MLP: gradient norms, activation statistics and their theory.

Glorot & Bengio 2010 (Figs. 6-7) follow a deep network at initialisation layer by layer: the
backpropagated gradient ``dL/dh_l``, the weight gradient ``dL/dW_l`` and the activations ``h_l``
(their mean, spread and saturation). `layer_statistics` measures them for one network and batch,
one row per layer; `end_ratios` compares the input end with the top of such
tables, and `gradient_theory` gives the mean-field profile of ``||dL/dh_l||`` to draw beside them
(:func:`rnnsim.theory.gradient_ratios`).
"""

import numpy as np
import pandas as pd

from rnnsim.jacobians import frobenius_norms
from rnnsim.kernels.activations import record, times_dphi
from rnnsim.models import MLP
from rnnsim.theory import gradient_ratios, init_sigma_w2
from rnnsim.validation import describe, finite_float

__all__ = ["layer_statistics", "end_ratios", "gradient_theory"]


def _dphi(mlp, h):
    """phi'(a) of every entry of the states ``h = phi(a)``, by the kernels' rule (`times_dphi`)."""
    flat = np.ascontiguousarray(h, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    times_dphi(mlp.act_code, np.ones_like(flat), flat, out)
    return out


def layer_statistics(mlp, x, target, *, saturation=0.05):
    """Gradient norms and activation statistics of every layer of an MLP, for one batch.

    Parameters
    ----------
    mlp : MLP
        A network of depth L with B-sample batches; its loss is ``MLP.loss_and_grad``'s.
    x : ndarray, shape (B, n_in)
        Inputs.
    target : ndarray, shape (B, d_out)
        Targets of the readout (B, n_L without one).
    saturation : float, default 0.05
        A unit counts as saturated where ``phi'(a) < saturation * sup |phi'|``.

    Returns
    -------
    pandas.DataFrame
        One row per layer l = 0..L: ``layer``, ``grad_h_norm`` (``B`` times the RMS over samples
        of ``||dL/dh_l||``: the loss is a batch mean, so this is one sample's gradient),
        ``grad_W_norm`` (``||dL/dW_l||_F``, NaN at l = 0), ``act_mean`` and ``act_std`` (over
        the batch and the units of ``h_l``, with ``h_0 = x``) and ``frac_saturated`` (NaN at
        l = 0). Norms come from :func:`rnnsim.jacobians.frobenius_norms`.

    Notes
    -----
    Glorot & Bengio 2010, Figs. 6-7 (activations and back-propagated gradients per layer).
    """
    if not isinstance(mlp, MLP):
        raise TypeError(f"mlp must be an rnnsim.MLP; got {describe(mlp)}")
    saturation = finite_float("saturation", saturation, minimum=0.0)
    (_, grads), hs, nan = mlp.loss_and_grad(x, target), mlp.forward(x), [np.nan]
    batch = len(hs[0])
    sat = saturation * record(mlp.activation).gamma
    return pd.DataFrame({
        "layer": np.arange(len(hs)),
        "grad_h_norm": [np.sqrt(batch) * frobenius_norms(g) for g in grads["h"]],
        "grad_W_norm": nan + [frobenius_norms(g) for g in grads["weights"]],
        "act_mean": [h.mean() for h in hs],
        "act_std": [h.std() for h in hs],
        "frac_saturated": nan + [np.mean(_dphi(mlp, h) < sat) for h in hs[1:]],
    })  # fmt: skip


def end_ratios(table, by):
    """The gradient at the input over the gradient at the top, for every network of a table.

    Parameters
    ----------
    table : pandas.DataFrame
        Concatenated `layer_statistics` tables, rows of each network in layer order: columns
        ``by`` and ``grad_h_norm``.
    by : sequence of str
        The columns that tell the networks apart (e.g. parameters and ``seed``).

    Returns
    -------
    pandas.DataFrame
        One row per network, in order of first appearance: the ``by`` columns and ``ratio``,
        ``||dL/dh_0|| / ||dL/dh_L||`` (first row over last row).
    """
    ends = table.groupby(list(by), sort=False).grad_h_norm
    return ends.agg(lambda g: g.iloc[0] / g.iloc[-1]).rename("ratio").reset_index()


def gradient_theory(table, by=("activation", "init", "sigma_w")):
    """Mean-field profile of ``||dL/dh_l||`` for each condition, anchored at the measured top.

    Parameters
    ----------
    table : pandas.DataFrame
        Concatenated `layer_statistics` tables of networks of one depth L: columns ``layer``,
        ``grad_h_norm`` and ``activation``, ``init`` (a name of :func:`rnnsim.theory.init_sigma_w2`)
        and ``sigma_w`` (its gain), which must be among ``by``; optionally ``sigma_b`` (the bias
        std) and ``input_scale`` (the inputs' std), when among ``by``.
    by : sequence of str
        The columns of a condition.

    Returns
    -------
    pandas.DataFrame
        One row per condition and layer l = 0..L, conditions in order of first appearance: the
        ``by`` columns, ``layer`` and ``grad_h_norm``, the prediction ``top * r_l`` with ``r_l``
        from :func:`rnnsim.theory.gradient_ratios` (bias variance ``sigma_b^2`` and input variance
        ``input_scale^2``; 0 and 1 without those columns) and ``top`` the geometric mean of the
        measured ``grad_h_norm`` in layer L.

    Notes
    -----
    Schoenholz et al. 2017, §5; Poole et al. 2016, §2 (see :func:`rnnsim.theory.gradient_ratios`).
    """
    by = list(by)
    missing = sorted({"activation", "init", "sigma_w"} - set(by))
    if missing:
        raise ValueError(f"by must hold {missing}; got {by}")
    depth = int(table["layer"].max())
    parts = []
    for key, part in table.groupby(by, sort=False):
        level = dict(zip(by, key, strict=True))
        top = np.exp(np.log(part.grad_h_norm[part.layer == depth]).mean())
        sw2 = init_sigma_w2(level["init"], level["sigma_w"])
        ratio = gradient_ratios(
            level["activation"],
            sw2,
            depth,
            sigma_b2=level.get("sigma_b", 0.0) ** 2,
            q_in=level.get("input_scale", 1.0) ** 2,
        )
        parts.append(
            pd.DataFrame({**level, "layer": np.arange(depth + 1), "grad_h_norm": top * ratio})
        )
    return pd.concat(parts, ignore_index=True)

"""How a signal or a gradient is stretched across time (RNN) and depth (MLP).

Public functions (DESIGN.md): `jacobian_norms`, `jacobian_spectrum`, `lyapunov_spectrum`, and
`gradient_contributions` (Pascanu et al.'s temporal decomposition of the gradient). Each validates
once, runs a Numba kernel from `rnnsim.kernels` and returns a tidy DataFrame (or, for
`lyapunov_spectrum`, a 1-D array). The plain NumPy twins live in `rnnsim.reference` (section
"Issue 4").
"""

import warnings

import numpy as np
import pandas as pd

from rnnsim.kernels import linalg, lyapunov, norms, spectrum
from rnnsim.kernels.activations import times_dphi
from rnnsim.kernels.blas import parallel_map, single_threaded_blas
from rnnsim.kernels.linalg import routine_addresses
from rnnsim.models import RNN, Model
from rnnsim.validation import choice, describe, float_array, generator, positive_int, real_array

LANCZOS_TOL = 1e-11  # relative residual of the top Ritz pair: ||P||_2 to ~5e-12 relative
LANCZOS_MAXIT = 60  # Lanczos steps before the SVD fallback
KAPPA_MAX = 1e3  # Cholesky-QR: a second pass when diag(R) spans more than this
JACOBI_TOL = 1e-15
JACOBI_SWEEPS = 60
_DIRECTIONS = ("backward", "forward")


def _chain(model, x, h0):
    """The model's `JacobianChain` for ``x``; TypeError for an object that is no model."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be an rnnsim model (RNN, MLP, ...); got {describe(model)}")
    return model.jacobian_chain(x, h0)


def _overflowed_states(chain, function):
    """The chain's arrays with RNN states that overflowed float64 set to 0 (so that the kernels
    meet no NaN), and per sample the first step whose state is not finite (T + 1 where every
    state is; None when all samples' are). Warns when some state overflowed."""
    if chain.axis != "step":
        return chain.arrays, None
    W, H = chain.arrays
    finite = np.isfinite(H)
    bad = ~finite.all(axis=2)  # (T+1, B)
    if not bad.any():
        return chain.arrays, None
    first = np.where(bad.any(axis=0), bad.argmax(axis=0), chain.length + 1)
    warnings.warn(
        f"{function}: the state overflowed float64 in {int((first <= chain.length).sum())} of "
        f"{first.size} samples, first at step {int(first.min())} (an unbounded activation at a "
        "large gain); the Jacobians of an overflowed state mean nothing, so every product that "
        "contains one is NaN",
        RuntimeWarning,
        stacklevel=3,
    )
    return (W, np.ascontiguousarray(np.where(finite, H, 0.0))), first


def _undefined(first, k, S, backward):
    """Which products contain the step factor of an overflowed state: bool (B, len(k)) for
    steps k, given the first overflowed step of each sample (`_overflowed_states`). Backward,
    product k holds the factors of steps k+1..S; forward, those of steps 1..k."""
    k = np.asarray(k)[None, :]
    first = first[:, None]
    return (k < S) & (S >= first) if backward else k >= first


def _start_vector(m):
    """The deterministic start vector of the first Lanczos run (generic, never orthogonal to the
    top singular vector except with probability zero)."""
    return np.random.default_rng(20130101).normal(size=m)


def jacobian_norms(model, x, direction="backward", h0=None):
    """Log spectral and Frobenius norms of every Jacobian product along time or depth.

    Parameters
    ----------
    model : rnnsim.RNN or rnnsim.MLP
    x : array, (T, B, d_in) for an RNN, (B, n_in) for an MLP.
    direction : {"backward", "forward"}
        RNN: "backward" gives dh_T/dh_k for k = 0..T, "forward" gives dh_t/dh_0 for t = 0..T.
        MLP: dh_L/dh_l (backward) or dh_l/dh_0 (forward) for l = 0..L.
    h0 : array (B, n) or (n,), optional, RNN initial state (zero by default).

    Returns
    -------
    DataFrame, one row per sample and step (layer): ``sample``, ``step`` (RNN) or ``layer``
    (MLP), ``lag`` (the number of Jacobian factors in the product: T - k backward, t forward),
    ``log_spectral`` and ``log_frobenius`` (natural logs), ``lanczos_iterations`` (-1 where the
    exact SVD fallback ran), and the parameter columns ``direction``, ``activation``, ``n_hidden``
    (RNN) or ``width`` (MLP), ``T`` or ``depth``.

    Notes
    -----
    Pascanu, Mikolov & Bengio 2013, eq. 5 (product of step Jacobians diag(phi') W). The product is
    renormalised every step and its scale carried in logs (finite for T = 100,000 at any gain,
    unless the product is exactly zero: then -inf). Where the state itself overflows float64
    (ReLU or linear at a large gain), every product that contains the Jacobian of an overflowed
    state is NaN, with a RuntimeWarning naming the step. The spectral norm is exact to ~1e-11
    relative: Lanczos iteration on P P^T warm-started from the previous top singular vector, run
    until the relative residual is below 1e-11, else a LAPACK SVD.
    """
    choice("direction", direction, _DIRECTIONS)
    backward = direction == "backward"
    chain = _chain(model, x, h0)
    kernel = norms.rnn_jacobian_norms if chain.axis == "step" else norms.mlp_jacobian_norms
    start = _start_vector(chain.n_last if backward else chain.n_first)
    options = (start, LANCZOS_TOL, LANCZOS_MAXIT, routine_addresses())
    arrays, first = _overflowed_states(chain, "jacobian_norms")
    with single_threaded_blas():  # the kernel splits the products over threads itself
        ls, lf, its = kernel(*arrays, chain.act_code, backward, *options)
    B, S = ls.shape
    if first is not None:
        undefined = _undefined(first, np.arange(S), S - 1, backward)
        ls[undefined] = np.nan
        lf[undefined] = np.nan
    k = np.tile(np.arange(S), B)
    return pd.DataFrame(
        {
            "sample": np.repeat(np.arange(B), S),
            chain.axis: k,
            "lag": (S - 1 - k) if backward else k,
            "log_spectral": ls.ravel(),
            "log_frobenius": lf.ravel(),
            "lanczos_iterations": its.ravel(),
            "direction": direction,
            "activation": model.activation,
            **chain.params,
        }
    )


def log_singular_values(Y, sigma):
    """ln of the singular values of ``diag(exp(sigma)) Y`` (descending; -inf for exact zeros).

    Rows with ``sigma = -inf`` are zero. When the scales span less than 600 (in natural log) the
    matrix is formed relative to its largest scale and LAPACK's preconditioned one-sided Jacobi
    SVD (dgejsv, high relative accuracy for column-scaled matrices) is used; otherwise the
    scaled one-sided Jacobi of `rnnsim.kernels.spectrum.scaled_jacobi_logsv`, which never forms
    exp(sigma). Both release the GIL (`rnnsim.kernels.linalg.gejsv_values`), so that
    `jacobian_spectrum` runs one step per thread.
    """
    live = np.isfinite(sigma)
    out = np.full(sigma.size, -np.inf)
    if not live.any():
        return out
    Yl = np.ascontiguousarray(Y[live])
    sl = sigma[live]
    smax = sl.max()
    if smax - sl.min() < 600.0:
        G = np.asfortranarray((np.exp(sl - smax)[:, None] * Yl).T)
        if G.shape[0] < G.shape[1]:  # dgejsv needs rows >= columns
            G = np.vstack([G, np.zeros((G.shape[1] - G.shape[0], G.shape[1]))])
            G = np.asfortranarray(G)
        sva, work, info = linalg.gejsv_values(routine_addresses(), G.T)
        if info == 0:
            with np.errstate(divide="ignore"):
                vals = np.sort(np.log(sva * (work[1] / work[0])))[::-1] + smax
            out[: vals.size] = vals
            return out
    vals, _ = spectrum.scaled_jacobi_logsv(Yl, np.ascontiguousarray(sl), JACOBI_TOL, JACOBI_SWEEPS)
    out[: vals.size] = vals
    return out


def jacobian_spectrum(model, x, direction="forward", steps=None, h0=None):
    """Every singular value of the Jacobian products of `jacobian_norms` at chosen steps/layers.

    Parameters
    ----------
    model : rnnsim.RNN or rnnsim.MLP
    x : array, (T, B, d_in) for an RNN, (B, n_in) for an MLP.
    direction : {"forward", "backward"}, as in `jacobian_norms`.
    steps : int or sequence of ints, optional. The steps k (RNN) or layers l (MLP) to report;
        all of 0..T (0..L) when None.
    h0 : array (B, n) or (n,), optional (RNN).

    Returns
    -------
    DataFrame, one row per sample, step (layer) and singular value: ``sample``, ``step`` or
    ``layer``, ``lag``, ``rank`` (1 = largest), ``singular_value`` (float64; 0 or inf where the
    value lies beyond float64), ``log_singular_value`` (natural log, always representable;
    NaN where the state overflowed, as in `jacobian_norms`), and the parameter columns of
    `jacobian_norms`.

    Notes
    -----
    Saxe, McClelland & Ganguli 2014, Fig. 6; Pennington, Schoenholz & Ganguli 2017
    (dynamical isometry). The product is accumulated in QR form, ``J_s ... J_1 = Q R``,
    ``J_s Q_{s-1} = Q_s R'_s``, ``R <- R'_s R`` (Benettin's re-orthonormalisation), with R stored
    as log row scales times unit rows, so no entry ever overflows. Precision: every re-
    orthonormalisation is backward stable (two Cholesky QR passes, or Householder; one pass only
    for a step whose estimated condition number is below 10, where its O(eps kappa^2) error is
    below ~1e-13), so each factor is perturbed by O(eps) normwise and a singular value s of one
    step by O(eps kappa) relative, kappa = s_max / s, as in LAPACK's SVD of the explicit product;
    the singular values of diag(e^sigma) Y are then computed with high relative accuracy
    (one-sided Jacobi, Demmel & Veselic 1992). In the tests every singular value of a 256-wide
    tanh layer, and of two such layers, lies within 10 eps (kappa + sqrt(n)) relative of
    LAPACK's (the smallest: 8e-14 for one layer with kappa = 5e3, where a single pass erred by
    9e-11); every
    singular value of products whose singular values span more than e^40 agrees with an
    independent NumPy Householder accumulation to 1e-8 relative, and exact cases
    (orthogonal factors; W = Q diag(s) Q^T with singular values of the product from e^-1000 to
    e^1000) to 1e-10 relative in the log. Singular values that are exactly zero (dead ReLU units) come out
    at rounding level of the product or as -inf.
    """
    choice("direction", direction, _DIRECTIONS)
    backward = direction == "backward"
    chain = _chain(model, x, h0)
    S, B = chain.length, chain.batch
    kernel = spectrum.rnn_spectrum if chain.axis == "step" else spectrum.mlp_spectrum
    if steps is None:
        chosen = np.arange(S + 1, dtype=np.int64)
    else:
        chosen = np.atleast_1d(np.asarray(steps))
        if chosen.ndim != 1 or not np.issubdtype(chosen.dtype, np.integer):
            raise TypeError(f"steps must be an int or a sequence of ints; got {describe(steps)}")
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() > S:
            raise ValueError(f"steps must lie in 0..{S}; got {chosen.tolist()}")
        chosen = np.unique(chosen).astype(np.int64)
    arrays, first = _overflowed_states(chain, "jacobian_spectrum")
    frames = []
    for b in range(B):
        # The kernels split products over threads themselves; then each thread takes one step's
        # SVD at a time (single-threaded LAPACK), rather than splitting every small SVD.
        with single_threaded_blas():
            Ys, sigmas = kernel(*arrays, chain.act_code, backward, b, chosen, routine_addresses())
            logsvs = parallel_map(log_singular_values, zip(Ys, sigmas, strict=True))
        if first is not None:
            for i in np.flatnonzero(_undefined(first[b : b + 1], chosen, S, backward)[0]):
                logsvs[i] = np.full(logsvs[i].size, np.nan)
        for k, logsv in zip(chosen, logsvs, strict=True):
            with np.errstate(over="ignore"):
                sv = np.exp(logsv)
            frames.append(
                pd.DataFrame(
                    {
                        "sample": b,
                        chain.axis: int(k),
                        "lag": int(S - k) if backward else int(k),
                        "rank": np.arange(1, logsv.size + 1),
                        "singular_value": sv,
                        "log_singular_value": logsv,
                    }
                )
            )
    table = pd.concat(frames, ignore_index=True)
    table["direction"] = direction
    table["activation"] = model.activation
    for name, value in chain.params.items():
        table[name] = value
    return table


def lyapunov_spectrum(
    rnn, x=None, *, steps=None, transient=100, h0=None, k=None, reorth_every=1, seed=0
):
    """Lyapunov exponents of the RNN map, by QR re-orthonormalisation (Benettin's method).

    Parameters
    ----------
    rnn : rnnsim.RNN
    x : array (T, d_in) or (T, 1, d_in), optional. The driving input; the first ``transient``
        steps are not counted, the remaining ``T - transient`` are (or ``steps`` of them).
        Without x the map is autonomous, h_t = phi(W h_{t-1} + b).
    steps : int, counted steps; required without x (default: all of x after the transient).
    transient : int >= 0, uncounted steps first (default 100): the state and the tangent basis
        evolve (the basis re-orthonormalised, so that it has turned towards the leading
        directions when the count starts), nothing is measured.
    h0 : array (n,) or (1, n), optional; zero by default. An autonomous tanh or ReLU network
        started at 0 with b = 0 stays at the fixed point 0 (the exponents are then those of
        the linearisation there, ln|eigenvalues of W| for tanh).
    k : int, optional, the number of leading exponents (all n by default).
    reorth_every : int, re-orthonormalise every this many steps (1 = every step).
    seed : int or Generator, for the random orthonormal initial basis.

    Returns
    -------
    float64 array (k,), the exponents per step (natural log), in descending order; -inf for
    directions that a singular Jacobian annihilates (ReLU). All NaN, with a RuntimeWarning naming
    the step, when the state itself overflows float64 (ReLU or linear at a large gain).

    Notes
    -----
    Benettin et al. 1980; Engelken, Wolf & Abbott 2020; REFERENCES.md section 6. Step
    Jacobian J_t = diag(phi'(a_t)) W; ``lambda_i = sum_t ln|R_ii(t)| / steps``. The sum of all n
    exponents equals mean_t ln|det J_t| (the sum rule; `lyapunov_sum_rule`).
    """
    W, U, b, h, x, transient, steps, Qt0, reorth_every = _lyapunov_args(
        rnn, x, steps, transient, h0, k, reorth_every, seed
    )
    rnn_map = lyapunov.RNNMap(W, U, b, rnn.act_code)
    schedule = lyapunov.Schedule(transient, steps, reorth_every, KAPPA_MAX)
    with single_threaded_blas():
        exps, _, _, overflow = lyapunov.lyapunov_qr(
            rnn_map, x, h, Qt0, schedule, routine_addresses()
        )
    _warn_lyapunov_overflow(overflow)
    return np.sort(exps)[::-1]


def _warn_lyapunov_overflow(overflow):
    """Warn that the map's state overflowed at step ``overflow`` (-1: it did not)."""
    if overflow >= 0:
        warnings.warn(
            f"lyapunov_spectrum: the state overflowed float64 at step {overflow} (an unbounded "
            "activation at a large gain); the Jacobians of an overflowed state mean nothing, so "
            "the exponents are NaN",
            RuntimeWarning,
            stacklevel=3,
        )


def lyapunov_sum_rule(rnn, x=None, *, steps=None, transient=100, h0=None, seed=0):
    """(sum of all Lyapunov exponents, mean ln|det J_t|) along the same trajectory.

    The two agree up to rounding (REFERENCES.md section 6, the sum rule): ``ln|det J_t| =
    ln|det W| + sum_i ln phi'(a_{t,i})``. Parameters as `lyapunov_spectrum` (all exponents).
    """
    W, U, b, h, x, transient, steps, Qt0, _ = _lyapunov_args(
        rnn, x, steps, transient, h0, None, 1, seed
    )
    rnn_map = lyapunov.RNNMap(W, U, b, rnn.act_code)
    schedule = lyapunov.Schedule(transient, steps, 1, KAPPA_MAX)
    with single_threaded_blas():
        exps, sum_ld, _, overflow = lyapunov.lyapunov_qr(
            rnn_map, x, h, Qt0, schedule, routine_addresses()
        )
    _warn_lyapunov_overflow(overflow)
    _, logdet_w = np.linalg.slogdet(W)
    return float(exps.sum()), float(sum_ld / steps + logdet_w)


def _lyapunov_args(rnn, x, steps, transient, h0, k, reorth_every, seed):
    if not isinstance(rnn, RNN):
        raise TypeError(f"rnn must be an rnnsim.RNN; got {describe(rnn)}")
    n = rnn.n_hidden
    transient = positive_int("transient", transient, minimum=0)
    reorth_every = positive_int("reorth_every", reorth_every)
    k = n if k is None else positive_int("k", k)
    if k > n:
        raise ValueError(f"k must be at most n_hidden = {n}; got {k}")
    if x is None:
        if steps is None:
            raise ValueError("steps must be given for the autonomous map (x is None); got None")
        steps = positive_int("steps", steps)
        xk = np.zeros((transient + steps, 0))
        U = np.zeros((n, 0))
    else:
        xa = real_array("x", x)
        if xa.ndim == 3:
            if xa.shape[1] != 1:
                raise ValueError(
                    f"x must be (T, d_in) or (T, 1, d_in) (one trajectory); got shape {xa.shape}"
                )
            xa = xa[:, 0, :]
        xk = float_array("x", xa, ndim=2, shape=(None, rnn.n_in))
        avail = xk.shape[0] - transient
        if avail < 1:
            raise ValueError(
                f"x must have more than transient = {transient} steps; got {xk.shape[0]}"
            )
        steps = avail if steps is None else positive_int("steps", steps)
        if steps > avail:
            raise ValueError(
                f"steps must be at most T - transient = {avail} for this x; got {steps}"
            )
        U = rnn.U
    if h0 is None:
        h = np.zeros(n)
    else:
        h = float_array("h0", real_array("h0", h0).reshape(-1), ndim=1, shape=(n,))
    rng = generator("seed", seed)
    # orthonormalised by the kernels' QR, not NumPy's: NumPy's BLAS threads would spin on a core
    # for a while after the call, while the kernel needs both
    Qt0, _, _ = linalg.orthonormalise(rng.normal(size=(k, n)), KAPPA_MAX, routine_addresses(), 1)
    return (np.ascontiguousarray(rnn.W), np.ascontiguousarray(U), np.ascontiguousarray(rnn.b),
            h, np.ascontiguousarray(xk), transient, steps, Qt0, reorth_every)  # fmt: skip


def frobenius_norms(A, axis=None):
    """Frobenius norms of ``A`` over ``axis`` (all axes by default), safe from underflow.

    Parameters
    ----------
    A : array_like, float64, any shape.
    axis : int or tuple of ints, optional. The axes each norm runs over.

    Returns
    -------
    float64 array of A's shape without ``axis`` (a float for all axes). Each norm is that of
    ``A / max|A|`` (over the same axes) scaled back, so that entries down to the smallest
    subnormal give their norm: squared directly they underflow to 0 below about 1e-154. 0 for
    all-zero parts, inf where an entry is infinite, NaN where one is NaN.
    """
    A = np.asarray(A, dtype=np.float64)
    if A.size == 0:
        return np.sqrt(np.sum(A * A, axis=axis))
    top, scale = _scales(A, axis)
    with np.errstate(invalid="ignore"):
        norms = np.sqrt(np.sum((A / scale) ** 2, axis=axis, keepdims=True)) * scale
    norms = np.where(np.isinf(top), np.inf, norms)
    return norms.item() if axis is None else np.squeeze(norms, axis=axis)


def gradient_contributions(model, x, target, loss=None, h0=None):
    """Where the gradient comes from: per step (RNN) or per layer (MLP).

    Parameters
    ----------
    model : rnnsim.RNN or rnnsim.MLP (a `rnnsim.models.Model` whose Jacobian chain runs over
        steps or layers)
    x : array, (T, B, d_in) (RNN) or (B, n_in) (MLP).
    target : as for the model's ``loss_and_grad``.
    loss : str, optional, the model's loss (`RNN.loss_and_grad`; its default when None).
    h0 : array, optional (RNN).

    Returns
    -------
    DataFrame. RNN: one row per step k = 0..T with ``step``, ``lag`` = T - k, ``grad_h_norm``
    = ||dL/dh_k|| (Frobenius over batch and units; the total derivative), and for k >= 1
    ``grad_W_norm``, ``grad_U_norm``, ``grad_b_norm``: the Frobenius norms of the part of dL/dW,
    dL/dU, dL/db that enters at step k, ``sum_b delta_k h_{k-1}^T``, ``sum_b delta_k x_k^T``,
    ``sum_b delta_k`` with ``delta_k = dL/da_k = dL/dh_k * phi'(a_k)`` (NaN at k = 0); the
    contributions sum to the full gradient. MLP: one row per layer l = 0..L with ``layer``,
    ``lag`` = L - l, ``grad_h_norm`` and (l >= 1) ``grad_W_norm``, ``grad_b_norm`` of dL/dW_l,
    dL/db_l. Both carry ``loss`` and ``activation`` columns.

    Notes
    -----
    Pascanu, Mikolov & Bengio 2013, eqs. 3-5: dE/dtheta = sum_k dE/dx_k d+x_k/dtheta. With a
    ``*_last`` loss the contribution of step k is exactly the one carried over lag T - k; with
    ``*_all`` losses it sums the paths from every later step. Gradients are plain float64
    (the engine's BPTT): a vanishing contribution below ~1e-308 shows as 0.
    """
    chain = _chain(model, x, h0)
    _, grads = model.loss_and_grad(x, target, loss, h0)
    S = chain.length
    if chain.axis == "layer":
        gW = [np.nan] + [frobenius_norms(g) for g in grads["weights"]]
        gb = [np.nan] + [frobenius_norms(g) for g in grads["biases"]]
        gh = [frobenius_norms(g) for g in grads["h"]]
        parts = {"grad_h_norm": gh, "grad_W_norm": gW, "grad_b_norm": gb}
    else:
        H = chain.arrays[1]
        xk = np.ascontiguousarray(x, dtype=np.float64)
        gW, gU, gb = _rnn_step_contribution_norms(H, grads["h"], xk, chain.act_code)
        nan = [np.nan]
        parts = {
            "grad_h_norm": frobenius_norms(grads["h"], axis=(1, 2)),
            "grad_W_norm": np.concatenate([nan, gW]),
            "grad_U_norm": np.concatenate([nan, gU]),
            "grad_b_norm": np.concatenate([nan, gb]),
        }
    return pd.DataFrame(
        {
            chain.axis: np.arange(S + 1),
            "lag": S - np.arange(S + 1),
            **parts,
            "loss": model.loss_name(loss),
            "activation": model.activation,
            **chain.params,
        }
    )


def growth_rate(table, x, y, by=()):
    """Exponential growth rate of a norm: least-squares slope of its log against step or layer.

    Parameters
    ----------
    table : DataFrame
        Tidy table of m rows with columns ``x``, ``y`` and ``by``, e.g. the output of
        `jacobian_norms` or `gradient_contributions` with ln of a norm taken.
    x : str
        The axis along which the norm grows: ``"layer"``, ``"step"`` or ``"lag"``.
    y : str
        Natural log of the norm (``"log_spectral"``, ln ||dL/dh_l||^2, ...).
    by : sequence of str
        Columns of which every combination gets its own fit (parameters and ``seed``).

    Returns
    -------
    DataFrame, one row per group (sorted by ``by``): the ``by`` columns, ``slope`` (nats per unit
    of ``x``; NaN for a group with a single distinct x) and ``points`` (rows in the fit). Rows
    where x or y is not finite (ln 0 = -inf for an exactly zero norm) are left out of the fit.

    Notes
    -----
    The slope of the ordinary least-squares line, ``sum (x - xbar)(y - ybar) / sum (x - xbar)^2``
    per group (``np.polyfit(x, y, 1)[0]``), vectorised over groups. For the backward gradient of a
    deep MLP, minus this slope in ln ||dL/dh_l||^2 estimates ln chi1 (Schoenholz et al. 2017).
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame; got {describe(table)}")
    by = [by] if isinstance(by, str) else list(by)
    for name, column in [("x", x), ("y", y)] + [("by", b) for b in by]:
        if column not in table.columns:
            raise ValueError(f"{name} must name a column of table; got {column!r}")
    frame = table[by].assign(_x=table[x].astype(float), _y=table[y].astype(float))
    frame = frame[np.isfinite(frame["_x"]) & np.isfinite(frame["_y"])]
    key = by if by else np.zeros(len(frame))
    mean = frame.groupby(key, sort=True, dropna=False)[["_x", "_y"]].transform("mean")
    dx, dy = frame["_x"] - mean["_x"], frame["_y"] - mean["_y"]
    groups = frame.assign(_xy=dx * dy, _xx=dx * dx).groupby(key, sort=True, dropna=False)
    out = groups[["_xy", "_xx"]].sum()
    out["slope"] = out["_xy"] / out["_xx"].where(out["_xx"] > 0)
    out["points"] = groups.size()
    out = out.drop(columns=["_xy", "_xx"])
    return out.reset_index() if by else out.reset_index(drop=True)


def _rnn_step_contribution_norms(H, G, x, code):
    """Frobenius norms of sum_b delta_k h_{k-1}^T, sum_b delta_k x_k^T, sum_b delta_k, k = 1..T.

    Uses ||A B^T||_F^2 = tr((A^T A)(B^T B)) over the batch, so no (n, n) matrix per step is
    formed: O(T B^2 n) instead of O(T B n^2). Each step's delta, state and input are divided by
    their largest entry first (and the norms scaled back), so that their squares never
    underflow (as in `frobenius_norms`).
    """
    D = np.empty_like(G[1:])  # (T, B, n) delta_k = dL/dh_k * phi'(a_k), by the kernels' rule
    times_dphi(
        code,
        np.ascontiguousarray(G[1:]).reshape(-1),
        np.ascontiguousarray(H[1:]).reshape(-1),
        D.reshape(-1),
    )
    D, sD = _step_scaled(D)
    Hs, sH = _step_scaled(H[:-1])
    xs, sx = _step_scaled(x)
    dd = np.einsum("tbi,tci->tbc", D, D)
    hh = np.einsum("tbi,tci->tbc", Hs, Hs)
    xx = np.einsum("tbi,tci->tbc", xs, xs)
    gW = sD * sH * np.sqrt(np.maximum(np.einsum("tbc,tbc->t", dd, hh), 0.0))
    gU = sD * sx * np.sqrt(np.maximum(np.einsum("tbc,tbc->t", dd, xx), 0.0))
    gb = sD * frobenius_norms(D.sum(axis=1), axis=1)
    return gW, gU, gb


def _scales(A, axis):
    """(max |A| over ``axis``, the scale to divide by: that maximum, or 1 where it is 0, inf or
    NaN), both with ``axis`` kept as length-1 axes; A must not be empty."""
    top = np.abs(A).max(axis=axis, keepdims=True)
    return top, np.where((top > 0) & np.isfinite(top), top, 1.0)


def _step_scaled(A):
    """``A`` (T, B, m) with each step divided by its largest |entry| (steps of zeros, or with an
    inf or NaN, unchanged), and those scales (T,)."""
    if A.size == 0:
        return A, np.ones(A.shape[0])
    scale = _scales(A, (1, 2))[1]
    return A / scale, scale.reshape(-1)


def warmup():
    """Compile (or load from Numba's on-disk cache) this module's kernels on tiny inputs.

    Call once before timing (`rnnsim.warmup` covers the engine); returns the seconds it took.
    """
    import time

    from rnnsim.models import MLP, RNN

    t0 = time.perf_counter()
    x = np.zeros((3, 1, 1))
    for activation in ("tanh", "relu", "sigmoid", "linear"):
        rnn = RNN.random(1, 3, 1, activation=activation)
        mlp = MLP.random(3, 2, activation=activation)
        for direction in _DIRECTIONS:
            jacobian_norms(rnn, x, direction)
            jacobian_norms(mlp, np.ones((1, 3)), direction)
            jacobian_spectrum(rnn, x, direction, steps=1)
            jacobian_spectrum(mlp, np.ones((1, 3)), direction, steps=1)
        lyapunov_spectrum(rnn, steps=2, transient=1)
        lyapunov_spectrum(rnn, x[:, 0], transient=1)
    spectrum.scaled_jacobi_logsv(np.eye(2), np.array([0.0, -700.0]), JACOBI_TOL, JACOBI_SWEEPS)
    return time.perf_counter() - t0


__all__ = [
    "frobenius_norms",
    "gradient_contributions",
    "growth_rate",
    "jacobian_norms",
    "jacobian_spectrum",
    "log_singular_values",
    "lyapunov_spectrum",
    "lyapunov_sum_rule",
    "warmup",
]

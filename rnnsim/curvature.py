"""Curvature of the loss: the quadratic model of a gradient step, Hessian spectra, conditioning.

Everything here is written against a generic Hessian-vector product ``hvp(v) -> H v`` (a callable on
flat float64 vectors) and a gradient ``g``, so it applies to any model; a model's
``hvp_operator(x, target, loss, h0)`` (`rnnsim.models.Model`) builds that callable (exact products by
Pearlmutter's R-operator, `rnnsim.kernels.hvp`).

The step ``w -> w - eps g`` changes the loss by ``-eps g^T g + 1/2 eps^2 g^T H g + O(eps^3)``
(Goodfellow, Bengio & Courville 2016, eq. 8.10): it raises the loss ("unlearns") when
``1/2 eps^2 g^T H g > eps g^T g``, i.e. when ``g^T H g > 0`` and ``eps > eps* = 2 g^T g / g^T H g``.
"""

import math

import numpy as np
import pandas as pd

from rnnsim.validation import (
    choice,
    float_array,
    generator,
    positive_float,
    positive_int,
    require_columns,
)

__all__ = [
    "step_curvature",
    "hessian_matrix",
    "lanczos",
    "top_eigenvalues",
    "spectral_density",
    "density_on_grid",
    "hutchinson_trace",
    "condition_number",
    "curvature_callback",
    "loss_change_terms",
    "smoothed_records",
]


def _check_hvp(hvp):
    if not callable(hvp):
        raise TypeError(f"hvp must be a callable v -> H v, got {hvp!r}")


def step_curvature(grad, hvp, lr, *, Hg=None):
    """The second-order model of the gradient step ``w -> w - lr g``.

    Parameters
    ----------
    grad : array_like (p,)
        The gradient g.
    hvp : callable or None
        ``hvp(v) -> H v`` on (p,) vectors; not called when ``Hg`` is given.
    lr : float
        Step size eps (> 0).
    Hg : array_like (p,), optional
        A precomputed ``H g``.

    Returns
    -------
    dict
        ``gTg``, ``gTHg``, ``grad_norm``, ``eps_star`` (``2 g^T g / g^T H g`` when ``g^T H g > 0``,
        else inf), ``first_order`` (``-lr g^T g``), ``second_order`` (``1/2 lr^2 g^T H g``),
        ``predicted_change`` (their sum), ``predicts_increase`` (bool), ``curvature_ratio``
        (``g^T H g / g^T g``, the curvature along g), ``lr``.

    Notes
    -----
    Goodfellow, Bengio & Courville 2016, section 8.2.1, eq. 8.10.
    """
    g = float_array("grad", grad, ndim=1, finite=False)
    lr = positive_float("lr", lr)
    if Hg is None:
        _check_hvp(hvp)
        Hg = hvp(g.copy())
    Hg = float_array("Hg", Hg, ndim=1, finite=False)
    if Hg.shape != g.shape:
        raise ValueError(f"Hg must have the shape of grad {g.shape}, got {Hg.shape}")
    gTg = float(g @ g)
    gTHg = float(g @ Hg)
    first = -lr * gTg
    second = 0.5 * lr * lr * gTHg
    return {
        "gTg": gTg,
        "gTHg": gTHg,
        "grad_norm": math.sqrt(gTg),
        "eps_star": 2.0 * gTg / gTHg if gTHg > 0 else math.inf,
        "first_order": first,
        "second_order": second,
        "predicted_change": first + second,
        "predicts_increase": bool(first + second > 0),
        "curvature_ratio": gTHg / gTg if gTg > 0 else math.nan,
        "lr": lr,
    }


def hessian_matrix(hvp, dim):
    """The explicit Hessian, built column by column from ``dim`` Hessian-vector products.

    Parameters
    ----------
    hvp : callable
        ``hvp(v) -> H v`` on (dim,) vectors.
    dim : int

    Returns
    -------
    numpy.ndarray (dim, dim)
        Column j is ``H e_j``. Not symmetrised, so asymmetry exposes an inexact hvp.
    """
    _check_hvp(hvp)
    dim = positive_int("dim", dim)
    H = np.empty((dim, dim))
    for j in range(dim):
        e = np.zeros(dim)
        e[j] = 1.0
        H[:, j] = hvp(e)
    return H


def lanczos(hvp, dim, n_steps, *, v0=None, seed=0):
    """Lanczos tridiagonalisation with full re-orthogonalisation.

    Parameters
    ----------
    hvp : callable
        ``hvp(v) -> H v`` for a symmetric H on (dim,) vectors.
    dim : int
    n_steps : int
        Lanczos steps m (at most dim; stops early on an invariant subspace).
    v0 : array_like (dim,), optional
        Start vector (normalised here); a standard Gaussian one from ``seed`` otherwise.
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    alpha : numpy.ndarray (m,)
        Diagonal of the tridiagonal matrix.
    beta : numpy.ndarray (m - 1,)
        Off-diagonal.
    Q : numpy.ndarray (dim, m)
        Orthonormal Lanczos vectors.

    Notes
    -----
    Standard Lanczos (Golub & Van Loan, Matrix Computations) with every new vector orthogonalised
    twice against all previous ones in float64, as PyHessian does (Yao et al. 2020).
    """
    _check_hvp(hvp)
    dim = positive_int("dim", dim)
    m = min(positive_int("n_steps", n_steps), dim)
    if v0 is None:
        q = generator("seed", seed).standard_normal(dim)
    else:
        q = float_array("v0", v0, ndim=1, finite=False).copy()
        if q.shape != (dim,):
            raise ValueError(f"v0 must have shape ({dim},), got {q.shape}")
    nq = np.linalg.norm(q)
    if not nq > 0:
        raise ValueError("v0 must be a non-zero vector")
    Q = np.zeros((dim, m))
    Q[:, 0] = q / nq
    alpha = np.zeros(m)
    beta = np.zeros(m)
    k = m
    for j in range(m):
        w = np.asarray(hvp(Q[:, j].copy()), dtype=np.float64)
        alpha[j] = Q[:, j] @ w
        for _ in range(2):  # full re-orthogonalisation, twice ("twice is enough")
            w = w - Q[:, : j + 1] @ (Q[:, : j + 1].T @ w)
        if j == m - 1:
            break
        beta[j] = np.linalg.norm(w)
        scale = max(abs(alpha[: j + 1]).max(), beta[: j + 1].max(), 1e-300)
        if beta[j] <= 1e-13 * scale:
            k = j + 1
            break
        Q[:, j + 1] = w / beta[j]
    return alpha[:k].copy(), beta[: k - 1].copy(), Q[:, :k].copy()


def _tridiag_eig(alpha, beta):
    Tm = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    return np.linalg.eigh(Tm)


def top_eigenvalues(hvp, dim, k=1, *, n_steps=None, seed=0, which="largest", return_vectors=False):
    """Extreme Hessian eigenvalues by Lanczos with full re-orthogonalisation.

    Parameters
    ----------
    hvp : callable
        ``hvp(v) -> H v`` on (dim,) vectors.
    dim : int
    k : int, default 1
        Number of eigenvalues.
    n_steps : int, optional
        Lanczos steps; default ``min(dim, max(2 k + 30, 40))``. With ``n_steps = dim`` the result is
        exact up to rounding.
    seed : int or numpy.random.Generator, default 0
    which : {"largest", "smallest", "magnitude"}
        Algebraically largest, smallest, or largest in absolute value.
    return_vectors : bool, default False
        Also return the Ritz vectors (dim, k).

    Returns
    -------
    numpy.ndarray (k,)
        Ritz values: descending for "largest" and "magnitude" (by |.|), ascending for "smallest".

    Notes
    -----
    Yao et al. 2020 (PyHessian) use power iteration; Lanczos converges faster for the same number
    of products and returns several eigenvalues at once.
    """
    dim = positive_int("dim", dim)
    k = positive_int("k", k)
    if k > dim:
        raise ValueError(f"k must be <= dim = {dim}, got {k}")
    choice("which", which, ("largest", "smallest", "magnitude"))
    m = min(dim, max(2 * k + 30, 40)) if n_steps is None else positive_int("n_steps", n_steps)
    alpha, beta, Q = lanczos(hvp, dim, m, seed=seed)
    theta, S = _tridiag_eig(alpha, beta)
    if which == "largest":
        order = np.argsort(theta)[::-1]
    elif which == "smallest":
        order = np.argsort(theta)
    else:
        order = np.argsort(np.abs(theta))[::-1]
    order = order[:k]
    if return_vectors:
        return theta[order], Q @ S[:, order]
    return theta[order]


def spectral_density(hvp, dim, *, n_vectors=10, n_steps=80, seed=0):
    """Stochastic Lanczos quadrature nodes and weights of the Hessian's spectral density.

    Parameters
    ----------
    hvp : callable
        ``hvp(v) -> H v`` on (dim,) vectors.
    dim : int
    n_vectors : int, default 10
        Random start vectors (Rademacher, normalised).
    n_steps : int, default 80
        Lanczos steps per vector (at most dim).
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    pandas.DataFrame
        One row per Ritz value: ``vector``, ``node`` (Ritz value theta_i), ``weight`` (tau_i, the
        squared first component of the tridiagonal's eigenvector; they sum to 1 per vector),
        ``n_steps``, ``n_vectors``, ``dim``. For any polynomial f of degree < 2 m,
        ``sum_i tau_i f(theta_i) = q^T f(H) q`` exactly, so ``dim * mean`` over vectors estimates
        ``tr f(H)``. Smooth it with `density_on_grid`.

    Notes
    -----
    Stochastic Lanczos quadrature (Golub & Meurant; Ghorbani, Krishnan & Xiao 2019), as in PyHessian
    (Yao et al. 2020). REFERENCES.md section 8.
    """
    dim = positive_int("dim", dim)
    n_vectors = positive_int("n_vectors", n_vectors)
    n_steps = positive_int("n_steps", n_steps)
    rng = generator("seed", seed)
    frames = []
    for i in range(n_vectors):
        v0 = rng.choice(np.array([-1.0, 1.0]), size=dim)
        alpha, beta, _ = lanczos(hvp, dim, n_steps, v0=v0)
        theta, S = _tridiag_eig(alpha, beta)
        frames.append(pd.DataFrame({"vector": i, "node": theta, "weight": S[0, :] ** 2}))
    table = pd.concat(frames, ignore_index=True)
    table["n_steps"] = n_steps
    table["n_vectors"] = n_vectors
    table["dim"] = dim
    return table


def density_on_grid(nodes, grid, sigma):
    """Gaussian-broadened spectral density from `spectral_density`'s nodes and weights.

    Parameters
    ----------
    nodes : pandas.DataFrame
        Output of `spectral_density`.
    grid : array_like (n_grid,)
        Eigenvalues at which to evaluate the density.
    sigma : float
        Gaussian width (> 0), in eigenvalue units.

    Returns
    -------
    pandas.DataFrame
        ``eigenvalue``, ``density`` (integrates to 1 over the real line), ``sigma``.

    Notes
    -----
    ``phi(t) = mean_v sum_i tau_i N(t; theta_i, sigma^2)`` (Yao et al. 2020, PyHessian).
    """
    grid = float_array("grid", grid, ndim=1, finite=False)
    sigma = positive_float("sigma", sigma)
    for col in ("vector", "node", "weight"):
        if col not in nodes:
            raise ValueError(f"nodes must have column {col!r} (from spectral_density)")
    n_vec = nodes["vector"].nunique()
    th = nodes["node"].to_numpy()[None, :]
    w = nodes["weight"].to_numpy()[None, :]
    kern = np.exp(-0.5 * ((grid[:, None] - th) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return pd.DataFrame(
        {"eigenvalue": grid, "density": (kern * w).sum(axis=1) / n_vec, "sigma": sigma}
    )


def hutchinson_trace(hvp, dim, *, n_samples=100, seed=0):
    """Hutchinson's estimate of tr H with Rademacher vectors.

    Parameters
    ----------
    hvp : callable
        ``hvp(v) -> H v`` on (dim,) vectors.
    dim : int
    n_samples : int, default 100
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    dict
        ``trace`` (mean of ``v^T H v``), ``stderr`` (standard error of that mean; 0 for one
        sample), ``n_samples``.

    Notes
    -----
    Hutchinson 1989; PyHessian (Yao et al. 2020). Exact for a diagonal H, since v_i^2 = 1.
    """
    dim = positive_int("dim", dim)
    n_samples = positive_int("n_samples", n_samples)
    _check_hvp(hvp)
    rng = generator("seed", seed)
    vals = np.empty(n_samples)
    for i in range(n_samples):
        v = rng.choice(np.array([-1.0, 1.0]), size=dim)
        vals[i] = v @ np.asarray(hvp(v.copy()), dtype=np.float64)
    stderr = float(vals.std(ddof=1) / math.sqrt(n_samples)) if n_samples > 1 else 0.0
    return {"trace": float(vals.mean()), "stderr": stderr, "n_samples": n_samples}


def condition_number(hvp, dim, *, n_steps=None, seed=0):
    """Extreme eigenvalues and a condition-number estimate of H from one Lanczos run.

    Parameters
    ----------
    hvp : callable
    dim : int
    n_steps : int, optional
        Lanczos steps, default ``min(dim, 60)``; ``dim`` gives the exact spectrum.
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    dict
        ``lambda_max``, ``lambda_min`` (algebraic extremes of the Ritz values), ``abs_max``,
        ``abs_min`` (largest and smallest |Ritz value|), ``kappa`` (``abs_max / abs_min``; inf
        when a Ritz value is exactly 0), ``n_steps``.

    Notes
    -----
    The extreme Ritz values converge first; ``abs_min`` lies inside the spectrum when H is
    indefinite and is only exact with ``n_steps = dim``. Goodfellow, Bengio & Courville 2016,
    section 8.2.1 (ill-conditioning).
    """
    dim = positive_int("dim", dim)
    m = min(dim, 60) if n_steps is None else min(positive_int("n_steps", n_steps), dim)
    alpha, beta, _ = lanczos(hvp, dim, m, seed=seed)
    theta = np.linalg.eigvalsh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
    a = np.abs(theta)
    return {
        "lambda_max": float(theta.max()),
        "lambda_min": float(theta.min()),
        "abs_max": float(a.max()),
        "abs_min": float(a.min()),
        "kappa": float(a.max() / a.min()) if a.min() > 0 else math.inf,
        "n_steps": int(alpha.size),
    }


def curvature_callback(lr, *, loss=None, h0=None, lanczos_steps=0, seed=0):
    """A callback for `rnnsim.train` recording the second-order model of each plain SGD step.

    Parameters
    ----------
    lr : float
        Step size eps of the step ``w -> w - eps g`` that is analysed (normally the training lr).
    loss : str, optional
        The model's loss (`rnnsim.models.Model.loss_name`; its default when None); must match
        the task's loss.
    h0 : array_like, optional
        The initial state, for models that have one.
    lanczos_steps : int, default 0
        When > 0, also run that many Lanczos steps per call and record ``lambda_max``,
        ``lambda_min`` and ``kappa`` (`condition_number`).
    seed : int, default 0
        Seed of the Lanczos start vectors.

    Returns
    -------
    callable
        ``callback(step, model, x, target, grad_flat) -> dict`` with the keys of `step_curvature`
        (``gTg``, ``gTHg``, ``eps_star``, ``first_order``, ``second_order``, ``predicted_change``,
        ``predicts_increase``, ...) plus ``actual_change`` (loss at ``w - lr g`` minus loss at w,
        both on the same batch), ``raised_loss`` (actual change > 0), ``prediction_correct``
        (``predicts_increase == raised_loss``), and with Lanczos ``lambda_max``, ``lambda_min``,
        ``kappa``. The step analysed is the unclipped one, whatever the optimiser does.

    Notes
    -----
    Goodfellow, Bengio & Courville 2016, section 8.2.1, eq. 8.10 and the advice to monitor
    g^T g and g^T H g.
    """
    lr = positive_float("lr", lr)
    lanczos_steps = positive_int("lanczos_steps", lanczos_steps, 0)
    rng = generator("seed", seed)

    def callback(step, model, x, target, grad_flat):
        g = np.asarray(grad_flat, dtype=np.float64).copy()
        hvp = model.hvp_operator(x, target, loss, h0)
        rec = step_curvature(g, hvp, lr)
        theta = model.params_vector()
        l0 = model.loss_and_grad(x, target, loss, h0)[0]
        l1 = model.with_params(theta - lr * g).loss_and_grad(x, target, loss, h0)[0]
        rec["actual_change"] = l1 - l0
        rec["raised_loss"] = bool(l1 > l0)
        rec["prediction_correct"] = rec["predicts_increase"] == rec["raised_loss"]
        if lanczos_steps > 0:
            cn = condition_number(hvp, g.size, n_steps=lanczos_steps, seed=rng)
            rec.update({k: cn[k] for k in ("lambda_max", "lambda_min", "kappa")})
        return rec

    return callback


_RECORDS_FROM = "curvature_callback"  # whose records the functions below read


def loss_change_terms(records, by):
    """The two terms of the quadratic model of each recorded step, one row per step and term.

    Parameters
    ----------
    records : pandas.DataFrame
        Rows of `curvature_callback` records (rows where ``gTHg`` is NaN, the steps the callback
        skipped, are left out) with the columns ``first_order``, ``second_order``,
        ``raised_loss`` and the ``by`` columns.
    by : sequence of str
        Columns that identify a step (e.g. ``["T", "lr", "seed", "step"]``).

    Returns
    -------
    pandas.DataFrame
        2 m rows for m recorded steps (first every step's gain, then every step's penalty) with
        the columns ``by``, ``raised_loss`` (bool), ``term`` and ``value``: the gain
        ``"eps g^T g"`` = -``first_order`` and the penalty ``"1/2 eps^2 g^T H g"`` =
        ``second_order``, NaN where it is not positive (so that it can be drawn on a log axis).

    Notes
    -----
    Goodfellow, Bengio & Courville 2016, section 8.2.1, eq. 8.10: a step w -> w - eps g raises a
    quadratic loss when the penalty exceeds the gain.
    """
    by = list(by)
    needed = [*by, "gTHg", "first_order", "second_order", "raised_loss"]
    require_columns("records", records, needed, _RECORDS_FROM)
    cb = records.dropna(subset=["gTHg"])
    wide = cb[by].assign(
        raised_loss=cb["raised_loss"].astype(bool),
        **{
            "eps g^T g": -cb["first_order"],
            "1/2 eps^2 g^T H g": cb["second_order"].where(cb["second_order"] > 0),
        },
    )
    terms = ["eps g^T g", "1/2 eps^2 g^T H g"]
    return wide.melt(id_vars=[*by, "raised_loss"], value_vars=terms, var_name="term")


def smoothed_records(records, columns, window):
    """Geometric running means of positive record columns, one training run at a time.

    Parameters
    ----------
    records : pandas.DataFrame
        One run's table with `curvature_callback` records, in step order (rows where ``gTHg`` is
        NaN, the steps the callback skipped, are left out).
    columns : sequence of str
        Columns to smooth (e.g. ``["lambda_max", "eps_star"]``).
    window : int
        Records per window (fewer at the start of the run).

    Returns
    -------
    pandas.DataFrame
        One row per record (the index of ``records``), the columns ``columns`` with the suffix
        ``_smooth``: exp of the mean of ln of the window's positive entries (entries that are not
        positive are skipped; NaN when none is left).

    Notes
    -----
    Quantities such as the sharpness or the safe step eps* vary over decades from one batch to
    the next; a geometric mean keeps each decade's weight and stays positive on a log axis.
    """
    columns = list(columns)
    require_columns("records", records, ["gTHg", *columns], _RECORDS_FROM)
    window = positive_int("window", window)
    rec = records.loc[records["gTHg"].notna(), columns].astype(float)
    logs = np.log(rec.where(rec > 0))
    return np.exp(logs.rolling(window, min_periods=1).mean()).add_suffix("_smooth")

"""Loss landscapes of RNNs and MLPs: lines, 2-D slices, ravines, plateaus and minima.

The single-unit cliff of Pascanu et al. 2013 has its own module, `rnnsim.cliff`.
"""

import math

import numpy as np
import pandas as pd

from rnnsim.validation import (
    finite_float,
    float_vector,
    generator,
    positive_float,
    positive_int,
    require_columns,
)

__all__ = [
    "filter_normalized_direction",
    "interpolate",
    "slice_2d",
    "path_callback",
    "ravine_metrics",
    "detect_plateaus",
    "minima_summary",
    "pairwise_distances",
    "hessian_density",
    "survey",
    "survey_summary",
]


# ---------------------------------------------------------------------------------------------
# Landscapes of RNNs and MLPs: lines, slices, ravines, plateaus, minima
# ---------------------------------------------------------------------------------------------


def _params_of(name, obj, size):
    theta = obj.params_vector() if hasattr(obj, "params_vector") else obj
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (size,):
        raise ValueError(
            f"{name} must be a model or a vector of {size} parameters, got {theta.shape}"
        )
    return theta


def filter_normalized_direction(model, seed=0):
    """A random direction in parameter space, filter-normalised as in Li et al. 2018.

    A Gaussian vector shaped like the parameters; each filter is rescaled to the norm of the
    matching filter of the model, ``d_f <- d_f ||theta_f|| / ||d_f||``. **In rnnsim a filter is one
    row of W, U or V (RNN) or of W_l or V (MLP): one unit's incoming weights.** The direction is
    zero
    on every bias (b, c, b_l), as in Li et al.'s code (which also zeroes batch-norm parameters).

    Parameters
    ----------
    model : rnnsim.RNN or rnnsim.MLP
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    numpy.ndarray (n_params,)
        In `params_vector` order.

    Notes
    -----
    Li, Xu, Taylor, Studer & Goldstein 2018, section 4 (filter normalisation); REFERENCES.md §8.
    """
    rng = generator("seed", seed)
    theta = model.params_vector()
    d = rng.standard_normal(theta.size)
    rows, bias = model.filters()
    for a, b in rows:
        nd = np.linalg.norm(d[a:b])
        d[a:b] *= np.linalg.norm(theta[a:b]) / nd if nd > 0 else 0.0
    d[bias] = 0.0
    return d


def interpolate(model0, model1, x, target, *, alphas=None, loss=None, h0=None):
    """Loss along the straight line between two parameter vectors (Goodfellow et al. 2015).

    Parameters
    ----------
    model0 : rnnsim.RNN or rnnsim.MLP
        Model at alpha = 0 (e.g. the initialisation); it fixes the architecture.
    model1 : model of the same shapes, or a flat parameter vector
        Parameters at alpha = 1 (e.g. after training).
    x, target : one batch, as for the model's ``loss_and_grad``.
    alphas : array_like, optional
        Default 61 points on [-0.5, 1.5].
    loss, h0 : as for the model's ``loss_and_grad`` (its default loss when None).

    Returns
    -------
    pandas.DataFrame
        ``alpha``, ``loss``, ``grad_norm``, ``directional_slope`` (dL/dalpha), ``distance``
        (``||theta_1 - theta_0||``), ``loss_fn``.

    Notes
    -----
    ``J((1 - alpha) theta_0 + alpha theta_1)``: Goodfellow, Vinyals & Saxe 2015 (REFERENCES.md §8,
    reported, unconfirmed).
    """
    theta0 = model0.params_vector()
    theta1 = _params_of("model1", model1, theta0.size)
    alphas = float_vector("alphas", np.linspace(-0.5, 1.5, 61) if alphas is None else alphas)
    d = theta1 - theta0
    rows = []
    for a in alphas:
        value, g = model0.with_params(theta0 + a * d).loss_and_grad_vector(x, target, loss, h0)
        rows.append((a, value, float(np.linalg.norm(g)), float(g @ d)))
    table = pd.DataFrame(rows, columns=["alpha", "loss", "grad_norm", "directional_slope"])
    table["distance"] = float(np.linalg.norm(d))
    table["loss_fn"] = model0.loss_name(loss)
    return table


def slice_2d(model, x, target, *, span=1.0, n=21, seed=0, directions=None, loss=None, h0=None):
    """Loss on a 2-D slice ``theta + a d1 + b d2`` through random filter-normalised directions.

    Parameters
    ----------
    model : rnnsim.RNN or rnnsim.MLP
        Centre of the slice.
    x, target : one batch.
    span : float, default 1.0
        a and b range over [-span, span].
    n : int, default 21
        Points per axis.
    seed : int, default 0
        Seed of the two directions (`filter_normalized_direction`), unless ``directions`` is given.
    directions : (d1, d2), optional
        Two flat vectors to use instead.
    loss, h0 : as for the model's ``loss_and_grad`` (its default loss when None).

    Returns
    -------
    pandas.DataFrame
        One row per grid point: ``a``, ``b``, ``loss``, ``grad_norm``, ``span``, ``seed``,
        ``loss_fn``. With filter-normalised directions, a = 1 moves each filter by its own norm.

    Notes
    -----
    Li et al. 2018, section 4 (filter-normalised 2-D plots; REFERENCES.md §8).
    """
    span = positive_float("span", span)
    n = positive_int("n", n, 2)
    theta = model.params_vector()
    if directions is None:
        rng = np.random.default_rng(seed)
        d1 = filter_normalized_direction(model, rng)
        d2 = filter_normalized_direction(model, rng)
    else:
        d1, d2 = (_params_of("directions", d, theta.size) for d in directions)
    axis = np.linspace(-span, span, int(n))
    rows = []
    for a in axis:
        for b in axis:
            point = model.with_params(theta + a * d1 + b * d2)
            value, g = point.loss_and_grad_vector(x, target, loss, h0)
            rows.append((a, b, value, float(np.linalg.norm(g))))
    table = pd.DataFrame(rows, columns=["a", "b", "loss", "grad_norm"])
    table["span"] = span
    table["seed"] = seed if directions is None else -1
    table["loss_fn"] = model.loss_name(loss)
    return table


def path_callback(path):
    """A callback for `rnnsim.train` that records the training path in parameter space.

    Parameters
    ----------
    path : list
        Each call appends ``(step, theta)`` to it: the step number and a copy of the flat parameter
        vector (n_params,) before that step's update, in `params_vector` order. Append the trained
        model's vector after `train` returns to close the path.

    Returns
    -------
    callable
        ``callback(step, model, x, target, grad) -> {}`` (it adds no columns to `train`'s table);
        pass it as ``callback=`` with ``callback_every=k`` to record every k steps, e.g. for
        `ravine_metrics`.
    """
    if not isinstance(path, list):
        raise TypeError(
            f"path must be a list to append (step, theta) to; got {type(path).__name__}"
        )

    def callback(step, model, x, target, grad):
        path.append((step, model.params_vector()))
        return {}

    return callback


def ravine_metrics(
    model, path, x, target, *, loss=None, h0=None, lanczos_steps=30, n_probe=20, seed=0
):
    """Largest versus typical curvature at points along a path in parameter space.

    At each point: the top Hessian eigenvalue (Lanczos), the root-mean-square eigenvalue
    ``sqrt(tr(H^2) / P)`` (Hutchinson on ``||H v||^2``, Rademacher v), their ratio
    (``ravine_ratio``:
    >> 1 in a ravine, where one or a few directions are far steeper than the rest), and the
    curvature along the path itself, ``u^T H u`` with u the unit tangent (small along a valley
    floor).

    Parameters
    ----------
    model : rnnsim.RNN or rnnsim.MLP
        Fixes the architecture.
    path : array_like (K, n_params)
        Parameter vectors along the path (e.g. the training trajectory, every k steps).
    x, target : one batch.
    loss, h0 : as for the model's ``loss_and_grad`` (its default loss when None).
    lanczos_steps : int, default 30
    n_probe : int, default 20
        Hutchinson probes for tr(H^2).
    seed : int, default 0

    Returns
    -------
    pandas.DataFrame
        ``point``, ``lambda_max``, ``rms_eigenvalue``, ``ravine_ratio``, ``path_curvature``,
        ``loss``, ``grad_norm``.

    Notes
    -----
    Goodfellow, Bengio & Courville 2016, section 8.2 (ill-conditioning; ravines); Hessian
    estimators as in PyHessian (Yao et al. 2020).
    """
    from rnnsim import curvature as cv

    P = model.n_params
    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 2 or path.shape[1] != P or path.shape[0] < 1:
        raise ValueError(f"path must have shape (K, {P}) with K >= 1, got {path.shape}")
    rng = np.random.default_rng(seed)
    rows = []
    for k, theta in enumerate(path):
        m = model.with_params(theta)
        hvp = m.hvp_operator(x, target, loss, h0)
        lam = cv.top_eigenvalues(hvp, P, n_steps=min(P, lanczos_steps), seed=rng)[0]
        sq = [np.sum(hvp(rng.choice([-1.0, 1.0], size=P)) ** 2) for _ in range(n_probe)]
        rms = math.sqrt(float(np.mean(sq)) / P)
        tangent = path[min(k + 1, len(path) - 1)] - path[max(k - 1, 0)]
        tn = np.linalg.norm(tangent)
        pc = float(tangent @ hvp(tangent)) / tn**2 if tn > 0 else np.nan
        value, g = m.loss_and_grad_vector(x, target, loss, h0)
        rows.append((k, lam, rms, lam / rms if rms > 0 else np.inf, pc, value, np.linalg.norm(g)))
    return pd.DataFrame(
        rows,
        columns=[
            "point", "lambda_max", "rms_eigenvalue", "ravine_ratio", "path_curvature", "loss",
            "grad_norm",
        ],
    )  # fmt: skip


def detect_plateaus(
    table,
    *,
    grad_tol,
    loss_tol,
    min_length=10,
    window=1,
    step_col="step",
    loss_col="loss",
    grad_col="grad_norm",
):
    """Stretches of training where the gradient norm and the loss change both stay small.

    Parameters
    ----------
    table : pandas.DataFrame
        One run's per-step records (e.g. `rnnsim.train`'s table), ordered by step.
    grad_tol : float
        A step is flat when its (smoothed) gradient norm is < grad_tol ...
    loss_tol : float
        ... and the (smoothed) absolute loss change per step is < loss_tol.
    min_length : int, default 10
        Shortest stretch (in rows) reported.
    window : int, default 1
        Centred rolling-mean window applied to both series first (SGD is noisy).
    step_col, loss_col, grad_col : str

    Returns
    -------
    pandas.DataFrame
        One row per plateau: ``plateau``, ``start_step``, ``end_step`` (inclusive), ``length``
        (rows), ``mean_loss``, ``mean_grad_norm``, ``grad_tol``, ``loss_tol``, ``window``.

    Notes
    -----
    Plateaus of saturated units and long-term-dependency tasks: Goodfellow, Bengio & Courville 2016,
    section 8.2.3; Pascanu et al. 2013's runs spend ~1e4 updates at chance level (REFERENCES §2.4).
    """
    for col in (step_col, loss_col, grad_col):
        if col not in table:
            raise ValueError(f"table must have a column {col!r}; got {list(table.columns)}")
    grad_tol = finite_float("grad_tol", grad_tol)
    loss_tol = finite_float("loss_tol", loss_tol)
    min_length = positive_int("min_length", min_length)
    window = positive_int("window", window)
    loss = table[loss_col].astype(float).rolling(window, center=True, min_periods=1).mean()
    grad = table[grad_col].astype(float).rolling(window, center=True, min_periods=1).mean()
    change = loss.diff().abs().fillna(0.0)
    flat = ((grad < grad_tol) & (change < loss_tol)).to_numpy()
    steps = table[step_col].to_numpy()
    rows, start = [], None
    for i, f in enumerate(np.append(flat, False)):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if i - start >= min_length:
                rows.append(
                    (len(rows), steps[start], steps[i - 1], i - start,
                     float(loss.iloc[start:i].mean()), float(grad.iloc[start:i].mean()))
                )  # fmt: skip
            start = None
    out = pd.DataFrame(
        rows,
        columns=["plateau", "start_step", "end_step", "length", "mean_loss", "mean_grad_norm"],
    )
    out["grad_tol"] = grad_tol
    out["loss_tol"] = loss_tol
    out["window"] = int(window)
    return out


def minima_summary(models, x, target, *, loss=None, h0=None, lanczos_steps=30, seed=0):
    """Final loss, gradient norm and sharpness (top Hessian eigenvalue) of several solutions.

    Parameters
    ----------
    models : sequence of rnnsim.RNN or rnnsim.MLP of one architecture
        E.g. the ends of training runs from different seeds.
    x, target : one (evaluation) batch.
    loss, h0 : as for the model's ``loss_and_grad`` (its default loss when None).
    lanczos_steps : int, default 30
    seed : int, default 0

    Returns
    -------
    pandas.DataFrame
        One row per model: ``model`` (its index), ``loss``, ``grad_norm``, ``sharpness``
        (lambda_max), ``lambda_min`` (smallest Ritz value), ``param_norm``.

    Notes
    -----
    Sharp versus flat minima (Keskar et al. 2017; Li et al. 2018 compare them with filter-normalised
    plots); Hessian eigenvalues by Lanczos (`rnnsim.curvature.top_eigenvalues`).
    """
    from rnnsim import curvature as cv

    models = list(models)
    if not models:
        raise ValueError("models must be a non-empty sequence of models")
    rows = []
    for i, m in enumerate(models):
        value, g = m.loss_and_grad_vector(x, target, loss, h0)
        cn = cv.condition_number(
            m.hvp_operator(x, target, loss, h0), m.n_params,
            n_steps=min(m.n_params, lanczos_steps), seed=seed,
        )  # fmt: skip
        rows.append(
            (i, value, float(np.linalg.norm(g)), cn["lambda_max"], cn["lambda_min"],
             float(np.linalg.norm(m.params_vector())))
        )  # fmt: skip
    return pd.DataFrame(
        rows, columns=["model", "loss", "grad_norm", "sharpness", "lambda_min", "param_norm"]
    )


def pairwise_distances(models):
    """Euclidean distances between the parameter vectors of several models.

    Parameters
    ----------
    models : sequence of models (or flat vectors) of one size

    Returns
    -------
    pandas.DataFrame
        One row per pair i < j: ``i``, ``j``, ``distance``, ``relative_distance`` (distance over
        the mean of the two parameter norms).

    Notes
    -----
    Distance between solutions reached from different seeds (Goodfellow, Bengio & Courville 2016,
    section 8.2.2: many equivalent minima by weight-space symmetry, so a distance alone does not
    show different functions).
    """
    vecs = [
        np.asarray(m.params_vector() if hasattr(m, "params_vector") else m, float) for m in models
    ]
    if len(vecs) < 2 or len({v.shape for v in vecs}) != 1:
        raise ValueError("models must hold at least two models (or vectors) of one size")
    rows = []
    for i in range(len(vecs)):
        for j in range(i + 1, len(vecs)):
            dist = float(np.linalg.norm(vecs[i] - vecs[j]))
            scale = 0.5 * (np.linalg.norm(vecs[i]) + np.linalg.norm(vecs[j]))
            rows.append((i, j, dist, dist / scale if scale > 0 else np.nan))
    return pd.DataFrame(rows, columns=["i", "j", "distance", "relative_distance"])


def hessian_density(
    model, x, target, *, n_vectors=10, n_steps=80, n_grid=300, margin=0.05, width=0.02,
    loss=None, h0=None, seed=0,
):  # fmt: skip
    """The Hessian's spectral density at one point, on a grid spanning its Ritz values.

    Parameters
    ----------
    model : rnnsim.RNN or rnnsim.MLP
        The point (e.g. a trained solution).
    x, target : one batch, as for the model's ``loss_and_grad``.
    n_vectors, n_steps : int, default 10 and 80
        Stochastic Lanczos quadrature: start vectors, and Lanczos steps per vector (at most
        n_params), as in `rnnsim.curvature.spectral_density`.
    n_grid : int, default 300
        Grid points, evenly spaced over ``[lo - margin s, hi + margin s]`` where ``lo``, ``hi`` are
        the smallest and largest Ritz values and ``s = hi - lo`` (1 when they coincide).
    margin : float, default 0.05
        Padding of the grid on each side, as a fraction of ``s`` (>= 0).
    width : float, default 0.02
        Gaussian broadening ``sigma = width s`` (> 0).
    loss, h0 : as for the model's ``loss_and_grad`` (its default loss when None).
    seed : int or numpy.random.Generator, default 0
        Start vectors of the Lanczos runs.

    Returns
    -------
    pandas.DataFrame
        ``n_grid`` rows: ``eigenvalue``, ``density`` (integrates to about 1), ``sigma``, as from
        `rnnsim.curvature.density_on_grid`.

    Notes
    -----
    Stochastic Lanczos quadrature with Gaussian broadening, as in PyHessian (Yao et al. 2020;
    Ghorbani, Krishnan & Xiao 2019); REFERENCES.md section 8.
    """
    from rnnsim import curvature as cv

    n_grid = positive_int("n_grid", n_grid, 2)
    margin = finite_float("margin", margin, minimum=0.0)
    width = positive_float("width", width)
    hvp = model.hvp_operator(x, target, loss, h0)
    nodes = cv.spectral_density(
        hvp, model.n_params, n_vectors=n_vectors, n_steps=n_steps, seed=seed
    )
    lo, hi = nodes["node"].min(), nodes["node"].max()
    s = hi - lo if hi > lo else 1.0
    grid = np.linspace(lo - margin * s, hi + margin * s, n_grid)
    return cv.density_on_grid(nodes, grid, sigma=width * s)


def survey(model0, model1, path, log, x, target, *, loss=None, seed=0):
    """The landscape around one training run, on a held-out batch: one table of every measurement.

    Parameters
    ----------
    model0, model1 : rnnsim.RNN or rnnsim.MLP
        The initialisation and the trained model.
    path : sequence of (int, ndarray (n_params,))
        ``(step, theta)`` along the training path, e.g. from `path_callback` with the trained
        parameters appended last.
    log : pandas.DataFrame
        `rnnsim.train`'s table of the run (columns ``step``, ``loss``, ``grad_norm``).
    x, target : one held-out batch, as for the model's ``loss_and_grad``.
    loss : str, optional
        The RNN loss (None for an MLP, or for the default).
    seed : int, default 0
        Seed of the slice's random directions.

    Returns
    -------
    pandas.DataFrame
        The rows of each part, with ``kind`` naming it, in this order: ``"train"`` (every 10th row
        of ``log``: ``step``, ``loss``, ``grad_norm``), ``"interpolation"`` (`interpolate` at 41
        alphas from -0.5 to 1.5), ``"slice"`` (`slice_2d`, span 1, 15 x 15 points, without its
        ``seed`` column), ``"ravine"`` (`ravine_metrics` along ``path``, 20 Lanczos steps, 10
        probes, with its ``step``), ``"density"`` (`hessian_density` at ``model1``, 5 vectors x 40
        Lanczos steps), ``"minimum"`` (`minima_summary` of ``model1``, 30 Lanczos steps, without
        its ``model`` column), ``"plateau"`` (`detect_plateaus` of ``log``: 100 steps or more with
        the 50-step mean gradient norm below half that of the first 50 steps and the loss
        changing by less than 1e-5 a step) and ``"params"`` (``index`` and ``value`` of
        ``model1``'s parameter vector).

    Notes
    -----
    Goodfellow, Vinyals & Saxe 2015 (the line from initialisation to solution); Li et al. 2018
    (filter-normalised slices); Yao et al. 2020 (Hessian density); Keskar et al. 2017 (sharpness).
    """
    kw = {} if loss is None else {"loss": loss}
    theta = model1.params_vector()
    thetas = [p for _, p in path]
    ravine = ravine_metrics(model0, thetas, x, target, lanczos_steps=20, n_probe=10, **kw)
    minimum = minima_summary([model1], x, target, lanczos_steps=30, **kw)
    g0 = log["grad_norm"].iloc[:50].mean()
    alphas = np.linspace(-0.5, 1.5, 41)
    parts = {
        "train": log[["step", "loss", "grad_norm"]].iloc[::10],
        "interpolation": interpolate(model0, model1, x, target, alphas=alphas, **kw),
        "slice": slice_2d(model1, x, target, span=1.0, n=15, seed=seed, **kw).drop(columns="seed"),
        "ravine": ravine.assign(step=[s for s, _ in path]),
        "density": hessian_density(model1, x, target, n_vectors=5, n_steps=40, **kw),
        "minimum": minimum.drop(columns="model"),
        "plateau": detect_plateaus(log, grad_tol=g0 / 2, loss_tol=1e-5, window=50, min_length=100),
        "params": pd.DataFrame({"index": np.arange(theta.size), "value": theta}),
    }
    return pd.concat([p.assign(kind=k) for k, p in parts.items()], ignore_index=True)


def survey_summary(table, by, *, run="seed"):
    """Minima, their distances across runs and plateaus, per condition, from `survey` tables.

    Parameters
    ----------
    table : pandas.DataFrame
        Concatenated `survey` tables with the columns ``by`` and ``run``.
    by : sequence of str
        The columns of a condition (e.g. model and batch size).
    run : str, default "seed"
        The column that tells the runs of one condition apart.

    Returns
    -------
    pandas.DataFrame
        One row per condition (sorted): the ``by`` columns, ``mean loss``, ``mean sharpness`` and
        ``mean param_norm`` of the minima, ``mean relative distance`` (mean over pairs of runs of
        `pairwise_distances`' ``relative_distance``; only when some condition has two runs or
        more, NaN for the others) and ``plateau steps: count`` and ``plateau steps: max`` (the
        number of plateaus over all runs, 0 without any, and the longest in steps, NaN without
        any).
    """
    keys = list(by)
    require_columns(
        "table",
        table,
        [*keys, run, "kind", "loss", "sharpness", "param_norm", "index", "value"],
        "landscape.survey",
    )
    mins = table[table["kind"] == "minimum"].groupby(keys)[["loss", "sharpness", "param_norm"]]
    out = mins.mean().add_prefix("mean ")
    dist = []
    for key, g in table[table["kind"] == "params"].groupby(keys):
        vecs = [s["value"].to_numpy() for _, s in g.sort_values("index").groupby(run)]
        if len(vecs) > 1:
            dist.append((*key, pairwise_distances(vecs)["relative_distance"].mean()))
    if dist:
        dist = pd.DataFrame(dist, columns=[*keys, "mean relative distance"])
        out = out.join(dist.set_index(keys))
    plateaus = table[table["kind"] == "plateau"].reindex(columns=[*keys, "length"])
    plateaus = plateaus.groupby(keys)["length"]
    out = out.join(plateaus.agg(["count", "max"]).add_prefix("plateau steps: "))
    out["plateau steps: count"] = out["plateau steps: count"].fillna(0).astype(np.int64)
    out["plateau steps: max"] = out["plateau steps: max"].astype(np.float64)
    return out.reset_index()

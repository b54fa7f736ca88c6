"""Per-layer gradients and activations of deep random MLPs (Glorot & Bengio 2010, Figs. 6-7)."""

import numpy as np
import pandas as pd

from rnnsim import MLP, layers, plots
from rnnsim.claims import Claim, NotApplicable, Verdict, rows
from rnnsim.experiment import Experiment, main

N_OUT, SAT = 10, 0.05  # readout size; saturated unit: phi'(a) < 5% of sup |phi'|
#: The parameters of one network (with the seed).
AXES = ["activation", "init", "sigma_w", "depth", "width", "batch", "input_scale", "sigma_b"]
#: The activation statistics drawn by layer: column -> row title.
STATS = {"act_mean": "mean of h_l", "act_std": "std of h_l", "frac_saturated": "saturated"}
#: A panel of activation statistics whose lines exceed this in magnitude gets a symmetric log
#: scale (and no bands), so that one exploding init does not flatten the others to zero.
SYMLOG_ABOVE = 1e3
MARKER = 5  # marker size (points) of a line that no other covers
NESTED = (  # what `nest` does, for the captions
    "Lines that coincide (Glorot and orthogonal init, of equal weight variance) are drawn one "
    "inside the other, the one earlier in the legend wider."
)
RATIO = "||dL/dh_0|| / ||dL/dh_L||"
STANDARD = "standard U(±1/√n)"  # Glorot & Bengio's name for init="uniform"


def measure(point: dict, seed: int) -> pd.DataFrame:
    kw = {k: point[k] for k in ("activation", "init", "sigma_w", "sigma_b")}
    net = MLP.random(point["width"], point["depth"], **kw, seed=seed, n_out=N_OUT)
    rng = np.random.default_rng([seed, 7])  # data: its own stream
    x = point["input_scale"] * rng.standard_normal((point["batch"], point["width"]))
    target = rng.standard_normal((point["batch"], N_OUT))
    return layers.layer_statistics(net, x, target, saturation=SAT)


def named(t):  # one legend entry per init: the paper's name, sigma_w named for the gaussian ones
    gaussian = t.init == "gaussian"
    init = np.where(gaussian, "gaussian " + t.sigma_w.astype(str), t.init)
    return t.assign(init=np.where(t.init == "uniform", STANDARD, init))


def deepest(table):  # the largest depth and width
    return table[(table.depth == table.depth.max()) & (table.width == table.width.max())]


def _tag(t, depth=True):
    """Title words for the networks of ``t``: (depth,) width, batch and seeds."""
    words = f"width {t.width.max()}, batch {t.batch.iloc[0]}, {t.seed.nunique()} seeds"
    return f"depth {t.depth.max()}, {words}" if depth else words


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    deep = deepest(table)
    theory = named(layers.gradient_theory(deep, by=["activation", "init", "sigma_w", *AXES[6:]]))
    deep = named(deep)
    palette = plots.hue_palette(deep, "init")  # shared by the figures, whose tables differ
    kw = dict(x="layer", hue="init", style="init", markers=True, col="activation")
    kw.update(row="input_scale", logy=True, palette=palette)
    grad_h = plots.facets(
        deep,
        y="grad_h_norm",
        theory=theory,
        title=f"Backpropagated gradient by input std, {_tag(deep)} (dashed: mean field)",
        **kw,
    )
    figs = {
        "grad_h_by_layer": grad_h,
        "grad_W_by_layer": plots.facets(
            deep, y="grad_W_norm", title=f"Weight gradient by input std, {_tag(deep)}", **kw
        ),
        "activation_stats": activation_stats(deep, palette, f", {_tag(deep)}"),
    }
    wide = table[table.width == table.width.max()]
    ratios = named(layers.end_ratios(wide, [*AXES, "seed"]))
    if ratios["depth"].nunique() > 1:
        figs["input_over_top_by_depth"] = plots.facets(
            ratios,
            y="ratio",
            ylabel=RATIO,
            title=f"Gradient at the input over gradient at the top, {_tag(wide, depth=False)}",
            **{**kw, "x": "depth"},
        )
    for fig in figs.values():  # a marker every few layers, staggered so that lines which
        for ax in fig.axes:  # coincide (Glorot and orthogonal) still show both markers
            for i, line in enumerate(ax.get_lines()):
                every = max(1, len(line.get_xdata()) // 10)
                line.set_markevery((i * max(1, every // 3) % every, every))
                line.set_markersize(MARKER)
            nest(ax)
    return figs


def nest(ax, tol: float = 2.0) -> None:
    """Widen every solid line of ``ax`` that a line drawn after it covers, so that coinciding
    series (Glorot and orthogonal init, whose weight variances are equal) show as nested
    stripes: the line on top inside, each one beneath it as a wider rim of its own colour,
    with a larger marker.

    A line covers another when both have the same x values and lie within ``tol`` points of
    each other, on screen, at every one of them (a line that shows anywhere is left alone).
    Nothing moves: only widths change.
    """
    ax.get_xlim(), ax.get_ylim()  # settle the lazy autoscaling before measuring on screen
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]  # not the dashed theory
    to_points = 72 / ax.figure.dpi
    xy = [
        ax.transData.transform(np.column_stack([ln.get_xdata(), ln.get_ydata()])) * to_points
        for ln in lines
    ]
    beneath = [0] * len(lines)  # how many lines lie on top of each, one inside the other
    for i in reversed(range(len(lines))):
        for j in range(i + 1, len(lines)):
            if len(xy[i]) and xy[i].shape == xy[j].shape and (abs(xy[i] - xy[j]) < tol).all():
                beneath[i] = max(beneath[i], beneath[j] + 1)
    for line, k in zip(lines, beneath, strict=True):
        line.set_linewidth(line.get_linewidth() * (1 + 1.5 * k))
        line.set_markersize(MARKER * (1 + 0.6 * k))


def activation_stats(deep: pd.DataFrame, palette: dict, where: str):
    """Mean, std and saturated fraction of the activations by layer, one row each; one column
    per activation and input std (when several)."""
    deep = deep.assign(panel=deep.activation)
    if "input_scale" in deep and deep.input_scale.nunique() > 1:
        deep = deep.assign(panel=deep.activation + ", input std " + deep.input_scale.astype(str))
    stats = deep.rename(columns=STATS).melt(["panel", "init", "layer"], list(STATS.values()))
    fig = plots.facets(
        stats,
        x="layer",
        y="value",
        hue="init",
        style="init",
        markers=True,
        col="panel",
        row="variable",
        sharey=False,
        ylabel="",
        palette=palette,
        title=f"Activations (saturated: phi' < {SAT:.0%} of its max){where}",
    )
    for ax in fig.axes:  # exploding activations (ReLU, linear, large gains)
        ax.set_title(ax.get_title().replace("panel = ", ""))
        drawn = [np.abs(np.asarray(ln.get_ydata(), float)) for ln in ax.get_lines()]
        if drawn and np.nanmax(np.concatenate(drawn), initial=0.0) > SYMLOG_ABOVE:
            ax.set_yscale("symlog", linthresh=1.0)  # linear within +-1, decades beyond
            ax.yaxis.get_major_locator().set_params(numticks=7)
            for band in list(ax.collections):  # t-intervals of values that differ by decades
                band.remove()  # between seeds reach far below zero: lines only
            ax.relim()
            ax.autoscale_view()
    return fig


def theory_curves(table: pd.DataFrame) -> pd.DataFrame:
    """The mean-field ``||dL/dh_l||`` by layer for every network condition of ``table`` (the
    dashed lines of ``rnnsim plot mlp_depth --x layer --y grad_h_norm --hue init``).

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of the experiment's table (any depths): the :data:`AXES` columns, ``layer`` and
        ``grad_h_norm``.

    Returns
    -------
    pandas.DataFrame
        One row per condition (the :data:`AXES`) and layer ``l = 0..depth``: the axes, ``layer``
        and ``grad_h_norm``, the prediction of :func:`rnnsim.layers.gradient_theory` anchored at
        the condition's measured top layer (geometric mean over its seeds and samples).

    Notes
    -----
    The plot draws one dashed line per colour and panel, so each should hold one condition:
    select the others with ``--where``, ``--col`` or ``--row``, e.g. ``--logy --col activation
    --row input_scale --where "depth == 50"``.
    """
    parts = [layers.gradient_theory(part, by=AXES) for _, part in table.groupby("depth")]
    return pd.concat(parts, ignore_index=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Input end against top, measured and by mean field, one row per network condition.

    Columns: the axes, ``seeds``, ``||dL/dh_0|| / ||dL/dh_L||`` (geometric mean over seeds) with
    its lowest and highest seed (``ratio_min``, ``ratio_max``), the per-layer log-slope
    ``ln(ratio) / depth`` (``log_slope``: mean over seeds, ``log_slope_se``: its standard error;
    nats per layer) and its mean-field value ``log_slope_theory``
    (:func:`rnnsim.layers.gradient_theory`), ``||dL/dW_1|| / ||dL/dW_L||`` of the seeds' mean
    profiles and the mean fraction of saturated units in the top layer.
    """
    ends = layers.end_ratios(table, [*AXES, "seed"])
    ends = ends.assign(log_slope=np.log(ends.ratio) / ends.depth)
    fits = ends.groupby(AXES, sort=False).agg(
        seeds=("seed", "count"),
        log_slope=("log_slope", "mean"),
        log_slope_sd=("log_slope", "std"),
        ratio_min=("ratio", "min"),
        ratio_max=("ratio", "max"),
    )
    theory = pd.concat(  # gradient_theory takes networks of one depth
        layers.gradient_theory(part, by=AXES) for _, part in table.groupby("depth", sort=False)
    )
    theory = theory.groupby(AXES, sort=False).grad_h_norm.agg(lambda g: g.iloc[0] / g.iloc[-1])
    g = table.groupby([*AXES, "layer"], sort=False).mean(numeric_only=True)
    top = g.groupby(level=AXES, sort=False).last()
    depth = fits.index.get_level_values("depth")
    out = pd.DataFrame(
        {
            "seeds": fits.seeds,
            RATIO: np.exp(fits.log_slope * depth),
            "ratio_min": fits.ratio_min,
            "ratio_max": fits.ratio_max,
            "log_slope": fits.log_slope,
            "log_slope_se": fits.log_slope_sd / np.sqrt(fits.seeds),
            "log_slope_theory": np.log(theory.reindex(fits.index)) / depth,
            "||dL/dW_1|| / ||dL/dW_L||": g.xs(1, level="layer").grad_W_norm / top.grad_W_norm,
            "saturated, top layer": top.frac_saturated,
        },
        index=fits.index,  # every column aligned on the conditions, in table order
    )
    return out.reset_index()


def _plain(summary, activation, inits):
    """Rows of ``activation`` and ``inits`` at gain 1 and zero bias: the papers' networks."""
    r = rows(summary, activation=activation, sigma_w=1.0, sigma_b=0.0)
    r = r[r.init.isin(inits)]
    if r.empty:
        raise NotApplicable(f"the run has no {activation} rows with init in {list(inits)}")
    return r


def _span(r, low, high, what):
    """Verdict: every ratio of ``r`` lies in [low, high]; numbers: the extreme rows."""
    lo, hi = r.loc[r[RATIO].idxmin()], r.loc[r[RATIO].idxmax()]
    where = "depth {0.depth}, input std {0.input_scale}, {0.init}"
    numbers = {"lowest ratio": lo[RATIO], "highest ratio": hi[RATIO], "rows": len(r)}
    detail = (
        f"{what} from {lo[RATIO]:.3g} ({where.format(lo)}) to {hi[RATIO]:.3g} "
        f"({where.format(hi)}) over {len(r)} conditions; allowed [{low:g}, {high:g}]"
    )
    passed = bool(((r[RATIO] >= low) & (r[RATIO] <= high)).all())
    return Verdict(passed, {**numbers, "low": low, "high": high}, detail)


def standard_init_vanishes(summary: pd.DataFrame) -> Verdict:
    """tanh, init uniform, depth >= 5: the input-end ratio below 1/10 everywhere."""
    r = _plain(summary, "tanh", ["uniform"])
    r = r[r.depth >= 5]
    if r.empty:
        raise NotApplicable("the run has no tanh network of depth 5 or more with standard init")
    return _span(r, 0.0, 0.1, "||dL/dh_0|| / ||dL/dh_L||")


def normalised_init_keeps_tanh(summary: pd.DataFrame) -> Verdict:
    """tanh, Glorot or orthogonal init, input std <= 0.1, depth <= 50: ratio within 2x."""
    r = _plain(summary, "tanh", ["glorot_uniform", "glorot_normal", "orthogonal"])
    r = r[(r.input_scale <= 0.1) & (r.depth <= 50)]
    if r.empty:
        raise NotApplicable("the run has no such tanh network with input std <= 0.1, depth <= 50")
    return _span(r, 0.5, 2.0, "||dL/dh_0|| / ||dL/dh_L||")


def he_init_keeps_relu(summary: pd.DataFrame) -> Verdict:
    """ReLU, He init, depth <= width / 4: ratio within 2x."""
    r = _plain(summary, "relu", ["he"])
    r = r[r.depth <= r.width / 4]
    if r.empty:
        raise NotApplicable("the run has no ReLU network with He init and depth <= width / 4")
    return _span(r, 0.5, 2.0, "||dL/dh_0|| / ||dL/dh_L||")


SLOPE_TOL = 0.02  # nats per layer


def slope_matches_mean_field(summary: pd.DataFrame) -> Verdict:
    """Every condition with width >= 256 and depth >= 20: |measured - mean-field log-slope| <= tol."""
    r = rows(summary, sigma_b=0.0)
    r = r[(r.width >= 256) & (r.depth >= 20)]
    if r.empty:
        raise NotApplicable("the run has no network of width >= 256 and depth >= 20")
    gap = (r.log_slope - r.log_slope_theory).abs()
    worst = r.loc[gap.idxmax()]
    detail = (
        f"largest gap {gap.max():.4f} nats/layer ({worst.activation}, {worst.init}, depth "
        f"{worst.depth}, input std {worst.input_scale}: measured {worst.log_slope:.4f}, mean "
        f"field {worst.log_slope_theory:.4f}) over {len(r)} conditions; allowed {SLOPE_TOL}"
    )
    numbers = {"largest gap": gap.max(), "median gap": gap.median(), "tolerance": SLOPE_TOL}
    return Verdict(bool(gap.max() <= SLOPE_TOL), numbers, detail)


CLAIMS = [
    Claim(
        "With the standard initialisation U(±1/√n), the back-propagated gradient of a deep tanh "
        "network shrinks toward the input: at the input layer it is below 1/10 of the top "
        "layer's (depth ≥ 5).",
        standard_init_vanishes,
        source="Glorot & Bengio 2010, sec. 4.2 (eq. 1)",
        figure="grad_h_by_layer",
    ),
    Claim(
        "Normalised (Glorot) and orthogonal initialisation keep the tanh gradient within a factor "
        "2 between input and top layer, for inputs in tanh's linear range (input std ≤ 0.1) up to "
        "depth 50.",
        normalised_init_keeps_tanh,
        source="Glorot & Bengio 2010, sec. 4.2 (eq. 16); Saxe et al. 2014",
        figure="grad_h_by_layer",
    ),
    Claim(
        "He initialisation keeps the ReLU gradient within a factor 2 between input and top layer "
        "(depth ≤ width / 4, where finite-width spread stays small).",
        he_init_keeps_relu,
        source="He et al. 2015, sec. 2.2",
        figure="grad_h_by_layer",
    ),
    Claim(
        f"The measured per-layer log-slope ln(||dL/dh_0|| / ||dL/dh_L||) / L lies within "
        f"{SLOPE_TOL} nats/layer of the mean-field prediction (width ≥ 256, depth ≥ 20).",
        slope_matches_mean_field,
        source="Schoenholz et al. 2017, sec. 5; Poole et al. 2016",
        figure="grad_h_by_layer",
    ),
]

EXPERIMENT = Experiment(
    name="mlp_depth",
    description="Per-layer gradient norms and activation statistics of deep MLPs by init, "
    "activation, depth, width and input scale (Glorot & Bengio 2010).",
    grid={
        "activation": ["tanh", "sigmoid", "relu", "linear"],
        "init": ["uniform", "glorot_uniform", "glorot_normal", "he", "orthogonal", "gaussian"],
        "sigma_w": [1.0, 0.5, 1.5, 2.0],
        "depth": [50, 10, 20, 100, 200],
        "width": [256, 64],
        "batch": [64],
        "input_scale": [1.0, 0.1],
        "sigma_b": [0.0],
    },
    quick={
        "activation": ["tanh", "relu"],
        "init": ["uniform", "glorot_uniform", "he", "orthogonal"],
        "depth": [10, 50],
        "input_scale": [0.1, 1.0],
    },
    # sigma_w (the gain of every init) varies for the gaussian init only
    keep=lambda p: p["init"] == "gaussian" or p["sigma_w"] == 1.0,
    measure=measure,
    figures=figures,
    summary=summary,
    theory=theory_curves,
    claims=CLAIMS,
    limits={
        "sigma_w": (0.0, None),
        "depth": (1, None),
        "width": (1, None),
        "batch": (1, None),
        "input_scale": (0.0, None),
        "sigma_b": (0.0, None),
    },
    captions={
        "grad_h_by_layer": "||dL/dh_l|| through the layers, one panel per activation and input "
        "std: standard init falls by orders of magnitude toward the input, Glorot and orthogonal "
        "init stay level for tanh with small inputs, He init for ReLU; dashed: mean field. "
        + NESTED,
        "grad_W_by_layer": "||dL/dW_l|| through the layers: level across layers for every init, "
        "but at an overall scale that collapses with standard init.",
        "activation_stats": "Mean, spread and saturated fraction of the activations by layer: "
        "with standard init the tanh activations shrink toward zero with depth.",
        "input_over_top_by_depth": "The gradient at the input over the gradient at the top "
        "against depth: geometric decay with standard init, a slow decline with Glorot init "
        "for inputs of std 1, flat with He init for ReLU. " + NESTED,
    },
    seeds=3,
    quick_seeds=3,
    version="3",  # 3: batch, input_scale and sigma_b axes; summary per condition
    notes="""Glorot & Bengio 2010: 'uniform' is their standard init U[-1/sqrt(n), 1/sqrt(n)]
    (n Var W = 1/3), glorot_* their normalised one. With standard init ||dL/dh_l|| shrinks
    geometrically toward the input for every activation. Normalised/orthogonal init keeps it
    nearly flat for tanh when the inputs are small (tanh's linear range); with inputs of std 1
    the pre-activation variance q_l decays like 1/(2l) and mean field predicts a slow decline
    (~ L^(-1/2)), which is what is measured. He init keeps ReLU level; no init here rescues the
    sigmoid (phi' <= 1/4). Dashed: mean-field prediction prod_k sqrt(sigma_w^2 E[phi'(a_k)^2])
    with Var a_k from the length map (Poole et al. 2016, Schoenholz et al. 2017). sigma_w is the
    gain of every init; it varies only for 'gaussian' (N(0, sigma_w^2/n)).""",
)

if __name__ == "__main__":
    main(EXPERIMENT)

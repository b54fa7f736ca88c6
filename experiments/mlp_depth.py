"""Per-layer gradients and activations of deep random MLPs (Glorot & Bengio 2010, Figs. 6-7)."""

import numpy as np
import pandas as pd

from rnnsim import MLP, layers, plots
from rnnsim.experiment import Experiment, main

BATCH, N_OUT, SAT = 64, 10, 0.05  # saturated unit: phi'(a) < 5% of sup |phi'|
#: The activation statistics drawn by layer: column -> row title.
STATS = {"act_mean": "mean of h_l", "act_std": "std of h_l", "frac_saturated": "saturated"}
#: A panel of activation statistics whose lines exceed this in magnitude gets a symmetric log
#: scale (and no bands), so that one exploding init does not flatten the others to zero.
SYMLOG_ABOVE = 1e3


def measure(point: dict, seed: int) -> pd.DataFrame:
    kw = {k: point[k] for k in ("activation", "init", "sigma_w")}
    net = MLP.random(point["width"], point["depth"], **kw, seed=seed, n_out=N_OUT)
    rng = np.random.default_rng([seed, 7])  # data: its own stream
    x, target = rng.standard_normal((BATCH, point["width"])), rng.standard_normal((BATCH, N_OUT))
    return layers.layer_statistics(net, x, target, saturation=SAT)


def named(t):  # one legend entry per init, sigma_w named for the gaussian ones
    gaussian = t.init == "gaussian"
    return t.assign(init=np.where(gaussian, "gaussian " + t.sigma_w.astype(str), t.init))


def deepest(table):  # the largest depth and width
    return table[(table.depth == table.depth.max()) & (table.width == table.width.max())]


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    deep, depth, width = named(deepest(table)), table.depth.max(), table.width.max()
    theory = named(layers.gradient_theory(deepest(table)))
    palette = plots.hue_palette(deep, "init")  # shared by the figures, whose tables differ
    kw = dict(x="layer", hue="init", col="activation", col_wrap=2, logy=True, palette=palette)
    where = f", depth {depth}, width {width}"
    grad_h = plots.facets(
        deep,
        y="grad_h_norm",
        title=f"Backpropagated gradient{where} (dashed: mean-field theory)",
        **kw,
    )
    panels = {ax.get_title(): ax for ax in grad_h.axes}
    for (activation, _), line in theory.groupby(["activation", "init"], sort=False):
        ax = panels[f"activation = {activation}"]
        ax.plot(line["layer"], line["grad_h_norm"], ls="--", lw=1, color="black", zorder=5)
    figs = {
        "grad_h_by_layer": grad_h,
        "grad_W_by_layer": plots.facets(
            deep, y="grad_W_norm", title=f"Weight gradient{where}", **kw
        ),
        "activation_stats": activation_stats(deep, palette, where),
    }
    by = ["activation", "init", "sigma_w", "depth", "seed"]  # ratios drawn for several depths
    ratios = named(layers.end_ratios(table[table.width == width], by))
    if ratios["depth"].nunique() > 1:
        figs["input_over_top_by_depth"] = plots.facets(
            ratios,
            y="ratio",
            ylabel="||dL/dh_0|| / ||dL/dh_L||",
            title=f"Gradient at the input over gradient at the top, width {width}",
            **{**kw, "x": "depth"},
        )
    return figs


def activation_stats(deep: pd.DataFrame, palette: dict, where: str):
    """Mean, std and saturated fraction of the activations by layer, one row each."""
    stats = deep.rename(columns=STATS).melt(["activation", "init", "layer"], list(STATS.values()))
    fig = plots.facets(
        stats,
        x="layer",
        y="value",
        hue="init",
        col="activation",
        row="variable",
        sharey=False,
        ylabel="",
        palette=palette,
        title=f"Activations (saturated: phi' < {SAT:.0%} of its max){where}",
    )
    for ax in fig.axes:  # exploding activations (ReLU, linear, large gains)
        drawn = [np.abs(np.asarray(ln.get_ydata(), float)) for ln in ax.get_lines()]
        if drawn and np.nanmax(np.concatenate(drawn), initial=0.0) > SYMLOG_ABOVE:
            ax.set_yscale("symlog", linthresh=1.0)  # linear within +-1, decades beyond
            ax.yaxis.get_major_locator().set_params(numticks=7)
            for band in list(ax.collections):  # t-intervals of values that differ by decades
                band.remove()  # between seeds reach far below zero: lines only
            ax.relim()
            ax.autoscale_view()
    return fig


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Input end against top of the mean layer profiles of the deepest, widest networks.

    One row per condition (activation, init; depth and width carried along): the ratios of the
    seeds' mean ||dL/dh_0|| / ||dL/dh_L||, ||dL/dW_1|| / ||dL/dW_L|| and the mean fraction of
    saturated units in the top layer L.
    """
    by = ["activation", "init", "depth", "width"]
    g = named(deepest(table)).groupby([*by, "layer"], sort=False).mean(numeric_only=True)
    top, inp = g.groupby(level=by, sort=False).last(), g.xs(0, level="layer")
    out = pd.DataFrame(
        {
            "||dL/dh_0|| / ||dL/dh_L||": inp.grad_h_norm / top.grad_h_norm,
            "||dL/dW_1|| / ||dL/dW_L||": g.xs(1, level="layer").grad_W_norm / top.grad_W_norm,
            "saturated, top layer": top.frac_saturated,
        }
    )
    return out.reset_index()


EXPERIMENT = Experiment(
    name="mlp_depth",
    description="Per-layer gradient norms and activation statistics of deep MLPs by init, "
    "activation, depth and width (Glorot & Bengio 2010).",
    grid={
        "activation": ["tanh", "sigmoid", "relu", "linear"],
        "init": ["uniform", "glorot_uniform", "glorot_normal", "he", "orthogonal", "gaussian"],
        "sigma_w": [1.0, 0.5, 1.5, 2.0],
        "depth": [20, 50, 100, 200],
        "width": [64, 256],
    },
    quick={
        "activation": ["tanh", "sigmoid", "relu", "linear"],
        "init": ["uniform", "glorot_uniform", "he", "orthogonal"],
        "depth": [50],
    },
    # sigma_w (the gain of every init) varies for the gaussian init only
    keep=lambda p: p["init"] == "gaussian" or p["sigma_w"] == 1.0,
    measure=measure,
    figures=figures,
    summary=summary,
    seeds=3,
    quick_seeds=3,
    version="2",  # 2: norms scaled against underflow
    notes="""Glorot & Bengio 2010: 'uniform' is their standard init U[-1/sqrt(n), 1/sqrt(n)]
    (n Var W = 1/3), glorot_* their normalised one. With standard init ||dL/dh_l|| shrinks
    geometrically toward the input for every activation; normalised/orthogonal init keeps it
    nearly flat for tanh and linear units, He init for ReLU, and no init here rescues the
    sigmoid (phi' <= 1/4). ||dL/dW_l|| stays level across layers (activations shrink as
    gradients grow), yet with standard init its overall scale collapses with depth. Dashed:
    mean-field prediction prod_k sqrt(sigma_w^2 E[phi'(a_k)^2]) with Var a_k from the length
    map (Poole et al. 2016, Schoenholz et al. 2017). sigma_w is the gain of every init; it
    varies only for 'gaussian' (N(0, sigma_w^2/n)). Quick grid: under a minute; full grid:
    about 3 min on 2 cores (depth 200 x width 256 dominates).""",
)

if __name__ == "__main__":
    main(EXPERIMENT)

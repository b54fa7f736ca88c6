"""The cliff of Pascanu, Mikolov & Bengio 2013 (section 2.3, eq. 8, Fig. 6) and gradient clipping.

One logistic unit, h_0 = sigmoid(0.5), h_t = sigmoid(w h_{t-1} + b), E = (h_T - 0.7)^2: the loss
surface over (w, b), the wall located exactly (bisection to one ulp, peak |dE/db| by golden
section, `rnnsim.cliff.cliff_line`), the fixed-point theory overlaid, and gradient descent
started near the wall with and without norm clipping.
"""

import numpy as np
import pandas as pd

from rnnsim import cliff as L
from rnnsim import plots
from rnnsim.cliff import basin_boundary, sigmoid
from rnnsim.experiment import Experiment, main

W_RANGE, B_RANGE, X0, TARGET = (-4.0, 12.0), (-10.0, 4.0), 0.5, 0.7
# starts just off the wall: w, and the offset in b from the basin boundary x0 - w h0 of h0
W_START, DB_START = np.array([5.0, 6.0, 5.5]), np.array([-0.5, 0.5, -0.2])
LR, CLIP, STEPS = 1.0, 0.5, 60


def measure(point: dict, seed: int) -> pd.DataFrame:
    T, n = point["T"], point["n_grid"]
    w, b = np.linspace(*W_RANGE, n), np.linspace(*B_RANGE, n)
    surf = L.cliff_surface(w, b, x0=X0, T=T, target=TARGET)[["w", "b", "loss", "grad_norm"]]
    line = L.cliff_line(np.linspace(0.5, W_RANGE[1], 116), B_RANGE, n_b=n, x0=X0, T=T)
    line = line[["w", "b_cliff", "peak_abs_dE_db", "grid_max_abs_dE_db", "resolved"]]
    theory = L.cliff_theory(np.linspace(*W_RANGE, 321), x0=X0, T=T, target=TARGET)
    theory = theory.drop(columns=["x0", "T", "target", "source"])
    starts = zip(W_START, basin_boundary(W_START, sigmoid(X0))["b"] + DB_START, strict=True)
    traj = L.cliff_trajectories(starts, lr=LR, clips=[None, CLIP], n_steps=STEPS, x0=X0, T=T)
    traj = traj.drop(columns=["lr", "x0", "T", "target"]).astype({"start": str})
    traj["clipping"] = np.where(traj["clip"].isna(), "none", f"norm {CLIP}")
    parts = {"surface": surf, "cliff": line, "theory": theory, "trajectory": traj}
    return pd.concat([p.assign(kind=k) for k, p in parts.items()], ignore_index=True)


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    t0 = 50 if (table["T"] == 50).any() else table["T"].iloc[0]
    t = table[table["T"] == t0]
    surf, th, cl, tr = (t[t["kind"] == k] for k in ("surface", "theory", "cliff", "trajectory"))
    surface = plots.cliff_surface(
        surf,
        cl,
        th,
        tr,
        xlim=W_RANGE,
        ylim=B_RANGE,
        colorbar_label=f"loss E = (h_T - {TARGET})^2, T = {t0}",
        title=f"Single-unit loss surface, lr = {LR}: unclipped steps thrown off the cliff",
    )
    steepness = steepness_figure(table[table["kind"] == "cliff"], table[table["kind"] == "theory"])
    first = tr.groupby(["start", "clipping"])[["w", "b"]].transform("first")
    tr = tr.assign(distance=np.hypot(tr["w"] - first["w"], tr["b"] - first["b"]))
    trajectories = plots.facets(
        tr.melt(id_vars=["start", "clipping", "step"], value_vars=["loss", "distance"]),
        x="step",
        y="value",
        hue="clipping",
        style="start",
        row="variable",
        sharey=False,
        logy=False,
        xlabel="gradient-descent step",
        ylabel="value",
        title=f"GD near the cliff (T = {t0}, lr = {LR}): loss and distance from the start",
    )
    return {"surface": surface, "cliff_steepness": steepness, "trajectories": trajectories}


def steepness_figure(wall: pd.DataFrame, theory: pd.DataFrame):
    """Peak |dE/db| across the cliff against w: exact, sampled on the grid, and on the boundary.

    The exact peaks of resolved walls (wider than one ulp, so that the peak is meaningful) and
    the sampled maxima of all walls are two hues, T the line style; |dE/db| on the basin boundary
    is one dashed line per T (at most three, in shades of grey).
    """
    exact = wall[wall["resolved"].astype(bool)].assign(what="exact peak (walls wider than 1 ulp)")
    sampled = wall.assign(peak_abs_dE_db=wall["grid_max_abs_dE_db"])
    steep = pd.concat([exact, sampled.assign(what="max over the grid's b samples")])
    fig = plots.line_with_band(
        steep,
        x="w",
        y="peak_abs_dE_db",
        hue="what",
        style="T",
        logy=True,
        title="Steepness of the wall: exact vs sampled on the grid",
        xlabel="recurrent weight w",
        ylabel="max |dE/db| across the cliff",
    )
    for (T, g), grey in zip(theory.groupby("T"), ["0.0", "0.35", "0.6"], strict=False):
        text = f"|dE/db| on the basin boundary (exact), T={T}"
        plots.theory_line(fig.axes[0], g["w"], g["boundary_abs_dE_db"], text, color=grey)
    return fig


EXPERIMENT = Experiment(
    name="cliff",
    description="The single-unit cliff of Pascanu et al. 2013 (Fig. 6): exact wall, theory, "
    "gradient descent with and without clipping.",
    grid={"T": [50, 25, 100], "n_grid": [500]},
    quick={"T": [50], "n_grid": [200]},
    measure=measure,
    figures=figures,
    seeds=1,
    quick_seeds=1,
    notes="""The wall is the basin boundary b = x0 - w h0 of the unstable fixed point (derived;
    dashed red): across it h_T jumps between the two attractors, within ~ (w h0 (1-h0))^-T in b,
    below one ulp for w >~ 8 at T = 50. Grid samples miss it entirely (steepness figure).
    Unclipped gradient descent that lands on the wall is catapulted far away onto the upper
    plateau; with norm clipping (Algorithm 1) the step stays short and descent continues.""",
)

if __name__ == "__main__":
    main(EXPERIMENT)

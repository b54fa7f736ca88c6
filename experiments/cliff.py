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
from rnnsim.claims import Claim, Verdict, rows
from rnnsim.cliff import basin_boundary, sigmoid
from rnnsim.experiment import Experiment, main

W_RANGE, B_RANGE, X0, TARGET = (-4.0, 12.0), (-10.0, 4.0), 0.5, 0.7
W_WALL = 0.5  # the wall is searched for on n_w values of w from W_WALL to W_RANGE[1]
# starts just off the wall: w, and the offset in b from the basin boundary x0 - w h0 of h0
W_START, DB_START = np.array([5.0, 6.0, 5.5]), np.array([-0.5, 0.5, -0.2])
THROWN = 5.0  # a single step longer than this (in the (w, b) plane) throws descent off


def measure(point: dict, seed: int) -> pd.DataFrame:
    T, n = point["T"], point["n_grid"]
    w, b = np.linspace(*W_RANGE, n), np.linspace(*B_RANGE, n)
    surf = L.cliff_surface(w, b, x0=X0, T=T, target=TARGET)[["w", "b", "loss", "grad_norm"]]
    line = L.cliff_line(np.linspace(W_WALL, W_RANGE[1], point["n_w"]), B_RANGE, n_b=n, x0=X0, T=T)
    line = line[["w", "b_cliff", "peak_abs_dE_db", "grid_max_abs_dE_db", "resolved"]]
    # a wall exists where h0 can sit on the unstable fixed point (w h0 (1 - h0) > 1)
    boundary = basin_boundary(line["w"], sigmoid(X0))
    line = line.assign(b_basin_boundary=boundary["b"].to_numpy(), wall=boundary["valid"].to_numpy())
    theory = L.cliff_theory(np.linspace(*W_RANGE, 321), x0=X0, T=T, target=TARGET)
    theory = theory.drop(columns=["x0", "T", "target", "source"])
    starts = zip(W_START, basin_boundary(W_START, sigmoid(X0))["b"] + DB_START, strict=True)
    lr, clip = point["lr"], point["clip"]
    traj = L.cliff_trajectories(
        starts, lr=lr, clips=[None, clip], n_steps=point["steps"], x0=X0, T=T
    )
    traj = traj.drop(columns=["lr", "x0", "T", "target"]).astype({"start": str})
    traj["clipping"] = np.where(traj["clip"].isna(), "none", f"norm {clip:g}")
    parts = {
        "surface": surf,
        "cliff": line,
        "theory": theory,
        "trajectory": traj.drop(columns="clip"),
    }
    return pd.concat([p.assign(kind=k) for k, p in parts.items()], ignore_index=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The wall location per w, and how far each descent was thrown, per T (one row each).

    Wall rows (``kind = "wall"``): ``b_half`` where h_T = 1/2 (bisection), ``wall`` (the map is
    bistable there: a basin boundary exists), ``b_wall`` (``b_half`` where the wall exists, what
    the surface figure draws), ``b_basin_boundary`` and ``offset`` = ``b_wall - b_basin_boundary``.
    Descent rows (``kind = "descent"``): per start and clipping, ``longest_step`` (in the (w, b)
    plane), ``final_distance`` from the start, ``loss_start`` and ``loss_end``.
    """
    axes = ["T", "n_grid", "n_w", "lr", "clip", "steps"]
    wall = table[table["kind"] == "cliff"]
    wall = wall[[*axes, "w", "b_cliff", "wall", "b_basin_boundary"]].rename(
        columns={"b_cliff": "b_half"}
    )
    wall["wall"] = wall["wall"].astype(bool)
    wall["b_wall"] = wall["b_half"].where(wall["wall"])
    wall["offset"] = wall["b_wall"] - wall["b_basin_boundary"]
    tr = table[table["kind"] == "trajectory"].sort_values("step")
    first = tr.groupby([*axes, "start", "clipping"])[["w", "b", "loss"]].transform("first")
    tr = tr.assign(
        distance=np.hypot(tr["w"] - first["w"], tr["b"] - first["b"]), loss0=first["loss"]
    )
    descent = (
        tr.groupby([*axes, "start", "clipping"])
        .agg(
            longest_step=("step_length", "max"),
            final_distance=("distance", "last"),
            loss_start=("loss0", "first"),
            loss_end=("loss", "last"),
        )
        .reset_index()
    )
    return pd.concat([wall.assign(kind="wall"), descent.assign(kind="descent")], ignore_index=True)


def wall_on_boundary(s: pd.DataFrame) -> Verdict:
    wall = rows(s, kind="wall")
    tol = 1.0 / wall["T"]  # the crossing's distance decays like 1/T where the wall begins
    exists = wall["wall"].astype(bool)
    far = (wall["offset"].abs() > tol) | (exists & wall["b_wall"].isna())
    stray = (~exists & wall["b_wall"].notna()).sum()  # drawn where no wall exists
    onset = wall.loc[exists, "w"].min()
    worst = wall.loc[exists, "offset"].abs().max()
    return Verdict(
        bool(exists.any() and not far.any() and stray == 0),
        {"w_onset": onset, "walls": int(exists.sum()), "max_offset": worst, "drawn_without": stray},
        f"wall at {int(exists.sum())} of {len(wall)} w (from w = {onset:.2f}); max |b_wall - "
        f"basin boundary| = {worst:.2g} (tolerance 1/T = {tol.min():.3g}); drawn at {stray} w "
        "without a wall",
    )


def clipping_keeps_descent(s: pd.DataFrame) -> Verdict:
    d = rows(s, kind="descent", T=50)  # Pascanu's T: at 100 the wall is thinner than an ulp
    free, clipped = d[d["clipping"] == "none"], d[d["clipping"] != "none"]
    thrown = int((free["longest_step"] > THROWN).sum())
    held = int((clipped["longest_step"] <= THROWN).sum())
    return Verdict(
        bool(len(free) and len(clipped) and thrown == len(free) and held == len(clipped)),
        {
            "unclipped_thrown": thrown,
            "unclipped": len(free),
            "clipped_held": held,
            "clipped": len(clipped),
            "longest_unclipped_step": free["longest_step"].min(),
            "longest_clipped_step": clipped["longest_step"].max(),
        },
        f"unclipped: {thrown} of {len(free)} starts thrown by a step > {THROWN:g} (shortest such "
        f"longest step {free['longest_step'].min():.1f}); clipped: {held} of {len(clipped)} "
        f"never step beyond {THROWN:g} (longest {clipped['longest_step'].max():.2f}); mean final "
        f"loss {free['loss_end'].mean():.3f} unclipped, {clipped['loss_end'].mean():.3f} clipped",
    )


def _thrown(tr: pd.DataFrame) -> str:
    """'k of m unclipped and j of m clipped starts thrown by one step > THROWN', from the data."""
    longest = tr.groupby(["clipping", "start"])["step_length"].max() > THROWN
    parts = [
        f"{int(longest[c].sum())} of {longest[c].size} {'unclipped' if c == 'none' else c}"
        for c in longest.index.unique("clipping")
    ]
    return " and ".join(parts) + f" starts thrown by a step > {THROWN:g}"


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    t0 = 50 if (table["T"] == 50).any() else table["T"].iloc[0]
    lr, clip, steps = (table[c].iloc[0] for c in ("lr", "clip", "steps"))
    one = (table["T"] == t0) & (table["lr"] == lr) & (table["clip"] == clip)
    t = table[one & (table["steps"] == steps)]
    surf, th, cl, tr = (t[t["kind"] == k] for k in ("surface", "theory", "cliff", "trajectory"))
    surface = plots.cliff_surface(
        surf,
        cl[cl["wall"].astype(bool)],  # below w h0 (1 - h0) = 1 there is no wall to draw
        th,
        tr,
        xlim=W_RANGE,
        ylim=B_RANGE,
        colorbar_label=f"loss E = (h_T - {TARGET})^2, T = {t0}",
        title=f"Single-unit loss surface, T = {t0}, lr = {lr:g}, {steps} steps:\n{_thrown(tr)}",
    )
    walls = table[(table["kind"] == "cliff") & table["wall"].astype(bool)]
    steepness = steepness_figure(walls, table[table["kind"] == "theory"])
    return {
        "surface": surface,
        "cliff_steepness": steepness,
        "trajectories": trajectories_figure(table[table["kind"] == "trajectory"]),
    }


def trajectories_figure(tr: pd.DataFrame):
    """Loss and distance from the start of every descent; a column of panels per (T, lr, steps)."""
    varying = [c for c in ("T", "lr", "steps") if tr[c].nunique() > 1]
    col = ", ".join(varying) if varying else None
    if col:
        tr = tr.assign(**{col: tr[varying].astype(str).agg(", ".join, axis=1)})
    keys = ["start", "clipping", *([col] if col else [])]
    first = tr.sort_values("step").groupby(keys)[["w", "b"]].transform("first")
    tr = tr.assign(distance=np.hypot(tr["w"] - first["w"], tr["b"] - first["b"]))
    fixed = ", ".join(f"{c} = {tr[c].iloc[0]:g}" for c in ("T", "lr", "steps") if c not in varying)
    return plots.facets(
        tr.melt(id_vars=[*keys, "step"], value_vars=["loss", "distance"]),
        x="step",
        y="value",
        hue="clipping",
        style="start",
        row="variable",
        col=col,
        sharey=False,
        logy=False,
        xlabel="gradient-descent step",
        ylabel="value",
        title=f"GD started beside the wall ({fixed}): loss and distance from the start\n"
        f"{_thrown(tr)}",
    )


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
    plots.legend_outside(fig.axes[0])
    fig.set_size_inches(9.5, 4.0)  # room for the legend beside the axes
    return fig


EXPERIMENT = Experiment(
    name="cliff",
    description="The single-unit cliff of Pascanu et al. 2013 (Fig. 6): exact wall, theory, "
    "gradient descent with and without clipping.",
    grid={
        "T": [50, 25, 100],
        "n_grid": [500],
        "n_w": [47],
        "lr": [1.0],
        "clip": [0.5],
        "steps": [60],
    },
    quick={"T": [50], "n_grid": [200]},
    limits={
        "T": (1, None),
        "n_grid": (3, None),
        "n_w": (1, None),
        "lr": (0.0, None),
        "clip": (0.0, None),
        "steps": (1, None),
    },
    measure=measure,
    figures=figures,
    summary=summary,
    seeds=1,
    quick_seeds=1,
    version="2",
    claims=[
        Claim(
            "The wall lies on the basin boundary wherever the wall exists (within 1/T in b), and "
            "is drawn only there.",
            wall_on_boundary,
            source="Pascanu et al. 2013, sec. 2.3 and Fig. 6; Doya 1993",
            figure="surface",
        ),
        Claim(
            "At T = 50, unclipped gradient descent started beside the wall is thrown off (a step "
            f"> {THROWN:g}), while norm-clipped descent is not.",
            clipping_keeps_descent,
            source="Pascanu et al. 2013, sec. 3.2, Algorithm 1 and Fig. 6",
            figure="trajectories",
        ),
    ],
    captions={
        "surface": "The loss over (w, b): the wall (white) follows the dashed basin boundary "
        "where the unit is bistable; unclipped descent (magenta) is catapulted off it, clipped "
        "descent (cyan) stays.",
        "cliff_steepness": "The steepest |dE/db| across the wall against w: it grows like "
        "(w h0 (1 - h0))^T, far beyond what samples of a grid in b ever see.",
        "trajectories": "Loss and distance from the start of each descent: unclipped runs jump "
        "far in one step, clipped ones move at most lr x clip per step.",
    },
    notes="""The wall is the basin boundary b = x0 - w h0 of the unstable fixed point (derived;
    dashed red), which exists for w h0 (1 - h0) > 1 (w > 4.26): across it h_T jumps between the
    two attractors, within ~ (w h0 (1-h0))^-T in b, below one ulp for w >~ 8 at T = 50. Below the
    onset h_T = 1/2 is crossed smoothly and no wall is drawn. Grid samples miss the wall entirely
    (steepness figure). Unclipped gradient descent that lands on the wall is catapulted far away
    onto the upper plateau; with norm clipping (Algorithm 1) the step stays short and descent
    continues. That claim is judged at Pascanu's T = 50: at T = 25 the wall is gentle enough that
    some unclipped steps stay short, and at T = 100 it is thinner than one ulp of b beside the
    starts, so descent never lands on it within 60 steps (the summary shows both).""",
)

if __name__ == "__main__":
    main(EXPERIMENT)

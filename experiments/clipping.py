"""Gradient clipping on long-term dependency tasks (Pascanu, Mikolov & Bengio 2013, §3.2 and §4).

A vanilla tanh RNN (32 units, W ~ N(0, gain^2/n) with gain 1.6: beyond the edge of chaos, so
that the gradient of the loss at the last step with respect to early states grows with the lag),
plain SGD at lr 0.1, adding and 2-symbol temporal order as Pascanu et al. define them
(`rnnsim.tasks`, variant "pascanu2013"). Per run: solved (under 1 % of 10,000 fresh sequences
wrong, checked when a held-out batch of 500 passes, every 100 updates); diverged (non-finite
loss, or training loss > 100 x chance). Every knob is an axis: ``lr``, ``clip_norm`` and
``clip_value`` (the thresholds of the two kinds of clipping), ``gain``, ``n_hidden``,
``batch_size``, ``updates``, ``optimizer``, ``T`` and ``task``.
"""

from functools import partial

import pandas as pd
from matplotlib import pyplot as plt

from rnnsim import Ensemble, optim, plots, tasks, train
from rnnsim.claims import Claim, NotApplicable, Verdict, rows
from rnnsim.experiment import Experiment, main
from rnnsim.train import split_members, success_rates, wilson_interval

KEEP = ["step", "loss", "grad_norm", "grad_norm_clipped", "clipped", "diverged", "error_rate"]
#: the axes that define one training setting (besides task, T and clip)
KNOBS = ["lr", "clip_norm", "clip_value", "gain", "n_hidden", "batch_size", "updates", "optimizer"]
CLIP_LABELS = {"none": "no clipping", "norm": "norm clipping", "value": "value clipping"}


def clip_spec(point: dict):
    """The `rnnsim.train` clip argument of a grid point: None, ("norm", t) or ("value", t)."""
    kind = point["clip"]
    return None if kind == "none" else (kind, point[f"clip_{kind}"])


def measure(point: dict, seed: int) -> pd.DataFrame:
    return measure_seeds(point, [seed])[0]


def measure_seeds(point: dict, seeds: list) -> list:
    """The runs of ``seeds`` at one grid point, trained at once as one ensemble (each member's
    table is the single run's with its seed, bit for bit)."""
    task = tasks.make(point["task"], point["T"], variant="pascanu2013")
    ensemble = Ensemble.random(
        len(seeds),
        task.d_in,
        point["n_hidden"],
        task.d_out,
        init="gaussian",
        gains=point["gain"],
        seeds=seeds,
    )
    _, log = train(
        ensemble,
        task,
        optimizer=point["optimizer"],
        lr=point["lr"],
        clip=clip_spec(point),
        steps=point["updates"],
        seed=list(seeds),
        batch_size=point["batch_size"],
        eval_every=100,
        eval_batch=500,
        max_loss=100 * task.baseline,
        progress=False,
    )
    # the run's outcome on every row: solved (confirmed success) replaces the per-step column
    return [
        log[KEEP].assign(solved=bool(log.attrs["solved"]), run_diverged=bool(log.attrs["diverged"]))
        for log in split_members(log)
    ]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (task, T, clip, knobs): runs, solved and diverged counts, success and divergence
    rates with 95 % Wilson intervals, median updates run, the fraction of updates that clipping
    changed and the median over runs of the largest gradient norm (before clipping)."""
    by = ["task", "T", "clip", *KNOBS]
    out = success_rates(table, by=by)
    out["divergence_lo"], out["divergence_hi"] = wilson_interval(out["diverged"], out["runs"])
    per_run = table.groupby([*by, "seed"]).agg(
        clipped=("clipped", "mean"), max_grad_norm=("grad_norm", "max")
    )
    acts = per_run.groupby(by).agg(
        clipped_fraction=("clipped", "mean"), median_max_grad_norm=("max_grad_norm", "median")
    )
    return out.merge(acts.reset_index(), on=by)


# ------------------------------------------------------------------------------------------
# claims
# ------------------------------------------------------------------------------------------


def _one_setting(s: pd.DataFrame) -> pd.DataFrame:
    """The summary when every knob has one value; NotApplicable naming the knob that varies."""
    for knob in KNOBS:
        if knob in s and s[knob].nunique() > 1:
            raise NotApplicable(f"the run varies {knob}; the claims compare one setting")
    return s


def _rate(s: pd.DataFrame, rate: str, **where) -> tuple[float, str]:
    """A rate of the one row selected by ``where``, and "k/n [lo, hi]" for the verdict."""
    r = rows(s, **where)
    if len(r) != 1:
        raise ValueError(f"expected one row with {where}, found {len(r)}")
    r = r.iloc[0]
    k = {"success": "solved", "divergence": "diverged"}[rate]
    text = f"{int(r[k])}/{int(r['runs'])} [{r[f'{rate}_lo']:.2f}, {r[f'{rate}_hi']:.2f}]"
    return float(r[f"{rate}_rate"]), text


def divergence_grows_with_T(s: pd.DataFrame) -> Verdict:
    """On the adding task, unclipped SGD diverges more often at the longest T than at the
    shortest."""
    s = _one_setting(rows(s, task="adding", clip="none"))
    lo_T, hi_T = int(s["T"].min()), int(s["T"].max())
    if lo_T == hi_T:
        raise NotApplicable("the run has one T")
    short, short_text = _rate(s, "divergence", T=lo_T)
    long, long_text = _rate(s, "divergence", T=hi_T)
    return Verdict(
        long > short,
        {f"divergence_T{lo_T}": short, f"divergence_T{hi_T}": long},
        f"unclipped divergence (95 % Wilson CI): T = {lo_T}: {short_text}; T = {hi_T}: {long_text}",
    )


def _at_longest_T(s: pd.DataFrame, rate: str):
    """Per task: (task, T max, norm-clipped rate, unclipped rate, text) at that task's longest T."""
    s = _one_setting(s)
    out = []
    for task in dict.fromkeys(rows(s, clip="none")["task"]):
        T = int(rows(s, task=task)["T"].max())
        norm, norm_text = _rate(s, rate, task=task, T=T, clip="norm")
        none, none_text = _rate(s, rate, task=task, T=T, clip="none")
        out.append((task, T, norm, none, f"{task} T = {T}: norm {norm_text}, none {none_text}"))
    return out


def norm_succeeds_as_often(s: pd.DataFrame) -> Verdict:
    """At each task's longest T, norm clipping succeeds at least as often as no clipping."""
    found = _at_longest_T(s, "success")
    return Verdict(
        all(norm >= none for _, _, norm, none, _ in found),
        {
            f"success_{c}_{task}_T{T}": v
            for task, T, norm, none, _ in found
            for c, v in (("norm", norm), ("none", none))
        },
        "success (95 % Wilson CI): " + "; ".join(text for *_, text in found),
    )


def norm_diverges_less(s: pd.DataFrame) -> Verdict:
    """On the adding task at the longest T, norm clipping diverges less often than no clipping."""
    s = rows(s, task="adding")
    (task, T, norm, none, text), *_ = _at_longest_T(s, "divergence")
    return Verdict(
        norm < none,
        {f"divergence_norm_T{T}": norm, f"divergence_none_T{T}": none},
        f"divergence (95 % Wilson CI): {text}",
    )


def norm_solves_temporal_order(s: pd.DataFrame) -> Verdict:
    """On temporal order at T = 20, norm clipping succeeds more often than no clipping."""
    s = _one_setting(rows(s, task="temporal_order", T=20))
    norm, norm_text = _rate(s, "success", clip="norm")
    none, none_text = _rate(s, "success", clip="none")
    return Verdict(
        norm > none,
        {"success_norm_T20": norm, "success_none_T20": none},
        f"temporal order T = 20, success (95 % Wilson CI): norm {norm_text}, none {none_text}",
    )


SOURCE = "Pascanu, Mikolov & Bengio 2013"
CLAIMS = [
    Claim(
        "Unclipped SGD diverges more often as T grows (adding problem, shortest vs longest T).",
        divergence_grows_with_T,
        source=f"{SOURCE}, sec. 3.2 and 4",
        figure="success_rate",
    ),
    Claim(
        "At the longest T, norm clipping succeeds at least as often as no clipping.",
        norm_succeeds_as_often,
        source=f"{SOURCE}, sec. 4, fig. 7",
        figure="success_rate",
    ),
    Claim(
        "Norm clipping prevents the divergence: at the longest T it diverges less often than "
        "no clipping (adding problem).",
        norm_diverges_less,
        source=f"{SOURCE}, sec. 3.2",
        figure="success_rate",
    ),
    Claim(
        "Where the gradient explodes (temporal order, T = 20), norm clipping solves the task "
        "more often than no clipping.",
        norm_solves_temporal_order,
        source=f"{SOURCE}, sec. 4",
        figure="success_rate",
    ),
]


# ------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------


def figures(table: pd.DataFrame) -> dict:
    plots.theme()
    return {"success_rate": rates_figure(table), "grad_norm_traces": traces_figure(table)}


def _setting(table: pd.DataFrame) -> str:
    """The knobs of a table as a title fragment ("n = 32, sgd lr = 0.1, gain 1.6, ...")."""
    values = partial(plots.levels, table, sep=",")

    return (
        f"n = {values('n_hidden')}, {values('optimizer')} lr = {values('lr')}, "
        f"W ~ N(0, g²/n) g = {values('gain')}, batch {values('batch_size')}, "
        f"{values('updates')} updates"
    )


def rates_figure(table: pd.DataFrame):
    """Success (top) and divergence (bottom) rates against T, one column per task."""
    s = summary(table)
    names = list(dict.fromkeys(s["task"]))
    thresholds = {"none": "", "norm": "", "value": ""}
    for kind in ("norm", "value"):
        thresholds[kind] = " " + plots.levels(s, f"clip_{kind}", ",")
    labels = {clip: CLIP_LABELS[clip] + thresholds[clip] for clip in s["clip"].unique()}
    fig, axes = plt.subplots(
        2, len(names), figsize=(5.5 * len(names), 7), layout="constrained", squeeze=False
    )
    opts = {"hue": "clip", "labels": labels, "dodge": 0.04, "log_base": 2}
    for j, name in enumerate(names):
        d = s[s["task"] == name]
        for ax, rate, marker in zip(axes[:, j], ["success", "divergence"], "os", strict=True):
            plots.rates(d, "T", rate, marker=marker, ax=ax, **opts)
            ax.set_ylim(-0.05, 1.05)
        axes[0, j].set(
            title=f"{name}, seeds per point: {int(d['runs'].min())}",
            ylabel="success rate (95 % Wilson CI)",
        )
        axes[1, j].set(xlabel="sequence length T [steps]", ylabel="divergence rate (95 % CI)")
    axes[0, -1].legend(title="clipping, threshold", loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(f"Pascanu et al. 2013 tasks; {_setting(table)}")
    return fig


def traces_figure(table: pd.DataFrame):
    """Gradient norms of the first seed, before clipping (the computed gradient) and after it
    (the applied one) in separate rows, one row pair per task and one column per T; the norm
    threshold dotted."""
    seed = table["seed"].min()
    long = table[table["seed"] == seed].melt(
        id_vars=["task", "T", "clip", "step"],
        value_vars=["grad_norm", "grad_norm_clipped"],
        var_name="gradient",
        value_name="norm",
    )
    names = {"grad_norm": "computed", "grad_norm_clipped": "applied"}
    # one row per task and gradient, in that order; facets titles a row named "variable" by
    # its value alone
    long = long.sort_values(["task", "gradient", "T", "clip", "step"], kind="stable")
    long["variable"] = long["task"] + "\n" + long["gradient"].map(names)
    long["clip"] = long["clip"].map(CLIP_LABELS)
    thresholds = sorted(table["clip_norm"].unique())
    fig = plots.facets(
        long,
        x="step",
        y="norm",
        hue="clip",
        col="T",
        row="variable",
        logy=True,
        band=False,
        aspect=2.0,
        height=2.6,
        hlines=[(t, ":", "black") for t in thresholds],
        xlabel="update",
        ylabel="gradient norm (all parameters)",
        title=f"Gradient norm computed (before clipping) and applied (after), seed {seed};\n"
        f"{_setting(table)}; norm threshold {', '.join(map(str, thresholds))} dotted",
    )
    return fig


EXPERIMENT = Experiment(
    name="clipping",
    description="Success and divergence rates vs T of SGD with no / norm / value clipping on "
    "adding and temporal order (Pascanu 2013); quick ~30 s, full grid (240 runs) ~3-4 min of "
    "compute",
    grid={
        "task": ["temporal_order", "adding"],
        "T": [10, 20, 40, 80],
        "clip": ["none", "norm", "value"],
        "lr": [0.1],
        "clip_norm": [1.0],
        "clip_value": [0.1],
        "gain": [1.6],
        "n_hidden": [32],
        "batch_size": [20],
        "updates": [1500],
        "optimizer": ["sgd"],
    },
    quick={
        "task": ["temporal_order", "adding"],
        "T": [20, 80],
        "clip": ["none", "norm"],
        "updates": [600],
    },
    measure=measure,
    measure_seeds=measure_seeds,
    figures=figures,
    summary=summary,
    seeds=10,
    quick_seeds=8,
    version="2",
    choices={
        "task": ["temporal_order", "adding"],
        "clip": list(CLIP_LABELS),
        "optimizer": list(optim.OPTIMIZERS),
    },
    limits={
        "T": (10, 100_000),
        "lr": (1e-9, 100.0),
        "clip_norm": (1e-9, None),
        "clip_value": (1e-9, None),
        "gain": (0.0, 100.0),
        "n_hidden": (1, 4096),
        "batch_size": (1, 100_000),
        "updates": (1, 10_000_000),
    },
    claims=CLAIMS,
    captions={
        "success_rate": "Success (top) and divergence (bottom) rates with 95 % Wilson intervals "
        "against T: unclipped SGD diverges more often as T grows, norm clipping does not diverge.",
        "grad_norm_traces": "Gradient norm per update of one seed, before clipping and as "
        "applied after it: where the norm-clipped run's gradient rises above the dotted "
        "threshold, clipping acts and the applied norm stays on the threshold.",
    },
    notes="Norm clipping (Pascanu et al. Algorithm 1) bounds the step and keeps its direction; "
    "value clipping bounds each component and turns the step. With gain 1.6 the tanh network is "
    "chaotic and the gradient norm grows with T; an unclipped step then throws W far, the units "
    "saturate and the adding task's linear read-out overflows. Budget: 600 (quick) or 1500 "
    "updates per run (Pascanu et al.: 5 million), so success rates are far below the paper's.",
)

if __name__ == "__main__":
    main(EXPERIMENT)

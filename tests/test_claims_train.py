"""The claims of the training experiments (clipping, irnn) on constructed summary tables: each
passes on a table that shows the paper's effect and fails on one that does not."""

from pathlib import Path

import pandas as pd
import pytest

from rnnsim.claims import NotApplicable, evaluate
from rnnsim.experiment import load_script
from rnnsim.train import wilson_interval

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
clipping = load_script(EXPERIMENTS / "clipping.py")
irnn = load_script(EXPERIMENTS / "irnn.py")


# ------------------------------------------------------------------------------ clipping


def clipping_summary(counts, runs=8):
    """A clipping summary from {(task, T, clip): (solved, diverged)} counts of ``runs`` runs."""
    frame = pd.DataFrame(
        [
            {"task": task, "T": T, "clip": clip, "runs": runs, "solved": k, "diverged": d}
            for (task, T, clip), (k, d) in counts.items()
        ]
    )
    defaults = {axis: values[0] for axis, values in clipping.EXPERIMENT.grid.items()}
    for knob in clipping.KNOBS:
        frame[knob] = defaults[knob]
    for rate, col in (("success", "solved"), ("divergence", "diverged")):
        frame[f"{rate}_rate"] = frame[col] / frame["runs"]
        frame[f"{rate}_lo"], frame[f"{rate}_hi"] = wilson_interval(frame[col], frame["runs"])
    return frame


#: the quick grid's effect: unclipped SGD diverges at T = 80 on adding, norm clipping never;
#: norm clipping solves temporal order at T = 20
PAPER = {
    ("adding", 20, "none"): (0, 0),
    ("adding", 20, "norm"): (0, 0),
    ("adding", 80, "none"): (0, 5),
    ("adding", 80, "norm"): (0, 0),
    ("temporal_order", 20, "none"): (0, 0),
    ("temporal_order", 20, "norm"): (6, 0),
    ("temporal_order", 80, "none"): (0, 0),
    ("temporal_order", 80, "norm"): (0, 0),
}


def test_clipping_claims_pass_on_the_papers_effect():
    table = evaluate(clipping.CLAIMS, clipping_summary(PAPER), quick=True)
    assert list(table["status"]) == ["pass"] * 4, table["detail"].tolist()
    assert "T = 80: 5/8 [0.31, 0.86]" in table["detail"].iloc[0]


@pytest.mark.parametrize(
    ("claim", "change"),
    [
        (0, {("adding", 20, "none"): (0, 5)}),  # divergence as often at short T
        (1, {("temporal_order", 80, "none"): (2, 0)}),  # unclipped succeeds more often
        (2, {("adding", 80, "norm"): (0, 5)}),  # clipping diverges as often
        (3, {("temporal_order", 20, "none"): (6, 0)}),  # no gain from clipping at T = 20
    ],
)
def test_each_clipping_claim_can_fail(claim, change):
    summary = clipping_summary({**PAPER, **change})
    table = evaluate(clipping.CLAIMS, summary, quick=True)
    assert table["status"].iloc[claim] == "fail"
    assert (table["status"].drop(index=claim) == "pass").all()


def test_clipping_claims_are_not_checked_when_a_knob_varies_or_rows_are_missing():
    summary = clipping_summary(PAPER)
    two_lrs = pd.concat([summary, summary.assign(lr=0.5)], ignore_index=True)
    with pytest.raises(NotApplicable, match="varies lr"):
        clipping.divergence_grows_with_T(two_lrs)
    one_T = summary[summary["T"] == 80]
    with pytest.raises(NotApplicable, match="one T"):
        clipping.divergence_grows_with_T(one_T)
    with pytest.raises(NotApplicable, match="T = 20"):
        clipping.norm_solves_temporal_order(one_T)


def test_clipping_summary_reports_rates_intervals_and_where_clipping_acts():
    rows = []
    for seed, (diverged, clipped) in enumerate([(True, [True, False]), (False, [True, True])]):
        for step, c in enumerate(clipped):
            rows.append(
                {
                    "task": "adding",
                    "T": 20,
                    "clip": "norm",
                    "seed": seed,
                    "step": step,
                    "clipped": c,
                    "grad_norm": 3.0 + seed + step,
                    "solved": False,
                    "run_diverged": diverged,
                }
            )
    table = pd.DataFrame(rows)
    for axis, values in clipping.EXPERIMENT.grid.items():
        if axis in clipping.KNOBS:
            table[axis] = values[0]
    s = clipping.summary(table)
    assert len(s) == 1
    row = s.iloc[0]
    assert (row["runs"], row["diverged"], row["divergence_rate"]) == (2, 1, 0.5)
    assert row["clipped_fraction"] == 0.75
    assert row["median_max_grad_norm"] == 4.5  # runs' largest norms 4 and 5
    lo, hi = wilson_interval(1, 2)
    assert (row["divergence_lo"], row["divergence_hi"]) == (lo, hi)


def test_clip_spec_reads_the_threshold_of_its_kind():
    point = {"clip": "value", "clip_norm": 1.0, "clip_value": 0.1}
    assert clipping.clip_spec(point) == ("value", 0.1)
    assert clipping.clip_spec({**point, "clip": "norm"}) == ("norm", 1.0)
    assert clipping.clip_spec({**point, "clip": "none"}) is None


# ------------------------------------------------------------------------------ irnn


def irnn_summary(medians, T=100):
    """An irnn summary at one T from {model: median final held-out MSE / chance}."""
    frame = pd.DataFrame(
        [
            {
                "T": T,
                "model": m,
                "runs": 5,
                "final_eval_over_chance": v,
                "final_eval_min": v / 2,
                "final_eval_max": v * 1.5,
            }
            for m, v in medians.items()
        ]
    )
    for axis, values in irnn.EXPERIMENT.grid.items():
        if axis in irnn.KNOBS:
            frame[axis] = values[0]
    return frame


def test_irnn_claim_passes_when_the_irnn_is_lowest_at_the_longest_T():
    short = irnn_summary({"irnn": 2.0, "tanh_gaussian": 0.5, "tanh_orthogonal": 0.4}, T=10)
    long = irnn_summary({"irnn": 0.6, "tanh_gaussian": 1.0, "tanh_orthogonal": 0.95})
    verdict = irnn.irnn_beats_tanh(pd.concat([short, long], ignore_index=True))
    assert verdict.passed
    assert verdict.numbers["median_eval_over_chance_irnn_T100"] == 0.6
    assert "T = 100" in verdict.detail and "irnn 0.600 [0.300, 0.900]" in verdict.detail


def test_irnn_claim_fails_when_a_tanh_rnn_is_as_low():
    s = irnn_summary({"irnn": 0.6, "tanh_gaussian": 1.0, "tanh_orthogonal": 0.6})
    assert not irnn.irnn_beats_tanh(s).passed


def test_irnn_claim_not_checked_when_a_model_is_missing_or_a_knob_varies():
    s = irnn_summary({"irnn": 0.6, "tanh_gaussian": 1.0})
    with pytest.raises(NotApplicable, match="tanh_orthogonal"):
        irnn.irnn_beats_tanh(s)
    full = irnn_summary({"irnn": 0.6, "tanh_gaussian": 1.0, "tanh_orthogonal": 0.9})
    with pytest.raises(NotApplicable, match="varies updates"):
        irnn.irnn_beats_tanh(pd.concat([full, full.assign(updates=10)]))


def test_irnn_summary_reports_the_last_evaluation_of_each_run():
    rows = []
    for seed, final in enumerate([0.5, 0.7, 0.9]):
        for step, ev in ((0, 1.0), (100, final), (150, float("nan"))):
            rows.append(
                {
                    "T": 50,
                    "model": "irnn",
                    "seed": seed,
                    "step": step,
                    "eval_over_chance": ev,
                    "solved": seed == 0,
                    "run_diverged": False,
                }
            )
    table = pd.DataFrame(rows)
    for axis, values in irnn.EXPERIMENT.grid.items():
        if axis in irnn.KNOBS:
            table[axis] = values[0]
    row = irnn.summary(table).iloc[0]
    assert row["runs"] == 3 and row["final_eval_over_chance"] == 0.7
    assert (row["final_eval_min"], row["final_eval_max"]) == (0.5, 0.9)
    assert row["solved"] == 1 and row["success_rate"] == pytest.approx(1 / 3)

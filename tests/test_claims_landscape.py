"""Claims of ill_conditioning and landscape on constructed summaries (each can pass and fail),
and the figure helpers they rest on."""

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from rnnsim import plots
from rnnsim.claims import NotApplicable
from rnnsim.experiment import load_script
from rnnsim.train import wilson_interval


def test_facets_units_draws_one_thin_line_per_seed_without_a_band():
    steps = np.arange(5.0)
    table = pd.concat(
        [pd.DataFrame({"step": steps, "loss": 10.0 ** (s * steps), "seed": s}) for s in (-1, 0, 1)]
    )
    fig = plots.facets(table, x="step", y="loss", logy=True, units="seed")
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 5]
    assert len(lines) == 3 and not ax.collections  # three seeds, no band
    assert {ln.get_linewidth() for ln in lines} == {0.8}
    assert sorted(ln.get_ydata()[-1] for ln in lines) == [1e-4, 1.0, 1e4]
    two = plots.facets(table.assign(g=1.0), x="step", y={"loss": "L", "g": "G"}, units="seed")
    assert [len(ax.get_lines()) >= 3 for ax in two.axes] == [True, True]  # rows keep the seeds
    matplotlib.pyplot.close("all")


def script(name):
    return load_script(Path(__file__).parent.parent / "experiments" / f"{name}.py")


def ill_summary(**changes):
    """One condition's summary row as `ill_conditioning.summary` writes it (3 seeds)."""
    ic = script("ill_conditioning")
    row = {"T": 10, "lr": 0.15, "analysed steps": 450, "seeds": 3}
    row |= {f"seeds with {ic.PENALTY}": 3, f"{ic.PENALTY} steps": 45}
    row |= {"steps that raised the loss": 40, "of them predicted": 35}
    row |= changes
    n, pen, raised, both = (
        row[k]
        for k in (
            "analysed steps",
            f"{ic.PENALTY} steps",
            "steps that raised the loss",
            "of them predicted",
        )
    )
    for name, k, m in (
        (f"raised | {ic.PENALTY}", both, pen),
        ("sign agreement", n - raised - pen + 2 * both, n),
    ):
        lo, hi = wilson_interval(np.array([k]), np.array([m]))
        row |= {name: k / m, f"{name}_lo": lo[0], f"{name}_hi": hi[0]}
    row["steps with the sign right"] = n - raised - pen + 2 * both
    return pd.DataFrame([row])


def test_ill_conditioning_claims_pass_on_a_run_with_unlearning_steps():
    ic = script("ill_conditioning")
    s = ill_summary()
    for check in (
        ic.penalty_steps_occur,
        ic.penalty_steps_raise_the_loss,
        ic.quadratic_model_predicts_the_sign,
    ):
        assert check(s).passed, check(s).detail
    assert ic.penalty_steps_occur(s).numbers["penalty > gain steps"] == 45
    fewer = pd.concat(
        [ill_summary(lr=0.05, **{"penalty > gain steps": 12, "of them predicted": 9}), s]
    )
    assert ic.penalty_steps_occur(fewer).numbers["condition"] == "T 10, lr 0.15"  # the most
    v = ic.penalty_steps_raise_the_loss(s)
    assert v.numbers["n"] == 45 and v.numbers["raised | penalty > gain"] == round(35 / 45, 3)
    # pooled over conditions: 35 + 11 of 45 + 24 steps, although one condition has 11 of 24
    two = pd.concat(
        [s, ill_summary(lr=0.05, **{"penalty > gain steps": 24, "of them predicted": 11})]
    )
    v = ic.penalty_steps_raise_the_loss(two)
    assert v.passed and v.numbers["n"] == 69 and v.numbers["raised | penalty > gain"] == 0.667
    assert v.numbers["lowest condition"] == "T 10, lr 0.05" and v.numbers["its rate"] == 0.458


def test_ill_conditioning_claims_fail_when_the_data_say_otherwise():
    ic = script("ill_conditioning")
    # a seed without penalty > gain steps
    assert not ic.penalty_steps_occur(ill_summary(**{"seeds with penalty > gain": 2})).passed
    # the loss rose on only 20 of 45 steps where the penalty exceeded the gain
    assert not ic.penalty_steps_raise_the_loss(ill_summary(**{"of them predicted": 20})).passed
    # sign right on 450 - 200 - 45 + 2 * 5 = 215 of 450 steps
    bad = ill_summary(**{"steps that raised the loss": 200, "of them predicted": 5})
    assert not ic.quadratic_model_predicts_the_sign(bad).passed
    # too few penalty > gain steps to judge the rate: not checked, never passed
    with pytest.raises(NotApplicable, match="fewer than 10"):
        ic.penalty_steps_raise_the_loss(
            ill_summary(**{"penalty > gain steps": 4, "of them predicted": 3})
        )


def test_ill_conditioning_summary_pools_seeds_per_condition():
    ic = script("ill_conditioning")
    axes = {"task": "adding", "T": 10, "hidden": 4, "lr": 0.1, "batch_size": 2}
    axes |= {"optimizer": "sgd", "steps": 120}
    rows = []
    for seed in (0, 1):
        for step in range(0, 120, 10):
            raised = seed == 0 and step in (30, 40)
            record = {"gTHg": 1.0, "kappa": 3.0, "raised_loss": raised, "lambda_max": 10.0}
            record |= {"predicts_increase": raised or step == 50, "loss_smooth": 1 / (1 + step)}
            record |= {"grad_norm_smooth": 1.0, "baseline": 0.5}
            rows.append({**axes, "seed": seed, "step": step, **record})
    s = ic.summary(pd.DataFrame(rows))
    assert len(s) == 1
    row = s.iloc[0]
    assert (row["analysed steps"], row["seeds"], row["seeds with penalty > gain"]) == (24, 2, 2)
    assert (row["penalty > gain steps"], row["of them predicted"]) == (4, 2)
    assert row["raised | penalty > gain"] == 0.5 and row["sign agreement"] == 22 / 24
    assert row["lambda_max eps / 2"] == 0.5 and row["||g|| end / start"] == 1.0


def landscape_summary(monotone=(3, 3), rho=(-0.8, 0.4), n=(6, 6)):
    """Two conditions' rows as `landscape.summary` writes them (3 seeds each)."""
    rows = []
    for model, mono, r, k in zip(("rnn", "mlp"), monotone, rho, n, strict=True):
        rows.append(
            {
                "model": model,
                "batch_size": 10,
                "seeds": 3,
                "monotone seeds": mono,
                "largest rise / fall": 0.01 if mono == 3 else 0.4,
                "model's minima": k,
                "model's rho(sharpness, held-out loss)": r,
            }
        )
    return pd.DataFrame(rows)


def test_landscape_line_rises_measures_the_largest_bump_against_the_fall():
    ls = script("landscape")
    alpha = np.linspace(-0.5, 1.5, 9)  # 0, 0.25, ..., 1 inside [0, 1]
    runs = {
        0: [9, 9, 4.0, 3.0, 2.0, 1.0, 0.5, 7, 7],  # falls all the way
        1: [9, 9, 4.0, 1.0, 2.0, 1.5, 1.2, 7, 7],  # falls 3, then rises 1 (33 %)
        2: [9, 9, 4.0, 3.0, 2.0, 1.0, 1.1, 7, 7],  # rises 0.1 of a fall of 3 (3.3 %)
    }
    table = pd.concat(pd.DataFrame({"seed": s, "alpha": alpha, "loss": v}) for s, v in runs.items())
    out = ls.line_rises(table, ["seed"])
    assert out["fall"].tolist() == [3.5, 3.0, 3.0]
    assert np.allclose(out["rise"], [0.0, 1.0, 0.1])
    assert out["monotone"].tolist() == [True, False, True]
    flat = ls.line_rises(table.assign(loss=1.0), ["seed"])  # no fall at all: never monotone
    assert np.isinf(flat["rise / fall"]).all() and not flat["monotone"].any()


def test_landscape_claims_pass_and_fail():
    ls = script("landscape")
    v = ls.interpolation_is_monotone(landscape_summary())
    assert v.passed and v.numbers["monotone runs"] == 6
    v = ls.interpolation_is_monotone(landscape_summary(monotone=(3, 1)))
    assert not v.passed and v.numbers["worst condition"] == "mlp, batch 10"
    v = ls.sharpness_relation_reported(landscape_summary())
    assert v.passed and v.numbers["rnn rho"] == -0.8 and v.numbers["mlp n"] == 6
    assert "rnn: rho = -0.80 (strong, negative" in v.detail
    assert "mlp: rho = +0.40 (moderate, positive" in v.detail
    v = ls.sharpness_relation_reported(landscape_summary(rho=(np.nan, 0.1)))  # constant sharpness
    assert not v.passed and "rnn: rho undefined, n = 6" in v.detail
    with pytest.raises(NotApplicable, match="fewer than 6 minima per model: mlp 3"):
        ls.sharpness_relation_reported(landscape_summary(n=(6, 3)))


def test_landscape_sharpness_relation_is_spearman_per_model():
    ls = script("landscape")
    minimum = pd.DataFrame(
        {
            "model": ["rnn"] * 4 + ["mlp"] * 2,
            "sharpness": [1.0, 2.0, 3.0, 4.0, 1.0, 2.0],
            "loss": [0.4, 0.3, 0.35, 0.1, 0.1, 0.2],
        }
    )
    out = ls.sharpness_relation(minimum).set_index("model")
    assert out.loc["rnn", "minima"] == 4 and out.loc["mlp", "minima"] == 2
    assert out.loc["rnn", "rho(sharpness, held-out loss)"] == pytest.approx(-0.8)  # ranks 4 2 3 1
    assert np.isnan(out.loc["mlp", "rho(sharpness, held-out loss)"])  # two minima: undefined

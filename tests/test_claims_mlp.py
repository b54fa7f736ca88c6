"""The claims of mlp_depth, phase_diagram and isometry, each on a constructed summary that
passes and on one that fails (no experiment runs here)."""

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from rnnsim import plots, theory
from rnnsim.claims import NotApplicable
from rnnsim.experiment import load_script

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def script(name):
    return load_script(EXPERIMENTS / f"{name}.py")


MLP = script("mlp_depth")
PHASE = script("phase_diagram")
ISO = script("isometry")


# ------------------------------------------------------------------------------ mlp_depth


def _mlp_summary(ratios):
    """A mlp_depth summary: one row per (activation, init, depth, input_scale) -> ratio."""
    out = []
    for (act, init, depth, scale), ratio in ratios.items():
        slope = np.log(ratio) / depth
        out.append(
            {"activation": act, "init": init, "sigma_w": 1.0, "depth": depth, "width": 256,
             "batch": 64, "input_scale": scale, "sigma_b": 0.0, "seeds": 3, MLP.RATIO: ratio,
             "log_slope": slope, "log_slope_se": 0.001, "log_slope_theory": slope + 0.005}
        )  # fmt: skip
    return pd.DataFrame(out)


GOOD = {
    ("tanh", "uniform", 10, 0.1): 4e-3,
    ("tanh", "uniform", 50, 1.0): 1e-12,
    ("tanh", "glorot_uniform", 50, 0.1): 0.6,
    ("tanh", "orthogonal", 50, 0.1): 0.7,
    ("tanh", "glorot_uniform", 50, 1.0): 0.1,  # large inputs: outside claim 2
    ("relu", "he", 50, 1.0): 1.3,
}


@pytest.mark.parametrize(
    "check, bad",
    [
        ("standard_init_vanishes", {("tanh", "uniform", 10, 0.1): 0.2}),
        ("normalised_init_keeps_tanh", {("tanh", "orthogonal", 50, 0.1): 0.4}),
        ("he_init_keeps_relu", {("relu", "he", 50, 1.0): 2.5}),
    ],
)
def test_mlp_depth_ratio_claims_pass_and_fail(check, bad):
    check = getattr(MLP, check)
    good = check(_mlp_summary(GOOD))
    assert good.passed and "allowed" in good.detail
    assert not check(_mlp_summary({**GOOD, **bad})).passed
    with pytest.raises(NotApplicable):
        check(_mlp_summary({("linear", "he", 50, 1.0): 1.0}))


def test_mlp_depth_slope_claim_pass_and_fail():
    s = _mlp_summary(GOOD)
    assert MLP.slope_matches_mean_field(s).passed
    off = s.assign(log_slope_theory=s.log_slope_theory.where(s.init != "he", 0.05))
    verdict = MLP.slope_matches_mean_field(off)
    assert not verdict.passed and "relu, he" in verdict.detail


def test_mlp_depth_summary_reports_ratio_slope_and_theory_per_condition():
    rows = [
        {"activation": "linear", "init": init, "sigma_w": 1.0, "depth": depth,
         "width": 8, "batch": 4, "input_scale": 1.0, "sigma_b": 0.0, "seed": seed,
         "layer": layer, "grad_h_norm": 2.0 ** (layer - depth) * (seed + 1),
         "grad_W_norm": 1.0, "frac_saturated": 0.0}
        for init in ("orthogonal", "uniform") for depth in (2, 4) for seed in range(2)
        for layer in range(depth + 1)
    ]  # fmt: skip
    s = MLP.summary(pd.DataFrame(rows))
    assert list(s.init) == ["orthogonal"] * 2 + ["uniform"] * 2 and list(s.depth) == [2, 4] * 2
    assert list(s.seeds) == [2] * 4
    np.testing.assert_allclose(s[MLP.RATIO], [0.25, 1 / 16] * 2)
    np.testing.assert_allclose(s.log_slope, np.log(0.5))
    # linear units: each layer multiplies the norm by sqrt(n Var W): 1 (orthogonal), sqrt(1/3)
    np.testing.assert_allclose(
        s.log_slope_theory, [0.0] * 2 + [0.5 * np.log(1 / 3)] * 2, atol=1e-12
    )


# ------------------------------------------------------------------------------ phase_diagram


def _phase_table(sigma_b2, shift=0.0):
    """Per-layer log norms whose slope is minus (ln chi1 - shift), for a sweep of sigma_w2."""
    out = []
    for sw2 in (0.5, 1.5, 2.5, 3.5):
        chi = theory.mean_field("tanh", sw2, sigma_b2)["log_chi1"]
        for seed in range(2):
            for layer in range(6):
                out.append(
                    {"activation": "tanh", "width": 8, "depth": 5, "batch": 4, "sigma_w2": sw2,
                     "sigma_b2": sigma_b2, "seed": seed, "layer": layer,
                     "log_sq_grad": -(chi - shift) * layer + seed, "log_chi1_theory": chi}
                )  # fmt: skip
    return pd.DataFrame(out)


def test_phase_diagram_summary_locates_the_critical_line():
    s = PHASE.summary(_phase_table(0.3))
    crit = theory.critical_sigma_w2("tanh", 0.3)
    assert s.critical_theory.iloc[0] == pytest.approx(crit)
    assert abs(s.critical_measured.iloc[0] - crit) < 0.1  # linear interpolation of ln chi1
    assert PHASE.critical_line_located(s).passed
    assert PHASE.growth_sign_follows_phase(s).passed


def test_phase_diagram_claims_fail_on_a_shifted_line():
    s = PHASE.summary(_phase_table(0.3, shift=0.2))  # growth 0.2 too small everywhere
    located = PHASE.critical_line_located(s)
    assert not located.passed and "vs" in located.detail
    assert not PHASE.growth_sign_follows_phase(s).passed
    with pytest.raises(NotApplicable):  # a sweep that does not bracket the line
        PHASE.critical_line_located(s[s.sigma_w2 <= 1.5])


# ------------------------------------------------------------------------------ isometry


def _iso_summary(top, cond_orth=(0.3, 1.0, 1.7), cond_gauss=(5.0, 20.0)):
    out = []
    for depth, value in zip((1, 2, 16), top, strict=True):
        out.append({"activation": "linear", "weights": "gaussian", "depth": depth,
                    "top_sv2": value, "top_sv2_se": 0.5, "fc_edge": theory.fuss_catalan_edge(depth)})  # fmt: skip
    for depth, c in zip((1, 4, 16), cond_orth, strict=True):
        out.append({"activation": "tanh", "weights": "orthogonal", "depth": depth, "log10_cond": c})
    for depth, c in zip((4, 16), cond_gauss, strict=True):
        out.append({"activation": "tanh", "weights": "gaussian", "depth": depth, "log10_cond": c})
    return pd.DataFrame(out)


def test_isometry_edge_claim_pass_and_fail():
    assert ISO.edge_is_fuss_catalan(_iso_summary((3.9, 6.5, 36.0))).passed
    assert not ISO.edge_is_fuss_catalan(_iso_summary((3.0, 6.5, 36.0))).passed  # 25% inside
    assert not ISO.edge_is_fuss_catalan(_iso_summary((3.9, 6.5, 50.0))).passed  # 10 SE above


def test_isometry_conditioning_claim_pass_and_fail():
    assert ISO.orthogonal_tanh_well_conditioned(_iso_summary((4, 6.75, 40))).passed
    bad_orth = _iso_summary((4, 6.75, 40), cond_orth=(0.3, 1.0, 3.5))
    assert not ISO.orthogonal_tanh_well_conditioned(bad_orth).passed
    bad_gauss = _iso_summary((4, 6.75, 40), cond_gauss=(3.0, 20.0))
    assert not ISO.orthogonal_tanh_well_conditioned(bad_gauss).passed


def test_isometry_summary_reports_edge_mean_and_condition_per_depth():
    rows = [
        {"activation": "linear", "weights": w, "depth": d, "width": 2, "sigma_b2": 0.0,
         "seed": seed, "rank": r, "sigma_w2": 1.0, "log_sv2": 2 * np.log(sv)}
        for w in ("gaussian", "orthogonal") for d in (1, 2) for seed in range(2)
        for r, sv in ((1, 2.0 + seed), (2, 0.5))
    ]  # fmt: skip
    s = ISO.summary(pd.DataFrame(rows))
    assert len(s) == 4 and "rank" not in s
    np.testing.assert_allclose(s.top_sv2, 6.5)  # mean of 4 and 9
    np.testing.assert_allclose(s.top_sv2_se, np.std([4, 9], ddof=1) / np.sqrt(2))
    np.testing.assert_allclose(s.fc_edge.iloc[:2], [4.0, 6.75])
    assert s.fc_edge.iloc[2:].isna().all()  # orthogonal: no Fuss-Catalan edge
    np.testing.assert_allclose(s.log10_cond, np.mean([np.log10(4), np.log10(6)]))


def test_facets_markers_keep_dashes_for_theory():
    t = pd.DataFrame({"x": np.tile(np.arange(3), 2), "y": np.arange(6.0) + 1,
                      "h": np.repeat(["a", "b"], 3)})  # fmt: skip
    fig = plots.facets(t, "x", "y", hue="h", style="h", markers=True)
    drawn = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata())]
    assert {ln.get_linestyle() for ln in drawn} == {"-"}
    assert len({ln.get_marker() for ln in drawn}) == 2
    matplotlib.pyplot.close("all")

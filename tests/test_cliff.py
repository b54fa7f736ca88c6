"""rnnsim.cliff: the single-unit model of Pascanu et al. 2013 (kernel against its NumPy twin, exact
gradient), its wall located exactly, its fixed-point theory and gradient descent on it."""

import math

import numba
import numpy as np
import pandas as pd
import pytest

from rnnsim import cliff as C
from rnnsim import reference
from rnnsim.kernels import cliff as ck

RTOL = 1e-10
X0, T, TARGET = 0.5, 50, 0.7
H0 = 1.0 / (1.0 + math.exp(-X0))


def test_cliff_surface_kernel_matches_reference():
    w = np.linspace(-10, 10, 61)
    b = np.linspace(-10, 10, 67)
    got = C.cliff_surface(w, b, as_frame=False)
    ref = reference.cliff_surface(w, b, X0, T, TARGET)
    for key, r in zip(("h_T", "loss", "dE_dw", "dE_db"), ref, strict=True):
        np.testing.assert_allclose(got[key], r, rtol=RTOL, atol=0)
    one = C.single_unit_loss(7.0, -3.9)
    point = reference.cliff_surface([7.0], [-3.9], X0, T, TARGET)
    np.testing.assert_allclose(list(one.values()), [r[0, 0] for r in point], rtol=RTOL)
    grid = C.single_unit_loss(w[:, None], b[None, :])  # broadcast to the same grid
    for key, r in zip(("h_T", "loss", "dE_dw", "dE_db"), ref, strict=True):
        np.testing.assert_allclose(grid[key], r, rtol=RTOL, atol=0)
    table = C.cliff_surface(w[:3], b[:4])
    assert len(table) == 12 and {"w", "b", "loss", "grad_norm", "T", "x0", "target"} <= set(table)


@pytest.mark.parametrize("w,b", [(1.0, 0.3), (-2.0, 1.0), (3.0, -1.0), (4.5, -2.2)])
def test_cliff_gradient_matches_finite_differences(w, b):
    _, _, gw, gb = ck.single_unit(w, b, X0, T, TARGET)
    eps = 1e-6
    fw = (
        ck.single_unit(w + eps, b, X0, T, TARGET)[1] - ck.single_unit(w - eps, b, X0, T, TARGET)[1]
    ) / (2 * eps)
    fb = (
        ck.single_unit(w, b + eps, X0, T, TARGET)[1] - ck.single_unit(w, b - eps, X0, T, TARGET)[1]
    ) / (2 * eps)
    assert fw == pytest.approx(gw, rel=1e-6, abs=1e-12)
    assert fb == pytest.approx(gb, rel=1e-6, abs=1e-12)


def test_single_unit_exact_case_w_zero():
    # w = 0: h_t = sigmoid(b) for t >= 1; dh_T/dw = s'(b) h_{T-1} = s'(b) s(b); dh_T/db = s'(b).
    b = 0.4
    s = 1 / (1 + math.exp(-b))
    h, e, gw, gb = ck.single_unit(0.0, b, X0, T, TARGET)
    assert h == pytest.approx(s, rel=1e-15)
    assert gw == pytest.approx(2 * (s - TARGET) * s * (1 - s) * s, rel=1e-14)
    assert gb == pytest.approx(2 * (s - TARGET) * s * (1 - s), rel=1e-14)


def test_cliff_line_is_exact_and_on_the_basin_boundary():
    w = np.array([3.0, 4.5, 6.0, 8.0, 10.0])
    line = C.cliff_line(w, (-10, 10), n_b=401)
    assert list(line["w"]) == list(w)  # one crossing each for w > 0
    for _, r in line.iterrows():
        assert np.nextafter(r["b_lo"], np.inf) >= r["b_hi"]  # adjacent floats
        assert (r["h_T_lo"] - 0.5) * (r["h_T_hi"] - 0.5) <= 0
    theory = C.cliff_theory(w)
    on = line.merge(theory, on="w")
    big = on[on["w"] >= 6]
    # beyond the saddle-node cusp the wall sits on the basin boundary b = x0 - w h0
    np.testing.assert_allclose(big["b_cliff"], big["b_basin_boundary"], atol=1e-6)
    np.testing.assert_allclose(big["b_basin_boundary"], X0 - big["w"] * H0, rtol=1e-12)
    # at w = 10 the whole jump (E from ~0.49 to ~0.01) happens between two adjacent floats
    r10 = line[line["w"] == 10].iloc[0]
    assert abs(r10["jump"]) > 0.4
    # the grid never sees the wall: exact peak of |dE/db| dwarfs the grid samples
    for wi in (6.0, 8.0):
        r = line[line["w"] == wi].iloc[0]
        assert r["peak_abs_dE_db"] > 1e4 * r["grid_max_abs_dE_db"]
    assert math.isnan(theory.loc[theory["w"] == 3.0, "b_basin_boundary"].iloc[0])


def test_cliff_peak_is_a_local_maximum_of_the_exact_gradient():
    line = C.cliff_line([4.5, 5.0], (-5, 0), n_b=101)
    for _, r in line.iterrows():
        w, bp, peak = r["w"], r["b_peak"], r["peak_abs_dE_db"]
        assert abs(ck.single_unit(w, bp, X0, T, TARGET)[3]) == pytest.approx(peak, rel=1e-12)
        for delta in (1e-9, 1e-7, 1e-5, 1e-3):
            for side in (-1, 1):
                assert abs(ck.single_unit(w, bp + side * delta, X0, T, TARGET)[3]) <= peak * (
                    1 + 1e-9
                )


def test_saddle_node_curves_are_tangencies():
    theory = C.cliff_theory([5.0, 7.0, 9.0])
    for _, r in theory.iterrows():
        w = r["w"]
        s = math.sqrt(1 - 4 / w)
        for h, b in (
            ((1 + s) / 2, r["b_saddle_node_lower"]),
            ((1 - s) / 2, r["b_saddle_node_upper"]),
        ):
            assert 1 / (1 + math.exp(-(w * h + b))) == pytest.approx(h, rel=1e-12)
            assert w * h * (1 - h) == pytest.approx(1.0, rel=1e-12)


def test_clipped_trajectory_stays_close_unclipped_is_thrown():
    w0 = 5.0
    b_peak = C.cliff_line([w0], (-5, 0), n_b=101)["b_peak"].iloc[0]
    tr = C.cliff_trajectories([(w0, b_peak)], lr=0.1, clips=[None, 1.0], n_steps=5)
    un = tr[tr["clip"].isna()]
    cl = tr[tr["clip"] == 1.0]
    assert un["step_length"].iloc[1] > 100.0  # |grad| ~ 6e3 at the wall
    assert cl["step_length"].max() <= 0.1 * 1.0 + 1e-12
    assert un["grad_norm"].iloc[0] == cl["grad_norm"].iloc[0]
    with pytest.raises(ValueError, match="lr"):
        C.cliff_trajectories([(1.0, 1.0)], lr=-1)


def test_cliff_bad_input():
    with pytest.raises(ValueError, match="T must"):
        C.cliff_surface([1.0], [1.0], T=0)
    with pytest.raises(ValueError, match="w_values"):
        C.cliff_surface([np.nan], [1.0])
    with pytest.raises(ValueError, match="b_range"):
        C.cliff_line([5.0], (1.0, -1.0))


def test_boundary_gradient_formula_matches_the_kernel():
    th = C.cliff_theory([5.0, 6.0], T=T, target=TARGET)
    for _, r in th.iterrows():
        gb = ck.single_unit(r["w"], r["b_basin_boundary"], X0, T, TARGET)[3]
        assert abs(gb) == pytest.approx(r["boundary_abs_dE_db"], rel=1e-5)
    line = C.cliff_line([6.0, 12.0], (-10, 4), n_b=201)
    assert list(line["resolved"]) == [True, False]


# ------------------------------------------------------------------------------------------------
# The theory: fixed points, saddle-node curve, basin boundary (the cliff), Doya's diagram
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("w,b", [(5.0, -2.5), (5.0, -1.0), (8.0, -4.0), (-3.0, 1.0), (12.0, -6.5)])
def test_single_unit_fixed_points(w, b):
    fp = C.single_unit_fixed_points(w, b)
    h = fp["h_star"].to_numpy()
    assert np.all(np.abs(C.sigmoid(w * h + b) - h) < 1e-14)
    sn = C.saddle_node_curve([w]).iloc[0]
    bistable = np.isfinite(sn["b_low"]) and sn["b_low"] < b < sn["b_high"]
    assert len(fp) == (3 if bistable else 1)
    if bistable:
        assert list(fp["stable"]) == [True, False, True]
    assert np.allclose(fp["slope"], w * h * (1 - h), rtol=1e-14)


def test_fixed_points_found_right_next_to_the_saddle_node():
    w = 6.0
    sn = C.saddle_node_curve([w]).iloc[0]
    for eps in (1e-6, 1e-9):
        fp = C.single_unit_fixed_points(w, sn["b_low"] + eps)
        assert len(fp) == 3
        assert fp["h_star"].iloc[1:].to_numpy() == pytest.approx(sn["h_high_tangent"], abs=1e-3)
        assert len(C.single_unit_fixed_points(w, sn["b_low"] - eps)) == 1


def test_saddle_node_curve():
    tab = C.saddle_node_curve([3.0, 4.0, 5.0, 8.0, 20.0])
    assert tab[["b_low", "b_high"]].iloc[0].isna().all()
    assert tab["b_low"].iloc[1] == pytest.approx(-2.0, abs=1e-12)  # cusp
    for _, row in tab.iloc[1:].iterrows():
        assert row["b_low"] + row["b_high"] == pytest.approx(-row["w"], abs=1e-12)
        for h in (row["h_low_tangent"], row["h_high_tangent"]):
            assert row["w"] * h * (1 - h) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.skipif(
    numba.config.DISABLE_JIT, reason="a 600,000-point scan; other tests cover the kernel's lines"
)
def test_basin_boundary_is_the_cliff():
    """E = (h_50 - 0.7)^2 jumps across the basin boundary at fixed w (h_50 goes from the low to the
    high attractor); it does not jump across the saddle-node curves; |dE/db| peaks on the boundary."""
    h0 = C.H0_PASCANU
    bb = C.basin_boundary([3.0, 5.0, 8.0], h0=h0)
    assert not bb["valid"].iloc[0] and np.isnan(bb["b"].iloc[0])
    for w, b_star in zip(bb["w"].iloc[1:], bb["b"].iloc[1:], strict=True):
        fp = C.single_unit_fixed_points(w, b_star)
        assert len(fp) == 3 and fp["h_star"].iloc[1] == pytest.approx(h0, abs=1e-12)
        d = 1e-3  # the unstable point repels at rate slope^50 >= 1.17^50 ~ 3000 (w = 5)
        lo, hi = fp["h_star"].iloc[0], fp["h_star"].iloc[2]
        below = C.single_unit_loss(w, b_star - d)["loss"]
        above = C.single_unit_loss(w, b_star + d)["loss"]
        assert below == pytest.approx((lo - 0.7) ** 2, abs=0.02)
        assert above == pytest.approx((hi - 0.7) ** 2, abs=0.02)
        assert abs(above - below) > 0.1
        sn = C.saddle_node_curve([w]).iloc[0]
        for b_sn in (sn["b_low"], sn["b_high"]):
            jump = abs(
                C.single_unit_loss(w, b_sn + 1e-4)["loss"]
                - C.single_unit_loss(w, b_sn - 1e-4)["loss"]
            )
            assert jump < 1e-3
        b = np.linspace(sn["b_low"] - 1.0, sn["b_high"] + 1.0, 200_001)
        grad = np.abs(np.diff(C.single_unit_loss(w, b)["loss"]))
        # the wall is ~ slope^-50 wide in b (3e-4 at w = 5, 2e-14 at w = 8); its peak lies inside
        width = max(2 * (b[1] - b[0]), float(bb.loc[bb.w == w, "slope"].iloc[0]) ** -50)
        assert abs(b[np.argmax(grad)] - b_star) < width


def test_doya_bifurcation():
    w = 5.0
    tab = C.doya_bifurcation(w, b_values=np.linspace(-4.0, -1.0, 31), n_init=7, steps=3000)
    assert len(tab) == 31 * 7
    sn = C.saddle_node_curve([w]).iloc[0]
    assert tab["b1"].iloc[0] == sn["b_low"] and tab["b2"].iloc[0] == sn["b_high"]
    spread = tab.groupby("b")["h_final"].agg(lambda s: s.max() - s.min())
    inside = (spread.index > sn["b_low"]) & (spread.index < sn["b_high"])
    assert np.all(spread[inside] > 0.5)  # two attractors reached from different initial states
    assert np.all(spread[~inside] < 1e-6)  # a single attractor
    assert set(tab.loc[tab["b"].between(sn["b_low"], sn["b_high"]), "attractor"]) == {"low", "high"}
    assert tab["converged"].all()
    assert isinstance(tab, pd.DataFrame)


def test_basin_boundary_bad_h0():
    with pytest.raises(ValueError, match="h0"):
        C.basin_boundary([5.0], h0=1.0)

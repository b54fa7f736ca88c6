"""rnnsim.plots: confidence bands, helpers and saving."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from scipy import stats

from rnnsim import plots


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    rows = [
        {"layer": l, "init": init, "seed": s, "norm": np.exp(-l * k + 0.1 * rng.standard_normal())}
        for init, k in (("a", 0.5), ("b", 0.0))
        for l in range(6)
        for s in range(4)
    ]
    return pd.DataFrame(rows)


def test_summarize_keeps_a_parameter_column_named_n(table):
    """A network-size column ``n`` is a parameter, not the group's row count."""
    s = plots.summarize(table.assign(n=64), "layer", "norm", ["n"])
    assert set(s.n) == {64} and (s.norm_count == 8).all()


def test_summarize_is_the_student_t_interval(table):
    s = plots.summarize(table, "layer", "norm", ["init"])
    assert list(s.columns) == ["init", "layer", "norm", "norm_low", "norm_high", "norm_count"]
    assert list(s.init[:2]) == ["a", "a"] and len(s) == 12  # order of first appearance
    v = table[(table.init == "b") & (table.layer == 3)].norm.to_numpy()
    half = stats.t.ppf(0.975, 3) * v.std(ddof=1) / 2
    row = s[(s.init == "b") & (s.layer == 3)].iloc[0]
    np.testing.assert_allclose(
        [row.norm, row.norm_low, row.norm_high],
        [v.mean(), v.mean() - half, v.mean() + half],
        rtol=1e-12,
    )
    g = plots.summarize(table, "layer", "norm", ["init"], log=True)
    row = g[(g.init == "b") & (g.layer == 3)].iloc[0]
    np.testing.assert_allclose(row.norm, np.exp(np.log(v).mean()), rtol=1e-12)
    assert row.norm_low < row.norm < row.norm_high


def test_mean_ci_edge_cases():
    assert plots.mean_ci([2.0]) == (2.0, 2.0, 2.0)
    assert all(np.isnan(plots.mean_ci([np.nan])))
    est, lo, hi = plots.mean_ci([1.0, 100.0], log=True)
    assert est == pytest.approx(10.0) and lo > 0 and hi > est


def test_line_with_band_draws_lines_bands_and_labels(table):
    fig = plots.line_with_band(table, "layer", "norm", hue="init", logy=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "layer l (0 = input)" and ax.get_ylabel() == "norm"
    assert len(ax.collections) == 2  # one band per init
    assert ax.get_legend().get_title().get_text() == "init"
    line = plots.theory_line(ax, [0, 5], [1, 1], "theory")
    assert line.get_linestyle() == "--"
    matplotlib.pyplot.close(fig)


def test_facets_and_heatmap(table, tmp_path):
    fig = plots.facets(table, "layer", "norm", hue="seed", col="init", logy=True, title="t")
    assert [ax.get_title() for ax in fig.axes] == ["init = a", "init = b"]
    written = plots.save(fig, tmp_path / "sub" / "facets")
    assert [p.name for p in written] == ["facets.png", "facets.svg"]
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["facets.png", "facets.svg"]
    fig = plots.heatmap(table, "layer", "init", "norm", log=True)
    assert fig.axes[0].get_xlabel() == "layer l (0 = input)"
    matplotlib.pyplot.close("all")


def test_facets_draw_theory_lines_per_panel_and_hue_and_reference_lines(table):
    theory = pd.DataFrame(
        [
            {"init": init, "seed": seed, "kind": kind, "layer": l, "norm": v}
            for init in ("a", "b")
            for seed in (0, 1)
            for kind, v0 in (("fit", 1.0), ("bound", np.inf))
            for l, v in ((0, v0), (5, 2.0 * v0))
        ]
    )
    fig = plots.facets(
        table, "layer", "norm", hue="seed", col="init", theory=theory, theory_style="kind",
        hlines=[(1.5, ":", "grey")],
    )  # fmt: skip
    ax_a = fig.axes[0]
    dashed = [ln for ln in ax_a.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 2  # one per seed in panel "a"; the infinite "bound" rows are left out
    np.testing.assert_array_equal(dashed[0].get_xydata(), [[0, 1.0], [5, 2.0]])
    palette = plots.hue_palette(table, "seed", None)
    colors = {matplotlib.colors.to_hex(ln.get_color()) for ln in dashed}
    assert colors == {matplotlib.colors.to_hex(palette[s]) for s in (0, 1)}
    ref = [ln for ln in ax_a.get_lines() if ln.get_linestyle() == ":"]
    assert len(ref) == 1 and list(ref[0].get_ydata()) == [1.5, 1.5]
    with pytest.raises(ValueError, match="theory must have the columns"):
        plots.facets(table, "layer", "norm", col="init", theory=theory.drop(columns="norm"))
    matplotlib.pyplot.close("all")


def test_mesh_is_centred_and_carries_the_theory_curve():
    grid = pd.DataFrame(
        [
            {"a": a, "b": b, "seed": s, "v": a - 2 * b + s}
            for a in (1, 2, 4)
            for b in (0, 1)
            for s in (0, 1)
        ]
    )
    curve = pd.DataFrame({"a": [0.0, 10.0], "b": [0.5, 0.5]})
    fig = plots.mesh(grid, "a", "b", "v", center=0.0, cmap="RdBu_r", theory=curve, theory_label="t")
    ax = fig.axes[0]
    cells = ax.collections[0].get_array().reshape(2, 3)
    want = np.array([[a - 2 * b + 0.5 for a in (1, 2, 4)] for b in (0, 1)])  # mean over seeds
    np.testing.assert_allclose(cells, want)
    norm = ax.collections[0].norm
    assert (norm.vcenter, norm.vmin, norm.vmax) == (0.0, -4.5, 4.5)  # max |v| = 4.5
    assert ax.get_xlim() == (0.5, 5.0) and ax.get_ylim() == (-0.5, 1.5)  # the curve is clipped
    assert ax.get_lines()[0].get_linestyle() == "--"
    assert ax.get_xlabel() == "a" and fig.axes[1].get_ylabel() == "v"
    with pytest.raises(ValueError, match="center must be finite"):
        plots.mesh(grid, "a", "b", "v", center=np.nan)
    matplotlib.pyplot.close("all")


def test_measured_vs_theory_draws_one_series_per_hue_and_the_identity():
    s = pd.DataFrame({"th": [-1.0, 0.0, 1.0, 2.0], "me": [-0.9, 0.1, 1.2, 2.5],
                      "sd": [0.1, np.nan, 0.2, 0.3], "h": [0.0, 0.0, 0.5, 0.5]})  # fmt: skip
    fig = plots.measured_vs_theory(s, "th", "me", hue="h", yerr="sd", hue_label="H")
    ax = fig.axes[0]
    _, labels = ax.get_legend_handles_labels()
    assert labels == ["theory: measured = predicted", "H = 0", "H = 0.5"]
    (identity,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("theory")]
    assert identity.get_linestyle() == "--"
    np.testing.assert_array_equal(identity.get_xydata(), [[-1.0, -1.0], [2.5, 2.5]])
    np.testing.assert_array_equal(ax.containers[1].lines[0].get_xydata(), [[1.0, 1.2], [2.0, 2.5]])
    with pytest.raises(ValueError, match="table must have the columns"):
        plots.measured_vs_theory(s, "th", "missing")
    matplotlib.pyplot.close("all")


def test_rates_draw_dodged_error_bars_per_hue_with_labels_and_log_ticks():
    s = pd.DataFrame(
        {
            "T": [10, 20, 10, 20],
            "clip": ["none", "none", "norm", "norm"],
            "success_rate": [0.2, 0.5, 0.4, 0.9],
            "success_lo": [0.1, 0.3, 0.45, 0.7],  # one low end above its estimate: no bar below
            "success_hi": [0.4, 0.6, 0.6, 1.0],
        }
    )
    labels = {"none": "off", "norm": "norm 1"}
    fig = plots.rates(
        s, "T", "success", hue="clip", labels=labels, marker="s", dodge=0.1, log_base=2
    )
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.containers] == ["off", "norm 1"]
    cycle = [matplotlib.colors.to_rgba(c) for c in sns.color_palette("colorblind")[:2]]
    for k, (container, shift) in enumerate(zip(ax.containers, (0.95, 1.05), strict=True)):
        line, _, (bars,) = container.lines
        rows = s.iloc[2 * k : 2 * k + 2]
        np.testing.assert_allclose(
            np.asarray(line.get_xdata(), float), rows["T"] * shift, rtol=1e-15
        )
        np.testing.assert_allclose(np.asarray(line.get_ydata(), float), rows["success_rate"])
        assert line.get_marker() == "s"
        assert matplotlib.colors.to_rgba(line.get_color()) == cycle[k]
        ends = [seg[:, 1] for seg in bars.get_segments()]
        lo = np.minimum(rows["success_lo"], rows["success_rate"])
        np.testing.assert_allclose(ends, np.column_stack([lo, rows["success_hi"]]))
    assert ax.get_xscale() == "log" and list(ax.get_xticks()) == [10, 20]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "20"]
    with pytest.raises(ValueError, match="success_hi"):
        plots.rates(s.drop(columns="success_hi"), "T", "success", hue="clip")
    with pytest.raises(ValueError, match="log_base"):
        plots.rates(s, "T", "success", hue="clip", log_base=1)
    with pytest.raises(ValueError, match="labels must name every level"):
        plots.rates(s, "T", "success", hue="clip", labels={"none": "off"})


def test_facets_mark_events_and_stack_quantities_given_as_a_dict(table):
    wide = table.assign(half=table["norm"] / 2)
    events = pd.DataFrame({"layer": [1, 2, 4], "norm": [0.5, 0.25, 2.0], "init": ["a", "b", "a"]})
    fig = plots.facets(wide, "layer", "norm", hue="init", col="init", events=events)
    for ax, init in zip(fig.axes, ("a", "b"), strict=True):
        (marks,) = ax.collections[-1:]
        want = events[events["init"] == init][["layer", "norm"]].to_numpy(float)
        np.testing.assert_array_equal(marks.get_offsets(), want)
        assert matplotlib.colors.to_hex(marks.get_edgecolor()[0]) == "#ff0000"
    with pytest.raises(ValueError, match="events must have the columns"):
        plots.facets(wide, "layer", "norm", col="init", events=events.drop(columns="init"))
    quantities = {"norm": "the norm", "half": "half of it"}
    fig = plots.facets(wide, "layer", quantities, hue="init", sharey=False)
    assert [ax.get_title() for ax in fig.axes] == ["the norm", "half of it"]  # named quantities
    for ax, column in zip(fig.axes, ("norm", "half"), strict=True):
        line = ax.get_lines()[0]  # hue "a": mean over seeds per layer
        mean = wide[wide["init"] == "a"].groupby("layer")[column].mean()
        np.testing.assert_allclose(line.get_ydata(), mean.to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="row must be None"):
        plots.facets(wide, "layer", {"norm": "n"}, row="init")
    # a parameter as row: its panels are named "name = value", on the right margin with col
    fig = plots.facets(wide[wide["seed"] < 2], "layer", "norm", row="seed", col="init")
    margin = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert margin == ["seed = 0", "seed = 1"]
    # several rows share one y label for the figure (a long label per row overlapped)
    assert [ax.get_ylabel() for ax in fig.axes] == [""] * 4
    assert fig.get_supylabel() == "norm"
    assert [ax.get_title() for ax in fig.axes] == ["init = a", "init = b", "", ""]
    matplotlib.pyplot.close("all")


def test_line_with_band_draws_labelled_reference_lines_over_the_drawn_x_range(table):
    part = table.assign(norm=table["norm"].where(table["layer"] > 0))  # layer 0 is not drawn
    references = [(1.0, "one"), (0.5, "a half")]
    fig = plots.line_with_band(part, "layer", "norm", hue="init", references=references)
    ax = fig.axes[0]
    refs = [ln for ln in ax.get_lines() if ln.get_label() in ("one", "a half")]
    assert [ln.get_label() for ln in refs] == ["one", "a half"]
    for ln, level in zip(refs, (1.0, 0.5), strict=True):
        np.testing.assert_array_equal(ln.get_xydata(), [[1, level], [5, level]])
        assert ln.get_linestyle() == "--" and matplotlib.colors.to_hex(ln.get_color()) == "#000000"
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"one", "a half"}
    with pytest.raises(ValueError, match="finite"):
        plots.line_with_band(table, "layer", "norm", references=[(np.inf, "x")])
    matplotlib.pyplot.close("all")


def test_cliff_surface_draws_the_map_the_wall_the_theory_and_labelled_paths():
    w, b = np.array([0.0, 1.0, 2.0]), np.array([-1.0, 1.0])
    surface = pd.DataFrame([{"w": x, "b": y, "loss": x * 10 + y} for x in w for y in b])
    wall = pd.DataFrame({"w": [0.5, 1.5], "b_cliff": [0.0, 0.2]})
    theory = pd.DataFrame({"w": [0.0, 2.0], "b_basin_boundary": [0.1, -0.1],
                           "b_saddle_node_lower": [-0.5, -0.6],
                           "b_saddle_node_upper": [0.5, np.nan]})  # fmt: skip
    paths = pd.DataFrame({"start": ["0", "0", "0", "0"], "clipping": ["none", "none", "x", "x"],
                          "w": [1.0, 1.6, 1.0, 1.1], "b": [0.0, -2.7, 0.0, 0.4]})  # fmt: skip
    fig = plots.cliff_surface(surface, wall, theory, paths, xlim=(0, 2), ylim=(-1, 1), title="t")
    ax = fig.axes[0]
    cells = ax.collections[0].get_array().reshape(2, 3)  # rows: b, columns: w
    np.testing.assert_array_equal(cells, 10 * w[None, :] + b[:, None])
    lines = ax.get_lines()
    np.testing.assert_array_equal(lines[0].get_xydata(), wall[["w", "b_cliff"]].to_numpy())
    for line, column in zip(lines[1:4], list(theory.columns)[1:], strict=True):
        np.testing.assert_array_equal(line.get_ydata(), theory[column])
        assert line.get_linestyle() == "--"
    assert [matplotlib.colors.to_hex(ln.get_color()) for ln in lines] == [
        "#ffffff", "#ff0000", "#ffa500", "#ffa500", "#ff00ff", "#00ffff"
    ]  # fmt: skip
    np.testing.assert_array_equal(lines[4].get_xydata(), [[1.0, 0.0], [1.6, -2.7]])
    assert lines[4].get_marker() == "o" and lines[5].get_marker() == "None"
    _, labels = ax.get_legend_handles_labels()
    assert labels == [
        "cliff (bisection, exact)", "basin boundary of h0", "saddle-node curves",
        "GD 0, clip none, ends at (2, -3)", "GD 0, clip x, ends at (1, 0)",
    ]  # fmt: skip
    assert ax.get_xlim() == (0, 2) and ax.get_ylim() == (-1, 1) and ax.get_title() == "t"
    with pytest.raises(ValueError, match="paths must have the columns"):
        plots.cliff_surface(surface, wall, theory, paths.drop(columns="clipping"), xlim=(0, 2),
                            ylim=(-1, 1))  # fmt: skip
    matplotlib.pyplot.close("all")

"""rnnsim.plots: confidence bands, helpers and saving."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
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


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


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

"""Claims of ill_conditioning and landscape on constructed summaries (each can pass and fail),
and the figure helpers they rest on."""

import matplotlib
import numpy as np
import pandas as pd

from rnnsim import plots


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

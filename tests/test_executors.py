"""Seed-grouped jobs (issue 16, item 3): an experiment with ``measure_seeds`` gets one call per
grid point for its pending seeds, in every executor, and still one point file per seed."""

import json
import textwrap

import numpy as np
import pandas as pd
import pytest

from rnnsim.experiment import Experiment, RunFailed, load_experiment, run_experiment

CALLS = []


def measure(point, seed):
    rng = np.random.default_rng([seed, point["n"]])
    return pd.DataFrame({"i": np.arange(point["n"]), "value": rng.standard_normal(point["n"])})


def measure_seeds(point, seeds):
    CALLS.append((point["n"], list(seeds)))
    return [measure(point, seed) for seed in seeds]


def make(name, grouped=True, **kw):
    args = dict(
        name=name,
        description="walks",
        grid={"n": [2, 3, 4], "mode": ["a", "b"]},
        quick=None,
        measure=measure,
        measure_seeds=measure_seeds if grouped else None,
        seeds=3,
    )
    return Experiment(**(args | kw))


def _run(exp, out, **kw):
    return run_experiment(exp, out=out, figures=False, progress=False, **kw)


def test_grouped_seeds_give_the_per_seed_table_and_resume_per_seed(tmp_path):
    single = _run(make("walks", grouped=False), tmp_path / "single")
    CALLS.clear()
    grouped = _run(make("walks"), tmp_path / "grouped")
    pd.testing.assert_frame_equal(grouped, single)
    assert CALLS == [(n, [0, 1, 2]) for n in (2, 3, 4) for _ in "ab"]  # one call per point
    points = tmp_path / "grouped" / "walks" / "points"
    assert len(list(points.glob("*.parquet"))) == 18  # one file per (point, seed)

    # a partial run: drop one seed of the first point and every seed of the last
    manifest = json.loads((tmp_path / "grouped" / "walks" / "manifest.json").read_text())
    jobs = manifest["points"]
    files = {(p["params"]["n"], p["params"]["mode"], p["seed"]): p["hash"] for p in jobs}
    for key in [(2, "a", 1), (4, "b", 0), (4, "b", 1), (4, "b", 2)]:
        next(points.glob(f"{files[key]}*.parquet")).unlink()
    CALLS.clear()
    resumed = _run(make("walks"), tmp_path / "grouped")
    assert CALLS == [(2, [1]), (4, [0, 1, 2])]
    pd.testing.assert_frame_equal(resumed, single)


SCRIPT = """
import numpy as np
import pandas as pd

from rnnsim.experiment import Experiment


def measure(point, seed):
    rng = np.random.default_rng([seed, point["n"]])
    return pd.DataFrame({"value": rng.standard_normal(point["n"])})


def measure_seeds(point, seeds):
    return [measure(point, s).assign(group=",".join(map(str, seeds))) for s in seeds]


EXPERIMENT = Experiment(name="walks", description="walks", grid={"n": [2, 3]}, quick=None,
                        measure=measure, measure_seeds=measure_seeds, seeds=2)
"""


@pytest.mark.parametrize("executor", [{"workers": 2}, {"scheduler": "local", "workers": 1}])
def test_workers_group_the_seeds_of_a_point(tmp_path, executor):
    if "scheduler" in executor:
        pytest.importorskip("distributed")
    script = tmp_path / "walks.py"
    script.write_text(textwrap.dedent(SCRIPT))
    exp = load_experiment(script)
    serial = _run(exp, tmp_path / "serial")
    remote = _run(exp, tmp_path / "remote", **executor)
    pd.testing.assert_frame_equal(remote, serial)
    assert set(remote.group) == {"0,1"}  # each point's seeds in one call


def test_measure_seeds_must_return_one_result_per_seed(tmp_path):
    exp = make("short", measure_seeds=lambda point, seeds: [measure(point, seeds[0])])
    with pytest.raises(RunFailed, match="18 of 18 points failed") as info:
        _run(exp, tmp_path)
    assert "must return a list with one result per seed (3 for the seeds [0, 1, 2])" in str(
        info.value.__cause__
    )
    with pytest.raises(TypeError, match="measure_seeds must be callable"):
        make("bad", measure_seeds=3)

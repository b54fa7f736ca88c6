"""The rnnsim command: list, run, report, bench forwarding, discovery and its error messages."""

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from rnnsim import cli
from rnnsim.experiment import experiments_dir, find_experiments

FIXTURES = Path(__file__).parent / "fixtures" / "experiments"
REPO = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_description_and_grid(capsys):
    code, out, _ = run(capsys, "list", "--experiments", str(FIXTURES))
    assert code == 0
    assert "toy" in out and "Random walks of a few steps" in out
    assert "grid (24 points x 2 seeds): n = 2, 3, 4; mode = plain, cumsum" in out
    assert "quick (4 points x 2 seeds)" in out


def test_run_and_report(capsys, tmp_path):
    out_dir = tmp_path / "res"
    code, out, err = run(
        capsys,
        "run",
        "toy",
        "--experiments",
        str(FIXTURES),
        "--quick",
        "--set",
        "n=3",
        "--seeds",
        "1",
        "--out",
        str(out_dir),
        "--no-progress",
    )
    assert code == 0, err
    assert "toy: 6 rows" in out
    manifest = json.loads((out_dir / "toy" / "manifest.json").read_text())
    assert manifest["reproduce"] == "rnnsim run toy --quick --set n=3 --seeds 1"
    assert (out_dir / "toy" / "figures" / "value_by_i.svg").exists()
    code, out, _ = run(capsys, "report", "--out", str(out_dir))
    assert code == 0 and (out_dir / "index.html").exists()


def test_run_all_runs_every_script(capsys, tmp_path):
    exp_dir = tmp_path / "experiments"
    exp_dir.mkdir()
    shutil.copy(FIXTURES / "toy.py", exp_dir / "toy.py")
    text = (FIXTURES / "toy.py").read_text().replace('name="toy"', 'name="toy2"')
    (exp_dir / "toy2.py").write_text(text)
    (exp_dir / "_helper.py").write_text("raise RuntimeError('never imported')\n")
    code, out, err = run(
        capsys,
        "run",
        "all",
        "--experiments",
        str(exp_dir),
        "--quick",
        "--set",
        "n=2",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "r"),
        "--no-figures",
        "--no-progress",
    )
    assert code == 0, err
    assert "toy: 4 rows" in out and "toy2: 4 rows" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "nope"], "unknown experiment 'nope'; available: toy, or 'all'"),
        (
            ["run", "toy", "--set", "depth=3"],
            "unknown key 'depth' for experiment 'toy'; valid keys: n, mode, scale, flag",
        ),
        (["run", "toy", "--set", "n=two"], "'two' is not an integer (grid values: 2, 3, 4)"),
        (["run", "toy", "--set", "mode=walk"], "valid values: plain, cumsum"),
        (["run", "toy", "--set", "flag=maybe"], "is not a boolean"),
        (["run", "toy", "--set", "n"], "--set expects KEY=V1,V2,..."),
        (["run", "all", "--set", "zz=1"], "no experiment has an axis 'zz'"),
    ],
)
def test_usage_errors_exit_2_with_a_message(capsys, argv, message, tmp_path):
    code, out, err = run(capsys, *argv, "--experiments", str(FIXTURES), "--out", str(tmp_path))
    assert code == 2
    assert message in err
    assert err.startswith("rnnsim: error: ") and "Traceback" not in err
    assert not (tmp_path / "toy").exists()  # nothing ran


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "toy", "--workers", "0"])
    assert info.value.code == 2
    assert "expected an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2


def test_report_on_missing_folder(capsys, tmp_path):
    code, _, err = run(capsys, "report", "--out", str(tmp_path / "none"))
    assert code == 2 and "is not a directory" in err


def test_bench_is_forwarded(monkeypatch):
    seen = []
    fake = types.ModuleType("rnnsim.bench")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "rnnsim.bench", fake)
    import rnnsim

    monkeypatch.setattr(rnnsim, "bench", fake, raising=False)
    assert cli.main(["bench", "--quick", "--x", "1"]) == 0
    assert seen == [["--quick", "--x", "1"]]


def test_discovery_prefers_the_current_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert experiments_dir() == REPO / "experiments"  # fallback: beside the package source
    (tmp_path / "experiments").mkdir()
    shutil.copy(FIXTURES / "toy.py", tmp_path / "experiments" / "mine.py")
    assert list(find_experiments()) == ["mine"]


def test_script_entry_point_reports_usage_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "toy.py"), "--set", "bogus=1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown key 'bogus'" in proc.stderr and "Traceback" not in proc.stderr


def test_dask_is_imported_only_for_scheduler_runs():
    code = (
        "import sys, rnnsim.cli, rnnsim.experiment, rnnsim.report; "
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_bench_row_reports_the_floor_at_the_rate_of_the_moment():
    """A bench row carries the timings, the speed-up, the GEMM rate measured for it, the ratio
    to the FLOP floor at that rate and what a second thread gave at the time."""
    from rnnsim.bench import row

    a = np.ones((64, 64))
    result = row("s", "case", lambda: a @ a, lambda: a @ a @ a, 2, flops=2.0 * 64**3, n=64)
    assert result["n"] == 64 and result["rnnsim_ms"] > 0 and result["reference_ms"] > 0
    assert result["speedup"] == result["reference_ms"] / result["rnnsim_ms"]
    assert result["gemm_gflops"] > 0
    assert result["floor_ms"] == 1e3 * 2.0 * 64**3 / (result["gemm_gflops"] * 1e9)
    assert result["x_floor"] == result["rnnsim_ms"] / result["floor_ms"]
    assert 0 < result["two_thread_speedup"] < 4  # about 1 to 2 on two cores


def test_two_thread_speedup_sees_a_single_core(monkeypatch):
    """With the second thread unable to run beside the first (a lock around each product), the
    probe reports no speed-up."""
    import threading

    from rnnsim import bench

    lock = threading.Lock()
    matmul = np.matmul

    def serialised(*args, **kwargs):
        with lock:
            return matmul(*args, **kwargs)

    monkeypatch.setattr(bench.np, "matmul", serialised)
    # the least of three probes: a busy machine can slow one probe's single-thread timing, never
    # make serialised threads overlap (a probe that sees two cores reads near 2)
    assert min(bench.two_thread_speedup(calls=50) for _ in range(3)) < 1.3


def test_bench_parts_suite_times_each_part_and_their_sum():
    """The parts suite times the small pass's serial parts and their sum, the weight gradient,
    the kernel and the public call, each row with the size that produced it."""
    from rnnsim.bench import parts_suite

    rows = parts_suite(quick=True, repeats=1)
    assert [r["case"] for r in rows][3:] == [
        "serial chain: sum of the three above",
        "weight gradient sum_t dA_t^T h_{t-1}",
        "whole kernel (rnn_loss_grad)",
        "whole public call (RNN.loss_and_grad)",
    ]
    assert all((r["n"], r["B"], r["T"]) == (32, 1, 1000) and r["rnnsim_ms"] > 0 for r in rows)
    assert rows[3]["rnnsim_ms"] == sum(r["rnnsim_ms"] for r in rows[:3])

"""Signals and failures of a run (issue 18): Ctrl-C and SIGTERM stop every executor within a
second or two, with one line and exit 130/143, and leave no process behind; failed points are
grouped on the terminal, with their tracebacks in OUT/NAME/errors.log."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from rnnsim.executors import Interrupted, is_interrupt
from rnnsim.experiment import Experiment, RunFailed, run_experiment

ROOT = Path(__file__).resolve().parent.parent

# One point = one call of a kernel that runs for about 20 s (a million steps of the Lyapunov QR
# iteration); the script marks the file SLOW_MARK just before the call.
SLOW = """
import os
from pathlib import Path

import pandas as pd

import rnnsim
from rnnsim.experiment import Experiment


def measure(point, seed):
    rnn = rnnsim.RNN.random(1, 32, 1, gain=2.0, seed=seed)
    rnnsim.lyapunov_spectrum(rnn, steps=10, transient=1)  # compiled (or loaded) before the mark
    Path(os.environ["SLOW_MARK"]).write_text("kernel")
    rnnsim.lyapunov_spectrum(rnn, steps=point["steps"], transient=1)
    return pd.DataFrame({"y": [float(point["n"] + seed)]})


EXPERIMENT = Experiment(
    name="slow",
    description="one long kernel call per point",
    grid={"n": [0, 1, 2, 3], "steps": [1_000_000]},
    quick=None,
    measure=measure,
)
"""


def _tagged(tag: str) -> list[str]:
    """Processes (pid and command) whose environment carries ``RUN_TAG=tag``: the run and every
    process it started, wherever they were reparented."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f"RUN_TAG={tag}".encode() in (proc / "environ").read_bytes():
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
                    found.append(f"{proc.name}: {cmd.decode(errors='replace')}")
            except OSError:  # gone meanwhile, or not ours to read
                pass
    return found


def _slow_run(tmp_path, *options, tag=None):
    """Start ``rnnsim run slow`` in a session of its own and return it once its first kernel
    call is one second old, with the tag in the environment of every process it starts."""
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "slow.py").write_text(textwrap.dedent(SLOW))
    mark = tmp_path / "mark"
    env = dict(os.environ, SLOW_MARK=str(mark), RUN_TAG=tag or "", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "rnnsim.cli", "run", "slow", "--experiments", str(scripts)]
    cmd += ["--out", str(tmp_path / "out"), "--no-figures", "--no-progress", *options]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, **pipes)
    deadline = time.time() + 120
    while not mark.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None or not mark.exists():
        _kill(proc)
        pytest.fail(f"the run did not reach its kernel: {proc.communicate()[1]}")
    time.sleep(1.0)
    return proc


def _kill(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def _interrupt(tmp_path, sig, *options, group=False):
    """Send ``sig`` to a slow run one second into its first kernel call (to the whole process
    group with ``group``, as a Ctrl-C at a terminal does), and return (exit status, seconds from
    the signal to the exit, stderr, processes of the run left 2 s after its exit)."""
    tag = uuid.uuid4().hex
    proc = _slow_run(tmp_path, *options, tag=tag)
    try:
        sent = time.time()
        os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        seconds = time.time() - sent
    finally:
        _kill(proc)
    left = _tagged(tag)
    for _ in range(20):  # processes that are exiting: give them 2 s
        if not left:
            break
        time.sleep(0.1)
        left = _tagged(tag)
    return proc.returncode, seconds, err, left


def _one_line(err: str, signame: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"slow: stopped by {signame}; 0 of 4 points done" in lines[0], err
    assert "resume with: rnnsim run slow" in lines[0] and "--experiments" in lines[0], err
    assert "failed" not in err


def test_sigint_during_a_kernel_stops_a_serial_run_at_once(tmp_path):
    status, seconds, err, left = _interrupt(tmp_path, signal.SIGINT)
    assert status == 130, err
    assert seconds < 3, f"took {seconds:.1f} s to stop"
    _one_line(err, "SIGINT")
    assert not left


def test_sigterm_stops_local_workers_and_leaves_no_process(tmp_path):
    status, seconds, err, left = _interrupt(tmp_path, signal.SIGTERM, "--workers", "2")
    assert status == 143, err
    assert seconds < 3, f"took {seconds:.1f} s to stop"
    _one_line(err, "SIGTERM")
    assert not left, f"processes outlived the run: {left}"


def test_workers_die_with_a_run_killed_by_sigkill(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    status, _, _, left = _interrupt(tmp_path, signal.SIGKILL, "--workers", "2")
    assert status == -signal.SIGKILL
    assert not left, f"processes outlived the run: {left}"


def test_ctrl_c_at_the_terminal_reaches_only_the_main_process(tmp_path):
    status, seconds, err, left = _interrupt(tmp_path, signal.SIGINT, "--workers", "2", group=True)
    assert status == 130, err
    assert seconds < 3, f"took {seconds:.1f} s to stop"
    _one_line(err, "SIGINT")  # no worker tracebacks
    assert not left, f"processes outlived the run: {left}"


@pytest.mark.slow
def test_sigterm_stops_a_local_dask_cluster_and_leaves_no_process(tmp_path):
    options = ("--scheduler", "local", "--workers", "2")
    status, seconds, err, left = _interrupt(tmp_path, signal.SIGTERM, *options)
    assert status == 143, err
    assert seconds < 3, f"took {seconds:.1f} s to stop"
    _one_line(err, "SIGTERM")  # no log of the cluster's shutdown
    assert not left, f"processes outlived the run: {left}"


@pytest.mark.slow
def test_a_lost_dask_scheduler_is_one_line(tmp_path):
    pytest.importorskip("distributed")
    file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    python = [sys.executable, "-m"]
    common = ["--scheduler-file", str(file), "--no-dashboard"]
    scheduler = subprocess.Popen(
        [*python, "distributed.cli.dask_scheduler", "--port", "0", *common], **quiet
    )
    worker = None
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (file.exists() and file.read_text().endswith("}")):
            time.sleep(0.1)
        env = dict(os.environ, SLOW_MARK=str(tmp_path / "mark"), PYTHONPATH=str(ROOT))
        command = [*python, "distributed.cli.dask_worker", "--nthreads", "1", *common]
        worker = subprocess.Popen(command, env=env, **quiet)
        address = json.loads(file.read_text())["address"]
        proc = _slow_run(tmp_path, "--scheduler", address)
        try:
            scheduler.kill()
            _, err = proc.communicate(timeout=60)
        finally:
            _kill(proc)
    finally:
        for p in (scheduler, worker):
            if p is not None:
                p.kill()
                p.wait()
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"slow: lost the Dask scheduler {address!r}; 0 of 4 points done")


# ------------------------------------------------------------------------------ in process


def _experiment(measure, name="fails"):
    return Experiment(
        name=name,
        description="fails on some points",
        grid={"a": [1, 2, 3, 4, 5, 6], "b": ["x"]},
        quick=None,
        measure=measure,
    )


def _depth_measure(point, seed):
    if point["a"] == 5:
        raise ZeroDivisionError("five")
    if point["a"] >= 3:
        raise ValueError("depth must be >= 1")
    return pd.DataFrame({"y": [float(point["a"])]})


def test_identical_failures_are_grouped_and_their_tracebacks_logged(tmp_path, capsys):
    with pytest.raises(RunFailed) as info:
        run_experiment(_experiment(_depth_measure), out=tmp_path, figures=False, progress=False)
    log = tmp_path / "fails" / "errors.log"
    lines = str(info.value).splitlines()
    assert lines[0].startswith("fails: 4 of 6 points failed")
    assert lines[1] == (
        "3 points failed with ValueError: depth must be >= 1 (first: point {'a': 3, 'b': 'x'} "
        f"seed 0); tracebacks in {log}"
    )
    assert lines[2].startswith("1 point failed with ZeroDivisionError: five (first: point {'a': 5")
    assert isinstance(info.value.__cause__, ValueError)
    # the terminal: one line per kind of failure as it happens, no traceback
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2, err
    # the log: every failed point, each kind's traceback once
    text = log.read_text()
    assert text.count("Traceback") == 2 and text.count("raise ValueError") == 1
    for a in (3, 4, 5, 6):
        assert f"point {{'a': {a}, 'b': 'x'}} seed 0 failed" in text
    assert len(list((tmp_path / "fails" / "points").glob("*.parquet"))) == 2

    # a run in which nothing fails removes the log of the earlier failures
    ok = _experiment(lambda p, s: pd.DataFrame({"y": [1.0]}))
    run_experiment(ok, out=tmp_path, figures=False, progress=False)
    assert not log.exists()


def test_the_command_prints_failures_without_a_traceback(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "boom.py").write_text(
        textwrap.dedent("""
        from rnnsim.experiment import Experiment

        def measure(point, seed):
            raise ValueError("depth must be >= 1")

        EXPERIMENT = Experiment(name="boom", description="always fails", grid={"a": [1, 2, 3]},
                                quick=None, measure=measure)
        """)
    )
    cmd = [sys.executable, "-m", "rnnsim.cli", "run", "boom", "--experiments", str(scripts)]
    cmd += ["--out", str(tmp_path / "out"), "--no-figures", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "3 points failed with ValueError: depth must be >= 1" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 3  # as it happened, the count, the kind


def _interrupted_kernel(point, seed):
    """What Numba raises when a Ctrl-C arrives during a kernel call."""
    if point["a"] == 2:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("kernel returned a result with an exception set") from None
    return pd.DataFrame({"y": [1.0]})


def test_an_interrupted_kernel_is_never_a_failed_point(tmp_path):
    exp = _experiment(_interrupted_kernel, name="ki")
    with pytest.raises(Interrupted) as info:
        run_experiment(exp, out=tmp_path, figures=False, progress=False)
    assert info.value.status == 130
    assert str(info.value).startswith("ki: stopped by SIGINT; 1 of 6 points done (cached)")
    assert not (tmp_path / "ki" / "errors.log").exists()
    # the point finished before the interruption is cached: a rerun computes the other five
    computed = []

    def measure(point, seed):
        computed.append(point["a"])
        return pd.DataFrame({"y": [1.0]})

    table = run_experiment(_experiment(measure, name="ki"), out=tmp_path, progress=False)
    assert computed == [2, 3, 4, 5, 6] and len(table) == 6


def test_is_interrupt_follows_the_cause_and_the_context():
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("returned a result with an exception set") from None
    except SystemError as exc:
        hidden = exc  # `from None` hides the context from tracebacks, but it is still there
    assert is_interrupt(hidden) and is_interrupt(RuntimeError("x").with_traceback(None)) is False
    caused = ValueError("wrapped")
    caused.__cause__ = Interrupted(signal.SIGTERM)
    assert is_interrupt(caused) and Interrupted(signal.SIGTERM).status == 143

"""The results folder's integrity (issue 18): point files that are checked when read, and runs
that own their folder.

Each test runs a tiny NumPy-only experiment written into a temporary folder, damages its point
cache or its lock the way the issue's probe did, and reruns it.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnsim import store
from rnnsim.cli import main as cli_main
from rnnsim.experiment import UsageError, load_experiment, run_experiment

SCRIPT = '''
"""A tiny experiment for tests/test_store.py."""

import os
import time

import numpy as np
import pandas as pd

from rnnsim.experiment import Experiment, main


def _gate():
    """Hold every point until the file $TINY_GATE exists (when it is set)."""
    gate = os.environ.get("TINY_GATE")
    deadline = time.monotonic() + 60
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)


def measure(point, seed):
    _gate()
    if os.environ.get("TINY_INTERRUPT") == "1":
        raise KeyboardInterrupt
    rng = np.random.default_rng([seed, point["a"]])
    k = np.arange(4)
    return pd.DataFrame(
        {
            "k": k,
            "y": rng.standard_normal(4) * point["c"],
            "big": k % 2 == 0,
            "note": [f"{point['b']}{i}" for i in k],
            "maybe": [1.5, np.nan, -0.0, 1e300],
        }
    )


def measure_two(point, seed):
    one = measure(point, seed)
    return {"first": one, "second": one[["k", "y"]].assign(y=one["y"] * 2)}


TINY = Experiment(
    name="tiny",
    description="Four rows per point (store test fixture).",
    grid={"a": [1, 2, 3], "b": ["x", "yy"], "c": [0.5]},
    quick=None,
    measure=measure,
    seeds=2,
    quick_seeds=2,
)

PAIR = Experiment(
    name="pair",
    description="Two tables per point (store test fixture).",
    grid={"a": [1, 2], "b": ["x"], "c": [1.0]},
    quick=None,
    measure=measure_two,
    seeds=2,
    quick_seeds=2,
    tables=["first", "second"],
)

EXPERIMENT = TINY

if __name__ == "__main__":
    main(TINY)
'''


@pytest.fixture
def tiny(tmp_path):
    """The experiment folder (``tiny.py``) and the experiment loaded from it."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "tiny.py").write_text(SCRIPT)
    return folder, load_experiment(folder / "tiny.py")


def run(experiment, out, **kw):
    return run_experiment(experiment, out=out, figures=False, progress=False, **kw)


def point_files(out, name="tiny"):
    return sorted((Path(out) / name / "points").glob("*.parquet"))


def corrupt_files(out, name="tiny"):
    return sorted((Path(out) / name / "points" / store.CORRUPT).glob("*"))


# ------------------------------------------------------------------------------ point files


def test_bit_flips_are_detected_or_provably_harmless(tiny, tmp_path, capsys):
    """300 single-bit flips (25 rounds, one in each of 12 point files): every flipped file is
    moved aside and recomputed, or reads back as exactly its clean table; every rerun's table
    equals the clean run's, and the last rerun, through the command line, exits 0."""
    folder, experiment = tiny
    out = tmp_path / "out"
    clean = run(experiment, out)
    files = point_files(out)
    assert len(files) == 12
    originals = {p: p.read_bytes() for p in files}
    frames = {p: pd.read_parquet(p) for p in files}
    rng = np.random.default_rng(18)
    flipped = detected = harmless = 0
    rounds = 25
    for r in range(rounds):
        shutil.rmtree(out / "tiny" / "points" / store.CORRUPT, ignore_errors=True)
        damaged = {}
        for p, data in originals.items():
            data = bytearray(data)
            i = int(rng.integers(len(data)))
            data[i] ^= 1 << int(rng.integers(8))
            p.write_bytes(bytes(data))
            damaged[p] = bytes(data)
            flipped += 1
        if r == rounds - 1:
            argv = ["run", "tiny", "--experiments", str(folder), "--out", str(out)]
            assert cli_main([*argv, "--no-figures", "--no-progress"]) == 0
            table = pd.read_parquet(out / "tiny" / "table.parquet")
        else:
            table = run(experiment, out)
        pd.testing.assert_frame_equal(table, clean, check_exact=True)
        moved = {p.name.split(".parquet")[0] + ".parquet" for p in corrupt_files(out)}
        for p in files:
            if p.name in moved:
                detected += 1
                assert p.read_bytes() == originals[p]  # recomputed, bit for bit
            else:  # not detected: then it must read back as the clean table, exactly
                again = pd.read_parquet(io.BytesIO(damaged[p]))
                pd.testing.assert_frame_equal(again, frames[p], check_exact=True)
                harmless += 1
    print(f"\nbit flips: {flipped} flipped, {detected} detected, {harmless} harmless")
    assert flipped == 300 and detected + harmless == flipped
    assert detected >= 150  # the rest hit bytes a reader never uses (statistics, padding)


def test_a_point_file_copied_over_another_name_is_caught(tiny, tmp_path, capsys):
    _, experiment = tiny
    out = tmp_path / "out"
    clean = run(experiment, out)
    first, second = point_files(out)[:2]
    shutil.copyfile(first, second)
    capsys.readouterr()
    table = run(experiment, out)
    pd.testing.assert_frame_equal(table, clean, check_exact=True)  # no duplicated rows
    assert [p.name for p in corrupt_files(out)] == [second.name]
    err = [line for line in capsys.readouterr().err.splitlines() if second.name in line]
    assert len(err) == 1 and "another point's file" in err[0] and "recomput" in err[0]


def test_truncated_empty_and_garbage_files_are_recomputed(tiny, tmp_path, capsys):
    _, experiment = tiny
    out = tmp_path / "out"
    clean = run(experiment, out)
    files = point_files(out)
    files[0].write_bytes(files[0].read_bytes()[:-40])  # truncated
    files[1].write_bytes(b"")  # empty
    files[2].write_bytes(np.random.default_rng(0).bytes(900))  # garbage
    files[3].write_bytes(b"PAR1" + bytes(200) + b"PAR1")  # garbage with the magic
    capsys.readouterr()
    table = run(experiment, out)  # no ArrowInvalid
    pd.testing.assert_frame_equal(table, clean, check_exact=True)
    assert len(corrupt_files(out)) == 4
    err = capsys.readouterr().err
    assert "4 point files" in err and "unreadable" in err and len(err.splitlines()) == 1


def test_files_without_an_integrity_record_are_recomputed(tiny, tmp_path, capsys):
    """Point files of an older rnnsim (plain Parquet) are treated as stale: recomputed."""
    _, experiment = tiny
    out = tmp_path / "out"
    clean = run(experiment, out)
    for p in point_files(out):
        pd.read_parquet(p).to_parquet(p, index=False)
    capsys.readouterr()
    pd.testing.assert_frame_equal(run(experiment, out), clean, check_exact=True)
    err = capsys.readouterr().err.strip()
    assert "12 point files" in err and "older rnnsim" in err and "\n" not in err
    capsys.readouterr()
    run(experiment, out)  # now all sound: nothing said, nothing moved
    assert capsys.readouterr().err == "" and len(corrupt_files(out)) == 12


def test_multi_table_points_are_checked_per_table(tiny, tmp_path):
    folder, _ = tiny
    (folder / "pair.py").write_text(SCRIPT.replace("EXPERIMENT = TINY", "EXPERIMENT = PAIR"))
    pair = load_experiment(folder / "pair.py")
    out = tmp_path / "out"
    clean = run(pair, out)
    files = point_files(out, "pair")
    assert len(files) == 8
    first = [p for p in files if p.name.endswith(".first.parquet")]
    second = [p for p in files if p.name.endswith(".second.parquet")]
    shutil.copyfile(first[0], second[0])  # another table of the same point, under this name
    first[1].write_bytes(first[1].read_bytes()[:-12])  # truncated
    tables = run(pair, out)
    for name in ("first", "second"):
        pd.testing.assert_frame_equal(tables[name], clean[name], check_exact=True)
    assert {p.name for p in corrupt_files(out, "pair")} == {second[0].name, first[1].name}


def test_read_point_rejects_parameter_columns_that_are_not_the_point(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "seed": [0, 0], "y": [0.5, 0.25]})
    path = tmp_path / "p.parquet"
    who = {"hash_": "h", "point": {"a": 1}, "seed": 0, "table": "table"}
    store.write_point(frame, path, **who)
    with pytest.raises(store.CorruptPoint, match="parameter columns"):
        store.read_point(path, **who)
    with pytest.raises(store.CorruptPoint, match="another grid point"):
        store.read_point(path, **(who | {"point": {"a": True}}))
    with pytest.raises(FileNotFoundError):
        store.read_point(tmp_path / "none.parquet", **who)


def test_digest_ignores_chunks_and_null_slots_and_sees_every_value():
    import pyarrow as pa

    frame = pd.DataFrame({"s": ["a", None, "ccc"], "f": [1.0, np.nan, 3.0], "i": [1, 2, 3]})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1)])
    assert store.table_digest(chunked) == store.table_digest(table)
    changed = pa.Table.from_pandas(frame.assign(s=["a", None, "ccd"]), preserve_index=False)
    assert store.table_digest(changed) != store.table_digest(table)
    renamed = table.rename_columns(["s", "g", "i"])
    assert store.table_digest(renamed) != store.table_digest(table)


# ------------------------------------------------------------------------------ the run lock


def test_a_second_run_fails_naming_the_holder(tiny, tmp_path):
    _, experiment = tiny
    out = tmp_path / "out"
    with store.run_lock(out / "tiny", command="rnnsim run tiny --seeds 3"):
        with pytest.raises(UsageError) as info:
            run(experiment, out, seeds=1)
    message = str(info.value)
    assert f"PID {os.getpid()}" in message and "--seeds 3" in message and "--wait" in message
    assert "\n" not in message
    assert not (out / "tiny" / "manifest.json").exists()  # nothing written by the refused run
    run(experiment, out, seeds=1)  # free again


def test_wait_queues_until_the_holder_finishes(tiny, tmp_path, capsys):
    _, experiment = tiny
    out = tmp_path / "out"
    held, release = threading.Event(), threading.Event()

    def holder():
        with store.run_lock(out / "tiny", command="the other run"):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(30)
    threading.Timer(1.0, release.set).start()
    start = time.monotonic()
    run(experiment, out, wait=True)
    thread.join()
    assert time.monotonic() - start >= 0.9
    err = capsys.readouterr().err
    assert "the other run" in err and "waiting" in err and "free" in err


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_stale_lock_is_reported_and_taken_over(tiny, tmp_path, capsys):
    _, experiment = tiny
    out = tmp_path / "out"
    lock = out / "tiny" / store.LOCK
    lock.parent.mkdir(parents=True)
    stale = store._me("rnnsim run tiny (killed)")
    stale = stale.__class__(**{**stale.__dict__, "pid": dead_pid(), "pid_start": None})
    lock.write_text(json.dumps(stale.__dict__))
    run(experiment, out)
    err = capsys.readouterr().err
    assert "took over" in err and f"PID {stale.pid}" in err and "(killed)" in err
    assert not lock.exists()


def test_the_lock_is_released_on_errors_and_interrupts(tiny, tmp_path, monkeypatch):
    _, experiment = tiny
    out = tmp_path / "out"
    monkeypatch.setenv("TINY_INTERRUPT", "1")
    with pytest.raises(KeyboardInterrupt):
        run(experiment, out)
    assert not (out / "tiny" / store.LOCK).exists()
    with pytest.raises(UsageError):
        run(experiment, out, sets=["b=zzz"])
    assert not (out / "tiny" / store.LOCK).exists()


def _start(folder, out, *options, gate=None):
    env = {k: v for k, v in os.environ.items() if k != "TINY_GATE"}
    if gate is not None:
        env["TINY_GATE"] = str(gate)
    argv = [sys.executable, "-m", "rnnsim.cli", "run", "tiny", "--experiments", str(folder)]
    argv += ["--out", str(out), "--no-figures", "--no-progress", *options]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(condition, what, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_concurrent_runs_with_different_seeds_do_not_mix(tiny, tmp_path):
    """The issue's probe: one run with 3 seeds, one with 1, into one folder at once. The second
    fails in one line naming the first; with --wait it runs after it. Each stored run's manifest
    and table agree, and the latest run's files are all the waiting run's."""
    folder, _ = tiny
    out, gate = tmp_path / "out", tmp_path / "gate"
    first = _start(folder, out, "--seeds", "3", gate=gate)
    lock = out / "tiny" / store.LOCK
    _wait_for(lock.exists, "the first run's lock")
    refused = _start(folder, out, "--seeds", "1")
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2, err
    assert err.count("\n") == 1 and f"PID {first.pid}" in err and "--seeds 3" in err, err
    waiting = _start(folder, out, "--seeds", "1", "--wait")
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(waiting.stderr))
    reader.start()
    _wait_for(lambda: any("waiting" in line for line in lines), "the --wait message")
    gate.touch()
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert waiting.wait(timeout=120) == 0
    reader.join()
    assert any("free" in line for line in lines)
    for label, seeds in (("full_seeds=3", [0, 1, 2]), ("full_seeds=1", [0])):
        run_dir = out / "tiny" / "runs" / label
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["seeds"] == seeds
        assert sorted(pd.read_parquet(run_dir / "table.parquet")["seed"].unique()) == seeds
    latest = json.loads((out / "tiny" / "manifest.json").read_text())
    assert latest["label"] == "full_seeds=1"
    assert sorted(pd.read_parquet(out / "tiny" / "table.parquet")["seed"].unique()) == [0]
    assert not lock.exists()

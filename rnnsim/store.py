"""The results folder's integrity: point files that prove what they hold, and a run's lock.

Point files. Each finished (grid point, seed) of an experiment is cached as
``OUT/NAME/points/<hash>.parquet`` (``<hash>.TABLE.parquet`` for each table of a multi-table
experiment). `write_point` stores, in the file's key-value metadata under `RECORD_KEY`, an
integrity record: the point's hash, its table name, its grid point, its seed and the SHA-256 of
the table's canonical bytes (`table_digest`). `read_point` trusts a file only when every part of
that record matches the point it was asked for and the table's parameter columns do too; any
other file (unreadable, truncated, empty, garbage, flipped bits, another point's file under this
name, a file without the record) raises `CorruptPoint`, and `load_point` moves it aside into
``points/corrupt/`` so that the point is recomputed. A cached table can thus hold neither
another point's rows nor altered values.

The run lock. `run_lock` holds ``OUT/NAME/run.lock`` (created with ``O_CREAT | O_EXCL``; it
names the holder's PID, host, start time and command line) for the whole of a run, so that two
runs never write one folder at once: a second run fails in one line naming the holder, or waits
for it (``--wait``). A lock left by a process that no longer runs on this host is reported and
taken over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "CORRUPT",
    "LOCK",
    "CorruptPoint",
    "FolderBusy",
    "Holder",
    "atomic_write",
    "load_point",
    "move_aside",
    "read_point",
    "run_lock",
    "table_digest",
    "write_point",
]

#: The key of a point file's integrity record in its Parquet key-value metadata.
RECORD_KEY = b"rnnsim.point"
#: The version of the integrity record's layout.
RECORD_FORMAT = 1
#: The folder of ``points/`` that receives the files that failed their check.
CORRUPT = "corrupt"
#: The run lock's file name in ``OUT/NAME/``.
LOCK = "run.lock"
#: The reason given for a point file written before point files carried a record.
NO_RECORD = "no integrity record: written by an older rnnsim, or not by rnnsim"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it onto ``path``.

    Readers see the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------------------------
# Point files
# --------------------------------------------------------------------------------------------


class CorruptPoint(ValueError):
    """A point file that must not be used; the message says why, in a few words that are the
    same for every file with the same fault (so that reports can group them)."""


def table_digest(table: pa.Table) -> str:
    """SHA-256 (hex) of an Arrow table's canonical bytes.

    The bytes are those of the column names and types, the row count, the pandas metadata (which
    decides the DataFrame's dtypes) and, per column, its validity mask and the values of its
    non-null entries, laid out independently of chunking, slicing and the (undefined) contents
    of null slots. A table read back from Parquet therefore has the digest of the table written.

    Parameters
    ----------
    table : pyarrow.Table

    Returns
    -------
    str
        64 hex digits.
    """
    h = hashlib.sha256()
    fields = [[f.name, str(f.type)] for f in table.schema]
    h.update(json.dumps({"fields": fields, "rows": table.num_rows}).encode())
    h.update((table.schema.metadata or {}).get(b"pandas", b""))
    for column in table.columns:
        _digest_array(h, column.combine_chunks())
    return h.hexdigest()


def _digest_array(h, array: pa.Array) -> None:
    """Feed one Arrow array's validity mask and non-null values into the hash ``h``."""
    kind = array.type
    if array.null_count:
        valid = array.is_valid().to_numpy(zero_copy_only=False)
        h.update(np.packbits(valid).tobytes())
        array = array.filter(pa.array(valid))
    h.update(len(array).to_bytes(8, "little"))
    if pa.types.is_null(kind):
        return
    if pa.types.is_dictionary(kind):
        _digest_array(h, array.dictionary)
        _digest_array(h, array.indices)
    elif (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_temporal(kind)
    ):
        h.update(np.ascontiguousarray(array.to_numpy(zero_copy_only=False)).tobytes())
    elif len(array) and (
        pa.types.is_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_large_binary(kind)
    ):
        wide = pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)
        _, offsets, data = array.buffers()
        offsets = np.frombuffer(offsets, np.int64 if wide else np.int32)
        offsets = offsets[array.offset : array.offset + len(array) + 1]
        h.update((offsets - offsets[0]).tobytes())
        if data is not None:
            h.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    else:  # nested and other rare types: their Python values, exactly (repr of floats round-trips)
        h.update(repr(array.to_pylist()).encode())


def _canonical_point(point: Mapping, seed: int, table: str, hash_: str) -> str:
    """The identity of a point file as one JSON text (types kept: ``true`` is not ``1``)."""
    who = {"hash": hash_, "table": table, "point": dict(point), "seed": int(seed)}
    return json.dumps(who, sort_keys=True)


def write_point(
    frame: pd.DataFrame,
    path: str | os.PathLike,
    *,
    hash_: str,
    point: Mapping,
    seed: int,
    table: str,
) -> None:
    """Write one point's table atomically, with its integrity record.

    Parameters
    ----------
    frame : pandas.DataFrame
        The point's tidy table, its parameter columns and ``seed`` first (as `read_point`
        checks them).
    path : path
        ``points/<hash>.parquet`` or ``points/<hash>.TABLE.parquet``.
    hash_ : str
        The point's cache key (`rnnsim.experiment.point_hash`), which names the file.
    point : dict
        The grid point, parameter -> value.
    seed : int
    table : str
        The table's name (``"table"`` for a single-table experiment).
    """
    data = pa.Table.from_pandas(frame, preserve_index=False)
    record = {
        "format": RECORD_FORMAT,
        "hash": hash_,
        "table": table,
        "point": dict(point),
        "seed": int(seed),
        "sha256": table_digest(data),
    }
    metadata = {**(data.schema.metadata or {}), RECORD_KEY: json.dumps(record).encode()}
    data = data.replace_schema_metadata(metadata)
    atomic_write(path, lambda tmp: pq.write_table(data, tmp))


def read_point(
    path: str | os.PathLike, *, hash_: str, point: Mapping, seed: int, table: str
) -> pd.DataFrame:
    """Read one point's table, checked against the point it must hold.

    Parameters are as in `write_point`: what the file must hold.

    Returns
    -------
    pandas.DataFrame
        The table, as `pandas.read_parquet` returns it.

    Raises
    ------
    FileNotFoundError
        When there is no file.
    CorruptPoint
        When the file fails a check: it does not parse, has no integrity record (`NO_RECORD`),
        its record names another hash, table, point or seed, its table's SHA-256 is not the
        recorded one, or its parameter columns are not the point's. The message says which.
    """
    try:
        data = pq.read_table(path)
    except FileNotFoundError:
        raise
    except Exception:  # noqa: BLE001 - any failure to parse means a damaged file
        raise CorruptPoint("unreadable as Parquet") from None
    raw = (data.schema.metadata or {}).get(RECORD_KEY)
    if raw is None:
        raise CorruptPoint(NO_RECORD)
    try:
        record = json.loads(raw)
        found = _canonical_point(record["point"], record["seed"], record["table"], record["hash"])
        recorded = record["sha256"]
    except (ValueError, KeyError, TypeError):
        raise CorruptPoint("a damaged integrity record") from None
    if record["hash"] != hash_ or record["table"] != table:
        raise CorruptPoint("another point's file under this name")
    if found != _canonical_point(point, seed, table, hash_):
        raise CorruptPoint("a record of another grid point or seed than its hash stands for")
    if table_digest(data) != recorded:
        raise CorruptPoint("a checksum mismatch: its table is not the one written")
    _check_parameters(data, point, seed)
    try:
        return data.to_pandas()
    except Exception as exc:  # noqa: BLE001
        raise CorruptPoint(f"no table in it: {type(exc).__name__}") from None


def _check_parameters(data: pa.Table, point: Mapping, seed: int) -> None:
    """CorruptPoint unless ``data`` starts with the point's parameter columns and ``seed``, each
    holding the point's value (of its type) in every row."""
    expected = [*point.items(), ("seed", int(seed))]
    if data.column_names[: len(expected)] != [name for name, _ in expected]:
        raise CorruptPoint("parameter columns that do not hold the point")
    for name, value in expected:
        found = data.column(name).unique().to_pylist()  # [] for a point without rows
        if found and (found != [value] or type(found[0]) is not type(value)):
            raise CorruptPoint("parameter columns that do not hold the point")


def load_point(
    paths: Mapping[str, Path], *, hash_: str, point: Mapping, seed: int
) -> tuple[dict[str, pd.DataFrame] | None, list[tuple[Path, str]]]:
    """A point's cached tables, each checked (`read_point`); files that fail are moved aside.

    Parameters
    ----------
    paths : dict of str -> Path
        Table name -> the point's file for it.
    hash_, point, seed
        The point the files must hold (see `write_point`).

    Returns
    -------
    tables : dict of str -> pandas.DataFrame, or None
        Every table, when every file is present and sound; else None (compute the point).
    problems : list of (Path, str)
        Each file that failed a check and why; it is now in ``points/corrupt/`` (see
        `move_aside`).
    """
    tables, problems = {}, []
    for table, path in paths.items():
        try:
            tables[table] = read_point(path, hash_=hash_, point=point, seed=seed, table=table)
        except FileNotFoundError:
            continue
        except CorruptPoint as exc:
            move_aside(path)
            problems.append((Path(path), str(exc)))
    return (tables if len(tables) == len(paths) else None), problems


def move_aside(path: str | os.PathLike) -> Path:
    """Move a point file into ``corrupt/`` beside it (as ``NAME``, or ``NAME.K`` when taken)."""
    path = Path(path)
    folder = path.parent / CORRUPT
    folder.mkdir(exist_ok=True)
    target, k = folder / path.name, 1
    while target.exists():
        target, k = folder / f"{path.name}.{k}", k + 1
    os.replace(path, target)
    return target


# --------------------------------------------------------------------------------------------
# The run lock
# --------------------------------------------------------------------------------------------


class FolderBusy(RuntimeError):
    """Another live run holds the folder's lock; the message names it (one line)."""


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a run lock: the content of ``run.lock``."""

    pid: int
    host: str
    started: str
    command: str
    token: str
    pid_start: str | None = None  # the process' start time (Linux), to tell a reused PID

    def describe(self) -> str:
        """``PID 123 on HOST since TIME (COMMAND)``, or what is known of an unreadable lock."""
        if self.pid < 0:
            return f"an unknown run (its {LOCK} of {self.started} is unreadable; delete it if no run is active)"
        return f"PID {self.pid} on {self.host} since {self.started} ({self.command})"

    def is_stale(self) -> bool:
        """Whether the holder is a process of this host that no longer runs."""
        if self.host != socket.gethostname():
            return False  # cannot tell: assume it runs
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        start = _process_start(self.pid)
        return self.pid_start is not None and start is not None and start != self.pid_start


def _process_start(pid: int) -> str | None:
    """A process' start time in clock ticks since boot (``/proc/PID/stat``), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def _me(command: str) -> Holder:
    return Holder(
        pid=os.getpid(),
        host=socket.gethostname(),
        started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        command=command,
        token=uuid.uuid4().hex,
        pid_start=_process_start(os.getpid()),
    )


def _create(path: Path, me: Holder) -> bool:
    """Create the lock file holding ``me`` (``O_CREAT | O_EXCL``); False if it exists."""
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            return False
        except FileNotFoundError:  # a run that found nothing to keep removed the empty folder
            path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(dataclasses.asdict(me)) + "\n")
    return True


def _holder(path: Path) -> Holder | None:
    """The lock's holder; None when there is no lock. A lock whose content does not parse (a
    holder between creating and writing it, or a damaged file) reads as an unknown holder."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Holder(**json.loads(text))
    except (ValueError, TypeError):
        mtime = path.stat().st_mtime if path.exists() else time.time()
        return Holder(
            -1, "?", time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(mtime)), "?", text
        )


def _take_over(path: Path, stale: Holder, me: Holder) -> bool:
    """Replace the lock of ``stale`` by ``me``; False when someone else changed it first.

    Runs that find the same stale lock take turns on an exclusive ``flock`` of it, and each
    replaces it only if it still holds ``stale``, so that exactly one of them takes it over.
    """
    import fcntl

    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; the flock lives as long as it
    except FileNotFoundError:
        return False
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if _holder(path) != stale:
            return False
        path.unlink()
        return _create(path, me)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _acquire(path: Path, me: Holder, wait: bool, poll: float) -> None:
    """Take the lock at ``path`` for ``me``: at once, after a stale holder, or (``wait``) once
    the live holder has finished. FolderBusy when it is held and ``wait`` is False."""
    folder, waiting_since = path.parent, None
    while not _create(path, me):
        holder = _holder(path)
        if holder is None:
            continue  # released between our attempt and the look
        if holder.pid >= 0 and holder.is_stale():
            if _take_over(path, holder, me):
                _say(
                    f"{folder}: took over the lock of a run that no longer runs: "
                    f"{holder.describe()}"
                )
                return
            continue
        if not wait:
            raise FolderBusy(
                f"{folder} is in use by another run: {holder.describe()}; "
                "rerun when it has finished, or add --wait to queue after it"
            )
        if waiting_since is None:
            _say(f"{folder} is in use by {holder.describe()}; waiting for it to finish (--wait)")
            waiting_since = time.monotonic()
        time.sleep(poll)
    if waiting_since is not None:
        _say(f"{folder} is free after {time.monotonic() - waiting_since:.0f} s; starting")


@contextlib.contextmanager
def run_lock(
    folder: str | os.PathLike, *, command: str, wait: bool = False, poll: float = 0.5
) -> Iterator[Holder]:
    """Hold ``folder/run.lock`` for the duration of the ``with`` block.

    Parameters
    ----------
    folder : path
        The folder a run owns (``OUT/NAME``); created if missing.
    command : str
        The command line of this run, written into the lock for whoever finds it taken.
    wait : bool
        When the lock is held by a live run: wait until it is free (printing one line once)
        instead of failing.
    poll : float
        Seconds between looks while waiting.

    Yields
    ------
    Holder
        This run's entry in the lock.

    Raises
    ------
    FolderBusy
        The lock is held by a live run (or one on another host) and ``wait`` is False.

    Notes
    -----
    The lock is released on every way out of the block (return, exception, KeyboardInterrupt),
    and only if it is still this run's; the folders made for it are removed again if the run
    left them empty (a run refused for a bad option leaves nothing). A lock whose holder died
    (same host, PID gone or reused) is reported in one line and taken over.
    """
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    me = _me(command)
    try:
        _acquire(path, me, wait, poll)
        try:
            yield me
        finally:
            if _holder(path) == me:
                path.unlink(missing_ok=True)
    finally:
        for empty in made:
            try:
                empty.rmdir()
            except OSError:  # not empty: the run wrote there
                break

"""Executors: run a sweep's jobs serially, in local processes or on a Dask cluster.

An executor knows nothing of experiments. It gets a list of jobs (dicts with at least a
``"hash"``) and two ways to compute one: ``local(job)``, called in this process by a serial run,
and ``remote(job) -> (fn, args)``, a function picklable by reference and its arguments, called as
``fn(*args)`` in a worker process (`point_task` sizes the worker's thread pools first). Every
executor is a generator of ``(job, result, seconds, exception)`` in completion order; closing it
shuts its pool or cluster down.

Signals. While `stop_on_signals` is in force, SIGINT (Ctrl-C) and SIGTERM raise `Interrupted` in
the main thread, and every executor stops within a second:

- serial: each job runs in one helper thread while the main thread waits, so the main thread takes
  the signal at once even while a kernel runs (the kernels release the GIL), and abandons the call;
- local processes: the workers run in process groups of their own (a Ctrl-C at the terminal does
  not reach them), and an interrupted run terminates them instead of waiting for their points;
  on Linux they die with the run even when it is killed with SIGKILL;
- Dask: a ``LocalCluster``'s processes start with SIGINT blocked, and an interrupted run kills
  them before closing the cluster; a scheduler that goes away ends the run with `SchedulerLost`
  (one line, not a failure per job).

A KeyboardInterrupt is never reported as a failed job: Numba surfaces one raised during a kernel as
a SystemError whose ``__cause__`` or ``__context__`` is the KeyboardInterrupt (`is_interrupt`).
"""

from __future__ import annotations

import contextvars
import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError
from contextlib import contextmanager, suppress

from rnnsim import runtime

__all__ = [
    "Interrupted",
    "SchedulerLost",
    "UsageError",
    "executor",
    "is_interrupt",
    "point_task",
    "progress",
    "stop_on_signals",
    "exit_if_abandoned",
    "THREAD_ENV_VARS",
]

#: Environment variables that size the BLAS/OpenMP thread pools of a worker process.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class UsageError(ValueError):
    """A mistake on the command line (unknown experiment or axis, bad value, ...).

    The CLI prints its message and exits with status 2, without a traceback.
    """


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM.

    Its message is the one line the command prints; `status` is the exit status, 128 + the
    signal's number (130 for SIGINT, 143 for SIGTERM). A KeyboardInterrupt, so that code that
    catches ``Exception`` lets it through.
    """

    def __init__(self, signum: int, message: str | None = None):
        self.signum = int(signum)
        super().__init__(message or f"interrupted by {signal.Signals(self.signum).name}")

    @property
    def status(self) -> int:
        """The exit status of a process stopped by this signal: 128 + its number."""
        return 128 + self.signum


class SchedulerLost(RuntimeError):
    """The Dask scheduler of a run went away (its message names the scheduler)."""


def is_interrupt(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt or was raised while handling or because of one.

    Numba surfaces a Ctrl-C taken during a kernel call as a ``SystemError`` whose ``__cause__``
    or ``__context__`` is the KeyboardInterrupt: such a job was interrupted, it did not fail.
    """
    stack, seen = [exc], set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        stack += [e.__cause__, e.__context__]
    return False


def _failure(exc: Exception) -> Exception:
    """``exc``, the failure of one job, unless it is an interruption: then `Interrupted`."""
    if is_interrupt(exc):
        raise Interrupted(signal.SIGINT) from None
    return exc


@contextmanager
def stop_on_signals():
    """While the block runs, the first SIGINT or SIGTERM raises `Interrupted` in the main thread.

    Later signals are ignored until the block exits, so that the executors' clean-up (terminating
    workers) is not cut short. Nothing changes outside the main thread, or for a signal whose
    handler is not Python's default (ignored by the caller, or handled by the application).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)

    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    old = {s: signal.signal(s, handler) for s, d in defaults.items() if signal.getsignal(s) is d}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


@contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread while the block starts processes: they inherit the mask, so
    that a Ctrl-C at the terminal cannot reach them before they leave its process group. A
    SIGINT that arrives meanwhile is delivered when the block exits."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    try:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass


def _die_with(parent: int) -> None:
    """Have Linux kill this process when ``parent`` (the process that started it) dies, even by
    SIGKILL (``prctl(PR_SET_PDEATHSIG)``); exit at once if it is already gone. Elsewhere
    nothing: a worker whose parent was killed ends when it next asks for a job."""
    if sys.platform.startswith("linux"):
        import ctypes

        with suppress(OSError, AttributeError):  # a C library without prctl
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _worker_init(threads: int, parent: int) -> None:
    """Initializer of local worker processes: die with the ``parent`` process, leave the
    terminal's process group and ignore SIGINT (the parent stops the workers), then size the
    BLAS and Numba thread pools."""
    _die_with(parent)
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)
    runtime.configure()
    _set_threads(threads)


_IN_WORKER = False


def progress(iterable, desc: str | None = None, total: int | None = None):
    """A nested progress bar for long loops inside ``measure`` (e.g. training steps).

    Shown under the run's bar when points run in this process; a plain iterator in worker
    processes (whose output would interleave). Usage: ``for step in progress(range(n), "train")``.
    """
    if _IN_WORKER:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, position=1, leave=False, disable=None)


def point_task(fn: Callable, args: tuple, threads: int):
    """What a worker runs: configure the process, call ``fn(*args)``, time it.

    Returns ``(result, seconds)``.
    """
    global _IN_WORKER
    _IN_WORKER = True
    runtime.configure()  # once per process (Dask workers have no initializer)
    # per call: Numba's thread count is per thread (Dask runs tasks in threads)
    _set_threads(threads)
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextmanager
def _env(values: Mapping[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Caller:
    """One daemon thread that runs a serial run's calls, one at a time, while the caller waits.

    The waiting main thread takes a signal at once, even while a kernel runs in the helper thread
    (kernels release the GIL); an interrupted caller abandons the call, and the daemon thread
    ends with the process (in a process that goes on, as a notebook does, the abandoned call
    finishes in the background and its result is dropped). Each call runs in a copy of the caller's context variables, with the
    caller's Numba thread count.
    """

    def __init__(self):
        numba = sys.modules.get("numba")
        self._threads = numba.get_num_threads() if numba is not None else None
        self._calls = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="rnnsim-serial", daemon=True)
        self._thread.start()

    def _serve(self):
        _set_threads(self._threads)
        while (item := self._calls.get()) is not None:
            context, fn, arg, done, box = item
            try:
                box["result"] = context.run(fn, arg)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["exc"] = exc
            done.set()

    def __call__(self, fn: Callable, arg):
        done, box = threading.Event(), {}
        self._calls.put((contextvars.copy_context(), fn, arg, done, box))
        while not done.wait(0.5):  # a timed wait: the main thread runs signal handlers
            pass
        if "exc" in box:
            raise box.pop("exc")
        return box["result"]

    def close(self):
        self._calls.put(None)


def exit_if_abandoned(status: int) -> None:
    """End the process now with ``status`` when a serial run abandoned a call that still runs.

    For command-line entry points after an interruption: shutting the interpreter down while a
    kernel runs in the daemon thread can crash it (a segfault after the run's one-line message,
    seen in CI), and a stopped command has nothing left to do. Streams are flushed first.
    """
    serial = [t for t in threading.enumerate() if t.name == "rnnsim-serial"]
    for thread in serial:  # an idle thread ends as soon as it reads close()'s None
        thread.join(0.2)
    if any(thread.is_alive() for thread in serial):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _run_serial(jobs, local):
    call = _Caller()
    try:
        for job in jobs:
            start = time.perf_counter()
            try:
                result = call(local, job)
            except Exception as exc:  # noqa: BLE001 - reported by the caller
                yield job, None, None, _failure(exc)
                continue
            yield job, result, time.perf_counter() - start, None
    finally:
        call.close()


def _run_processes(jobs, remote, workers):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, _cores() // workers)
    # Children are spawned (no fork of a process holding threads) and inherit these variables
    # before they import NumPy, so their BLAS pools start at the right size. The pool starts
    # its processes as the jobs are submitted, with SIGINT blocked (see _worker_init).
    pool = None
    try:
        with _env({v: str(threads) for v in THREAD_ENV_VARS}), _sigint_blocked():
            pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(threads, os.getpid()),
            )
            futures = {pool.submit(point_task, *remote(j), threads): j for j in jobs}
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                result, seconds = fut.result()
            except Exception as exc:  # noqa: BLE001
                yield job, None, None, _failure(exc)
                continue
            yield job, result, seconds, None
    except BaseException:  # interrupted, or closed early: do not wait for the running points
        if pool is not None:
            _terminate(pool)
        raise
    pool.shutdown(wait=True)


def _terminate(pool) -> None:
    """Stop a process pool at once: SIGTERM to each worker's process group (the worker and
    anything it started), then shut the pool down without waiting for queued jobs."""
    for process in list(pool._processes.values()):  # private, but there since Python 3.2
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):  # gone, or not yet its own group
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(jobs, remote, workers, scheduler, name):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UsageError("--scheduler needs Dask distributed: pip install 'rnnsim[dask]'") from exc

    cluster = None
    if scheduler == "local":
        n = workers if workers and workers > 0 else _cores()
        with _sigint_blocked():  # the cluster's processes and its event loop's thread inherit it
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        threads = max(1, _cores() // n)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise UsageError(
                f"--scheduler: cannot reach Dask scheduler {scheduler!r}: {exc}"
            ) from exc
        threads = 1
    run_id = uuid.uuid4().hex[:8]
    try:
        futures, by_key = [], {}
        for j in jobs:
            fut = client.submit(
                point_task,
                *remote(j),
                threads,
                pure=False,
                key=f"{name}-{j['hash']}-{run_id}",
            )
            futures.append(fut)
            by_key[fut.key] = j
        with _quiet("distributed.client"):  # a lost scheduler: one line, not a log per retry
            for fut in as_completed(futures):
                job = by_key[fut.key]
                try:
                    result, seconds = fut.result()
                except Exception as exc:  # noqa: BLE001
                    if isinstance(exc, CancelledError) and client.status != "running":
                        raise SchedulerLost(f"lost the Dask scheduler {scheduler!r}") from None
                    yield job, None, None, _failure(exc)
                    continue
                finally:
                    fut.release()
                yield job, result, seconds, None
    except BaseException:  # interrupted, closed early or lost: do not wait for running points
        with _quiet("distributed"):
            _stop_dask(client, cluster)
        raise
    with _quiet("distributed.client"):
        client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def _quiet(prefix: str):
    """Every logger whose name starts with ``prefix`` silent but for critical messages meanwhile
    (Dask's configuration sets levels on ``distributed.client`` and others of its own)."""
    import logging

    names = [n for n in list(logging.root.manager.loggerDict) if n.startswith(prefix)]
    loggers = [logging.getLogger(n) for n in [prefix, *names]]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def _stop_dask(client, cluster) -> None:
    """Close a Dask client at once, and its LocalCluster after killing the cluster's worker
    processes (a nanny would otherwise give a worker busy in a kernel seconds to finish)."""
    if cluster is not None:
        for nanny in list(cluster.workers.values()):
            pid = getattr(nanny, "pid", None)
            if pid:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    client.close(timeout=1)
    if cluster is not None:
        cluster.close(timeout=1)


def executor(
    jobs: list[dict],
    local: Callable[[dict], object],
    remote: Callable[[dict], tuple[Callable, tuple]],
    workers: int | None,
    scheduler: str | None,
    name: str,
):
    """The generator of ``(job, result, seconds, exception)``, in completion order, that runs
    ``jobs`` serially (``local(job)``), in ``workers`` local processes or on Dask (``fn(*args)``
    for ``fn, args = remote(job)``). ``name`` prefixes the Dask task keys."""
    if not jobs:
        return iter(())
    if scheduler is not None:
        return _run_dask(jobs, remote, workers, scheduler, name)
    if (workers or 1) > 1:
        return _run_processes(jobs, remote, min(workers, len(jobs)))
    return _run_serial(jobs, local)

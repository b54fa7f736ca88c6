"""Executors: run a sweep's jobs serially, in local processes or on a Dask cluster.

An executor knows nothing of experiments. It gets a list of jobs (dicts with at least a
``"hash"``) and two ways to compute one: ``local(job)``, called in this process by a serial run,
and ``remote(job) -> (fn, args)``, a function picklable by reference and its arguments, called as
``fn(*args)`` in a worker process (`point_task` sizes the worker's thread pools first). Every
executor is a generator of ``(job, result, seconds, exception)`` in completion order; closing it
shuts its pool or cluster down.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import contextmanager

from rnnsim import runtime

__all__ = ["UsageError", "executor", "point_task", "progress", "THREAD_ENV_VARS"]

#: Environment variables that size the BLAS/OpenMP thread pools of a worker process.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class UsageError(ValueError):
    """A mistake on the command line (unknown experiment or axis, bad value, ...).

    The CLI prints its message and exits with status 2, without a traceback.
    """


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    try:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass


def _worker_init(threads: int) -> None:
    """Initializer of local worker processes: size the BLAS and Numba thread pools."""
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


def _run_serial(jobs, local):
    for job in jobs:
        start = time.perf_counter()
        try:
            result = local(job)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            yield job, None, None, exc
            continue
        yield job, result, time.perf_counter() - start, None


def _run_processes(jobs, remote, workers):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, _cores() // workers)
    # Children are spawned (no fork of a process holding threads) and inherit these variables
    # before they import NumPy, so their BLAS pools start at the right size.
    with _env({v: str(threads) for v in THREAD_ENV_VARS}):
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(threads,),
        )
        try:
            futures = {pool.submit(point_task, *remote(j), threads): j for j in jobs}
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    result, seconds = fut.result()
                except Exception as exc:  # noqa: BLE001
                    yield job, None, None, exc
                    continue
                yield job, result, seconds, None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(jobs, remote, workers, scheduler, name):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UsageError("--scheduler needs Dask distributed: pip install 'rnnsim[dask]'") from exc

    cluster = None
    if scheduler == "local":
        n = workers if workers and workers > 0 else _cores()
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
        for fut in as_completed(futures):
            job = by_key[fut.key]
            try:
                result, seconds = fut.result()
            except Exception as exc:  # noqa: BLE001
                yield job, None, None, exc
                continue
            finally:
                fut.release()
            yield job, result, seconds, None
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


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

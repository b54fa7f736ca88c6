"""``rnnsim bench``: time every kernel against its NumPy twin and print a table.

Each suite is a function registered with `suite` that returns rows (dicts). A row times one
computation at one size: ``rnnsim_ms`` (median over repeats of the Numba path through the public
API), ``reference_ms`` (its plain NumPy twin in `rnnsim.reference`), ``speedup``, ``first_ms`` (the
first call in this process: compilation or on-disk cache load, reported apart) and, where the
computation is dominated by matrix products, ``floor_ms`` = FLOPs / this machine's float64
matrix-multiply rate, measured again just before and just after the kernel in each such row
(``gemm_gflops``, the faster of the two): on a shared or virtual machine the rate drifts by tens
of percent within minutes, and the ratio ``x_floor`` is only meaningful against the rate of the
same moment. Optional peers (PyTorch) are timed when installed; nothing requires them. Later
issues add suites here. ``--contention`` times every row twice, quiet and beside one busy process
(`with_contention`), and reports the ratio.
"""

import argparse
import functools
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd

SUITES = {}


def suite(name):
    """Register a benchmark suite: ``fn(quick: bool, repeats: int) -> list of row dicts``."""

    def register(fn):
        SUITES[name] = fn
        return fn

    return register


def timeit(fn, repeats):
    """(first call seconds, median of ``repeats`` further calls in seconds)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


def matmul_gflops():
    """This machine's float64 matrix-multiply rate (GFLOP/s) now, from 1024^2 GEMMs (NumPy's BLAS,
    all cores)."""
    a = np.random.default_rng(0).normal(size=(1024, 1024))
    _, t = timeit(lambda: a @ a, 5)
    return 2 * 1024**3 / t / 1e9


def two_thread_speedup(n=128, calls=200):
    """How much faster two threads run two streams of ``calls`` single-threaded n x n float64
    matrix products than one thread runs both streams: 2.0 when both cores deliver their full
    throughput side by side, 1.0 when the second adds nothing. NumPy's matmul releases the GIL,
    so Python threads are enough."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = [rng.normal(size=(n, n)) for _ in range(2)]
    out = [np.empty((n, n)) for _ in range(2)]

    def stream(i, count=calls):
        for _ in range(count):
            np.matmul(a[i], a[i], out=out[i])

    with threadpool_limits(1, user_api="blas"):
        stream(0, 5)
        t0 = time.perf_counter()
        stream(0)
        stream(1)
        one = time.perf_counter() - t0
        threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        two = time.perf_counter() - t0
    return one / two


# BLAS and OpenMP worker threads (NumPy's, PyTorch's) keep spinning on the cores for up to about
# 0.1 s after their last call; each kernel is timed only after they have gone to sleep.
SETTLE_SECONDS = 0.3


def row(suite_name, case, kernel, reference, repeats, flops=None, peers=None, **params):
    """Time ``kernel`` and ``reference`` (callables) and build one table row; ``peers`` maps a
    name to a function ``repeats -> median seconds`` (e.g. `torch_rnn_peer`)."""
    cores = two_thread_speedup() if flops is not None else None
    # The rate is the faster of two samples, before and after: a slow moment would flatter the
    # ratio to the floor.
    rate = matmul_gflops() if flops is not None else None
    time.sleep(SETTLE_SECONDS)
    first, t_kernel = timeit(kernel, repeats)
    if flops is not None:
        cores = (cores + two_thread_speedup()) / 2
        rate = max(rate, matmul_gflops())
    result = {"suite": suite_name, "case": case, **params}
    result["rnnsim_ms"] = 1e3 * t_kernel
    result["first_ms"] = 1e3 * first
    if reference is not None:
        _, t_ref = timeit(reference, max(1, repeats // 3))
        result["reference_ms"] = 1e3 * t_ref
        result["speedup"] = t_ref / t_kernel
    for name, time_peer in (peers or {}).items():
        result[f"{name}_ms"] = 1e3 * time_peer(max(1, repeats // 3))
    if flops is not None:
        result["gemm_gflops"] = rate
        result["floor_ms"] = 1e3 * flops / (rate * 1e9)
        result["x_floor"] = t_kernel * 1e3 / result["floor_ms"]
        result["two_thread_speedup"] = cores
    return result


def _torch_rnn_seconds(params, x, target, repeats):
    """Median seconds of a straightforward PyTorch float64 RNN forward + backward (autograd)."""
    import torch

    torch.set_num_threads(2)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xt, yt = torch.tensor(x), torch.tensor(target)

    def run():
        h = torch.zeros(x.shape[1], p["W"].shape[0], dtype=torch.float64)
        for t in range(x.shape[0]):
            h = torch.tanh(h @ p["W"].T + xt[t] @ p["U"].T + p["b"])
        loss = 0.5 * ((h @ p["V"].T + p["c"] - yt) ** 2).sum() / x.shape[1]
        loss.backward()

    return timeit(run, repeats)[1]


def torch_rnn_peer(model, x, target):
    """A peer timing for `row`: ``repeats -> median seconds`` of the PyTorch RNN forward + backward,
    measured in a separate process, or None without torch.

    PyTorch brings its own OpenMP runtime; loaded into this process it slows rnnsim's threaded
    kernels that are timed afterwards about twofold, so it never is.
    """
    import importlib.util
    import multiprocessing

    if importlib.util.find_spec("torch") is None:
        return None
    params = {k: getattr(model, k) for k in "WUbVc"}

    def seconds(repeats):
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(_torch_rnn_seconds, (params, x, target, repeats))

    return seconds


@suite("engine")
def engine_suite(quick, repeats):
    """RNN and MLP forward + backward (loss and every gradient)."""
    from rnnsim import MLP, RNN
    from rnnsim import reference as ref

    rng = np.random.default_rng(0)
    rows = []
    sizes = [(32, 1, 1000), (128, 32, 100), (256, 32, 200)]
    if not quick:
        sizes = [(32, 1, 100), (32, 1, 1000), (32, 32, 100), (128, 1, 1000), (128, 32, 100),
                 (128, 32, 1000), (256, 32, 200), (512, 32, 100)]  # fmt: skip
    for n, B, T in sizes:
        model = RNN.random(2, n, 1, gain=1.0, seed=0)
        x = rng.normal(size=(T, B, 2))
        target = rng.normal(size=(B, 1))
        h0 = np.zeros((B, n))
        peers = {}
        torch_run = torch_rnn_peer(model, x, target)
        if torch_run is not None:
            peers["torch"] = torch_run
        rows.append(
            row(
                "engine", "rnn forward+backward (tanh, mse_last)",
                lambda m=model, x=x, y=target: m.loss_and_grad(x, y),
                lambda m=model, x=x, y=target, h0=h0: ref.rnn_loss_and_grad(
                    m.W, m.U, m.b, m.V, m.c, x, h0, "tanh", y, "mse_last"
                ),
                repeats, flops=6.0 * T * B * n * n, peers=peers, n=n, B=B, T=T,
            )
        )  # fmt: skip
    for width, depth, B in (
        [(256, 64, 32)] if quick else [(128, 32, 32), (256, 64, 32), (512, 16, 128)]
    ):
        model = MLP.random(width, depth, seed=0, n_out=1)
        x = rng.normal(size=(B, width))
        y = rng.normal(size=(B, 1))
        rows.append(
            row(
                "engine", "mlp forward+backward (tanh)",
                lambda m=model, x=x, y=y: m.loss_and_grad(x, y),
                lambda m=model, x=x, y=y: ref.mlp_loss_and_grad(
                    m.weights, m.biases, "tanh", x, y, m.readout
                ),
                repeats, flops=6.0 * depth * B * width * width, n=width, B=B, depth=depth,
            )
        )  # fmt: skip
    return rows


@suite("parts")
def parts_suite(quick, repeats):
    """The small RNN pass (n=32, B=1, T=1000) by its parts, each over all T steps: the chains of
    products alone (linear activation) forward and backward, tanh of all T*n pre-activations in
    one call (throughput, no chain), the weight-gradient product, the whole kernel and the whole
    public call. The chains and tanh are one serial dependency chain (each step needs the last
    one's tanh), so their sum bounds the pass from below even with more cores; only the weight
    gradient could overlap them."""
    from rnnsim import RNN
    from rnnsim.kernels import activations as act
    from rnnsim.kernels import rnn as K
    from rnnsim.kernels.blas import at_b, single_threaded_blas

    n, B, T = 32, 1, 1000
    rng = np.random.default_rng(0)
    model = RNN.random(2, n, 1, gain=1.0, seed=0)
    x = rng.normal(size=(T, B, 2))
    target = rng.normal(size=(B, 1))
    h0 = np.zeros((B, n))
    H, Y = K.rnn_forward(model.W, model.U, model.b, model.V, model.c, x, h0, act.TANH)
    A, dA, G = K.input_drive(model.U, model.b, x), np.empty((T, B, n)), np.empty((T + 1, B, n))
    dY = np.zeros_like(Y)
    dY[-1] = Y[-1] - target
    WT = np.ascontiguousarray(model.W.T)
    flat, out = A.ravel().copy(), np.empty(T * n)
    parts = {
        "forward chain of products (linear)": lambda: K.forward_rows(WT, A, H, 0, B, act.LINEAR),
        "backward chain of products (linear)": lambda: K.backward_rows(
            model.W, model.V, dY, G, dA, H, 0, B, act.LINEAR
        ),
        "tanh of all T*n pre-activations": lambda: act.activate(act.TANH, flat, out),
        "weight gradient sum_t dA_t^T h_{t-1}": lambda: at_b(
            dA.reshape(T * B, n), H[:T].reshape(T * B, n)
        ),
        "whole kernel (rnn_loss_grad)": lambda: K.rnn_loss_grad(
            model.W, model.U, model.b, model.V, model.c, x, h0, act.TANH, target[None],
            np.zeros((1, 1), dtype=np.int64), 0,
        ),
        "whole public call (RNN.loss_and_grad)": lambda: model.loss_and_grad(x, target),
    }  # fmt: skip
    reps = max(repeats, 101)  # sub-millisecond calls: many are cheap and steady the median
    with single_threaded_blas():  # the kernels as the public calls run them (thread policy)
        rows = [row("parts", case, fn, None, reps, n=n, B=B, T=T) for case, fn in parts.items()]
    chain = sum(r["rnnsim_ms"] for r in rows[:3])
    case = "serial chain: sum of the three above"
    rows.insert(3, {"suite": "parts", "case": case, "n": n, "B": B, "T": T, "rnnsim_ms": chain})
    return rows


@suite("startup")
def startup_suite(quick, repeats):
    """A fresh Python process that imports rnnsim and computes one small gradient: the Numba cache
    must make this cheap (no recompilation)."""
    code = (
        "import time; t0 = time.perf_counter(); import numpy as np, rnnsim; "
        "m = rnnsim.RNN.random(2, 8, 1); x = np.ones((5, 1, 2)); m.loss_and_grad(x, np.ones((1, 1))); "
        "print(time.perf_counter() - t0)"
    )
    times = []
    for _ in range(2 if quick else 3):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return [{"suite": "startup", "case": "fresh process: import + one RNN gradient",
             "rnnsim_ms": 1e3 * float(np.median(times)), "first_ms": 1e3 * times[0]}]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Issue 7: Hessian-vector products and the single-unit cliff surface
# ---------------------------------------------------------------------------------------------


@suite("curvature")
def curvature_suite(quick, repeats):
    """Exact Hessian-vector products (R-operator) and the cliff surface of Pascanu et al. 2013."""
    from rnnsim import MLP, RNN
    from rnnsim import reference as ref
    from rnnsim.cliff import cliff_surface

    rng = np.random.default_rng(0)
    rows = []
    sizes = [(64, 32, 100)] if quick else [(32, 1, 1000), (64, 32, 100), (128, 32, 100)]
    for n, B, T in sizes:
        model = RNN.random(2, n, 1, gain=1.0, seed=0)
        x = rng.normal(size=(T, B, 2))
        target = rng.normal(size=(B, 1))
        h0 = np.zeros((B, n))
        v = rng.normal(size=model.n_params)
        rows.append(
            row(
                "curvature", "rnn hvp (tanh, mse_last)",
                lambda m=model, x=x, y=target, v=v: m.hvp(x, y, v),
                lambda m=model, x=x, y=target, v=v, h0=h0: ref.rnn_hvp(
                    m.W, m.U, m.b, m.V, m.c, x, h0, "tanh", y, "mse_last", v
                ),
                repeats, flops=14.0 * T * B * n * n, n=n, B=B, T=T,
            )
        )  # fmt: skip
    for width, depth, B in [(256, 16, 32)] if quick else [(128, 32, 32), (256, 16, 128)]:
        model = MLP.random(width, depth, seed=0, n_out=1)
        x = rng.normal(size=(B, width))
        y = rng.normal(size=(B, 1))
        v = rng.normal(size=model.n_params)
        rows.append(
            row(
                "curvature", "mlp hvp (tanh)",
                lambda m=model, x=x, y=y, v=v: m.hvp(x, y, v),
                lambda m=model, x=x, y=y, v=v: ref.mlp_hvp(
                    m.weights, m.biases, "tanh", x, y, v, m.readout
                ),
                repeats, flops=14.0 * depth * B * width * width, n=width, B=B, depth=depth,
            )
        )  # fmt: skip
    for n_grid in [500] if quick else [500, 1000]:
        w = np.linspace(-10, 10, n_grid)
        b = np.linspace(-10, 10, n_grid)
        rows.append(
            row(
                "curvature", "cliff surface (single unit, T=50)",
                lambda w=w, b=b: cliff_surface(w, b, as_frame=False),
                lambda w=w, b=b: ref.cliff_surface(w, b, 0.5, 50, 0.7),
                repeats, n=n_grid * n_grid, T=50,
            )
        )  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------
# Issue 4: Jacobian products, spectra and Lyapunov exponents (rnnsim/jacobians.py)
# ---------------------------------------------------------------------------------------------


@suite("jacobians")
def jacobians_suite(quick, repeats):
    """The issue-4 targets: jacobian_norms (tanh n=128, T=500, every k), every singular value of
    dh_L/dh_0 (tanh MLP width 256, depth 64), the full Lyapunov spectrum (n=128, 5,000 steps,
    QR every step); against the plain NumPy twins (SVD per step, Householder QR per step)."""
    from rnnsim import MLP, RNN
    from rnnsim import reference as ref
    from rnnsim.jacobians import jacobian_norms, jacobian_spectrum, lyapunov_spectrum

    rng = np.random.default_rng(0)
    rows = []
    for n, T in [(128, 500)] if quick else [(64, 1000), (128, 500), (256, 200)]:
        model = RNN.random(1, n, 1, gain=1.0, seed=0)
        x = rng.normal(size=(T, 1, 1))
        Js, _ = ref.rnn_step_jacobians(model.W, model.U, model.b, x[:, 0], np.zeros(n), "tanh")
        rows.append(
            row(
                "jacobians", "jacobian_norms backward (tanh, spectral+Frobenius, every k)",
                lambda m=model, x=x: jacobian_norms(m, x),
                lambda Js=Js: ref.product_norms(Js, "backward"),
                repeats, flops=2.0 * T * n**3, n=n, T=T,
            )
        )  # fmt: skip
    for width, depth, with_ref in [(64, 16, True), (256, 64, False)]:
        net = MLP.random(width, depth, seed=0)
        xm = rng.normal(size=(1, width))
        Js = ref.mlp_layer_jacobians(net.weights, net.biases, "tanh", xm[0])
        rows.append(
            row(
                "jacobians", "jacobian_spectrum dh_L/dh_0 (tanh MLP, every singular value)",
                lambda m=net, x=xm, L=depth: jacobian_spectrum(m, x, steps=[L]),
                (lambda Js=Js, L=depth: ref.product_log_singular_values(Js, "forward", {L}))
                if with_ref else None,
                repeats, flops=7.0 * depth * width**3, n=width, depth=depth,
            )
        )  # fmt: skip
    rows.append(every_layer_spectrum_row(repeats))
    n, steps = 128, 5000
    model = RNN.random(1, n, 1, gain=1.0, seed=0)
    h0 = rng.normal(size=n)
    Q0 = np.linalg.qr(np.random.default_rng(0).normal(size=(n, n)))[0]
    rows.append(
        row(
            "jacobians", "lyapunov_spectrum (tanh, full, QR every step)",
            lambda: lyapunov_spectrum(model, steps=steps, transient=0, h0=h0),
            None if quick else lambda: ref.lyapunov_exponents(
                model.W, model.U, model.b, None, h0, "tanh", 0, steps, Q0
            ),
            max(1, repeats // 3), flops=5.0 * steps * n**3, n=n, T=steps,
        )
    )  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------
# Issue 16: ensembles of networks in one call (rnnsim/ensemble.py)
# ---------------------------------------------------------------------------------------------

# The cases of the "ensemble" suite, each ``fn(quick, repeats) -> list of row dicts``; a module
# that benchmarks ensemble work (training, ...) adds its own with `ensemble_case`.
ENSEMBLE_CASES = []


def ensemble_case(fn):
    """Register a case of ``rnnsim bench --suite ensemble``."""
    ENSEMBLE_CASES.append(fn)
    return fn


@suite("ensemble")
def ensemble_suite(quick, repeats):
    """Ensembles of small networks in one call, against the NumPy twin with stacked products,
    the same members as separate single-model calls, and PyTorch ``torch.func.vmap`` when it is
    installed."""
    return [r for case in ENSEMBLE_CASES for r in case(quick, repeats)]


def member_grad_norms(grads):
    """Each member's global gradient norm (over all of its parameters, as norm clipping takes
    it), from gradients stacked on a first axis E: (E,)."""
    return np.sqrt(sum(np.einsum("ei,ei->e", g, g) for g in (v.reshape(len(v), -1) for v in grads)))


def _torch_vmap_seconds(params, x, target, repeats):
    """Median seconds of PyTorch ``vmap(grad_and_value)`` over stacked float64 tanh RNNs (loss
    mse_last), with each member's global gradient norm."""
    import torch
    from torch.func import grad_and_value, vmap

    torch.set_num_threads(2)
    p = {k: torch.tensor(v) for k, v in params.items()}
    xt, yt = torch.tensor(x), torch.tensor(target)

    def loss(q):
        h = torch.zeros(xt.shape[1], q["W"].shape[0], dtype=torch.float64)
        for t in range(xt.shape[0]):
            h = torch.tanh(h @ q["W"].T + xt[t] @ q["U"].T + q["b"])
        return 0.5 * ((h @ q["V"].T + q["c"] - yt) ** 2).sum() / xt.shape[1]

    def run():
        grads, _ = vmap(grad_and_value(loss))(p)
        torch.sqrt(sum((g.reshape(g.shape[0], -1) ** 2).sum(1) for g in grads.values()))

    return timeit(run, repeats)[1]


def torch_vmap_peer(ens, x, target):
    """A peer timing for `row` (``repeats -> median seconds``) of `_torch_vmap_seconds` in a
    separate process (see `torch_rnn_peer`), or None without torch."""
    import importlib.util
    import multiprocessing

    if importlib.util.find_spec("torch") is None:
        return None
    params = {k: getattr(ens, k) for k in "WUbVc"}

    def seconds(repeats):
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(_torch_vmap_seconds, (params, x, target, repeats))

    return seconds


@ensemble_case
def ensemble_gradnorm(quick, repeats):
    """The workload ``ensemble_gradnorm``: 512 tanh RNNs (n 16, d_in 1, d_out 1), one shared
    batch (B 8, T 100), each member's loss and global gradient norm."""
    from rnnsim import Ensemble
    from rnnsim import reference as ref

    E, n, B, T = 512, 16, 8, 100
    ens = Ensemble.random(E, 1, n, 1, seeds=range(E))
    singles = [ens[e] for e in range(E)]
    rng = np.random.default_rng(0)
    x, target = rng.normal(size=(T, B, 1)), rng.normal(size=(B, 1))
    xs, targets, h0 = (
        np.broadcast_to(x, (E, T, B, 1)),
        np.broadcast_to(target, (E, B, 1)),
        np.zeros((E, B, n)),
    )

    def separate(count):
        def run():
            out = [m.loss_and_grad(x, target) for m in singles]
            return [v for v, _ in out], [
                member_grad_norms([g[k][None] for k in "WUbVc"]) for _, g in out
            ]

        return timeit(run, count)[1]

    peers = {"separate_calls": separate}
    torch_run = torch_vmap_peer(ens, x, target)
    if torch_run is not None:
        peers["torch_vmap"] = torch_run
    return [
        row(
            "ensemble", "ensemble_gradnorm: per-member loss and global gradient norm (tanh)",
            lambda: member_grad_norms(ens.loss_and_grad(x, target)[1].values()),
            lambda: member_grad_norms(ref.ensemble_loss_and_grad(
                ens.W, ens.U, ens.b, ens.V, ens.c, xs, h0, "tanh", targets, "mse_last"
            )[1].values()),
            repeats, flops=6.0 * E * T * B * n * n, peers=peers, E=E, n=n, B=B, T=T,
        )
    ]  # fmt: skip


@ensemble_case
def ensemble_train(quick, repeats):
    """Training in compiled code: E = 32 members (n 32, B 20, T 40, norm clipping) trained in one
    `rnnsim.train` call on an Ensemble against 32 sequential single-model calls (``x_sequential``,
    target >= 8); and a single model's cost per update against one gradient plus one optimiser
    step in Python (``x_gradient_step``, target <= 1.3), records and batches included."""
    from rnnsim import Ensemble, tasks, train
    from rnnsim.optim import Optimizer

    E, n, B, T, steps = 32, 32, 20, 40, 100 if quick else 300
    task = tasks.make("adding", T, variant="pascanu2013")
    ens = Ensemble.random(E, task.d_in, n, task.d_out, gains=1.6, seeds=range(E))
    kw = dict(lr=0.1, clip=("norm", 1.0), steps=steps, batch_size=B, eval_every=0)
    sizes = dict(E=E, n=n, B=B, T=T, steps=steps)

    def sequential(count):
        return timeit(lambda: [train(ens[e], task, seed=e, **kw) for e in range(E)], count)[1]

    at_once = row(
        "ensemble", f"train: {E} members x {steps} updates in one call vs {E} calls",
        lambda: train(ens, task, seed=list(range(E)), **kw), None, max(1, repeats // 3),
        peers={"sequential_calls": sequential}, **sizes,
    )  # fmt: skip
    at_once["x_sequential"] = at_once["sequential_calls_ms"] / at_once["rnnsim_ms"]
    model, opt = ens[0], Optimizer("sgd", 0.1, clip=("norm", 1.0))
    rng = np.random.default_rng(0)
    batches = [task.batch(B, rng) for _ in range(steps)]
    theta = model.params_vector()

    def gradient_steps():  # the same number of updates, by hand, on the same kind of batches
        for x, target in batches:
            opt.step(theta, model.loss_and_grad_vector(x, target, task.loss)[1])

    # Both are timed as whole loops (a median of single calls would hide the waits of a loaded
    # machine that a loop pays), in turns, and the least of each kept: the load drifts within
    # seconds, and the ratio is only meaningful between timings of the same moment.
    first = time.perf_counter()
    train(model, task, seed=0, **kw)
    first = time.perf_counter() - first
    turns = [
        (timeit(lambda: train(model, task, seed=0, **kw), 1)[1], timeit(gradient_steps, 1)[1])
        for _ in range(max(3, repeats))
    ]
    t_train, t_step = (min(t) / steps for t in zip(*turns, strict=True))
    one = {"suite": "ensemble", "case": "train: one model, per update vs gradient + step"}
    one.update(sizes, E=1, rnnsim_ms=1e3 * t_train, first_ms=1e3 * first / steps)
    one.update(reference_ms=1e3 * t_step, x_gradient_step=t_train / t_step)
    return [at_once, one]


# ---------------------------------------------------------------------------------------------
# Issue 19: spectra at every layer, and kernels beside a busy process
# ---------------------------------------------------------------------------------------------


def every_layer_spectrum_row(repeats):
    """`jacobian_spectrum` as users call it to plot spectra across depth: every singular value of
    dh_l/dh_0 at every layer l = 0..64 of a tanh MLP of width 256 (the isometry experiment's
    computation), beside the last-layer row. The floor counts the chain's products only (the
    same as the last layer's); the 65 singular value decompositions come on top."""
    from rnnsim import MLP
    from rnnsim.jacobians import jacobian_spectrum

    width, depth = 256, 64
    net = MLP.random(width, depth, seed=0)
    x = np.random.default_rng(0).normal(size=(1, width))
    return row(
        "jacobians", "jacobian_spectrum every layer dh_l/dh_0 (tanh MLP)",
        lambda: jacobian_spectrum(net, x), None,
        repeats, flops=7.0 * depth * width**3, n=width, depth=depth,
    )  # fmt: skip


BUSY_CODE = "while True: pass"


def with_contention(run):
    """Rows of ``run()`` (a suite at its options) timed twice: quiet, then beside one busy
    process (a Python loop spinning on one core, started here and ended after), as two columns
    ``quiet_ms`` and ``busy_ms`` and their ratio ``contention`` (the issue-19 bound: 2.5)."""
    quiet = run()
    busy = subprocess.Popen([sys.executable, "-c", BUSY_CODE])
    try:
        time.sleep(SETTLE_SECONDS)
        loaded = run()
    finally:
        busy.kill()
        busy.wait()
    rows = []
    for q, b in zip(quiet, loaded, strict=True):
        out = {k: v for k, v in q.items() if not k.endswith("_ms") or k == "rnnsim_ms"}
        out["quiet_ms"] = out.pop("rnnsim_ms")
        out["busy_ms"] = b["rnnsim_ms"]
        out["contention"] = b["rnnsim_ms"] / q["rnnsim_ms"]
        rows.append(out)
    return rows


def main(argv=None):
    """Entry point of ``rnnsim bench``."""
    parser = argparse.ArgumentParser(prog="rnnsim bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--suite", action="append", choices=sorted(SUITES), help="suites to run (default all)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer sizes")
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed calls per case (median reported)"
    )
    parser.add_argument("--csv", help="also write the table to this CSV file")
    parser.add_argument(
        "--contention",
        action="store_true",
        help="time every row quiet and beside one busy process; print the ratio",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")
    rows = []
    for name in args.suite or list(SUITES):
        run = functools.partial(SUITES[name], args.quick, args.repeats)
        rows += with_contention(run) if args.contention else run()
    table = pd.DataFrame(rows)
    print("floor_ms: FLOPs at the float64 matrix-multiply rate gemm_gflops, measured with the row")
    print("two_thread_speedup: what two threads gave over one around the row (2 = two full cores)")
    if args.contention:
        print("contention: busy_ms / quiet_ms, beside one process spinning on a core")
    with pd.option_context(
        "display.max_columns", None, "display.width", 200, "display.max_colwidth", 45
    ):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

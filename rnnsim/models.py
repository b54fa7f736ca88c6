"""The models: a vanilla RNN and a deep MLP, as frozen dataclasses of float64 arrays.

Validation happens once, at construction; the methods hand C-contiguous float64 arrays to the
Numba kernels in `rnnsim.kernels` and wrap what comes back. Both implement `Model`, the interface
that training and the analyses call, so that they never ask which kind of model they hold.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from rnnsim import init as initialisers
from rnnsim.kernels.activations import ACTIVATIONS
from rnnsim.kernels.blas import policy_blas, single_threaded_blas
from rnnsim.kernels.mlp import mlp_forward, mlp_loss_grad, state_offsets
from rnnsim.kernels.rnn import rnn_forward, rnn_loss_grad
from rnnsim.validation import (
    choice,
    describe,
    finite_float,
    float_array,
    generator,
    positive_int,
    real_array,
)

LOSSES = {"mse_last": 0, "mse_all": 1, "xent_last": 2, "xent_all": 3}


@dataclass(frozen=True)
class JacobianChain:
    """What the Jacobian kernels need to take apart ``dh_S/dh_0 = J_S ... J_1`` for one batch.

    Attributes
    ----------
    axis : {"step", "layer"}
        What the factors run over: time steps of a recurrence with shared weights (the
        ``rnn_*`` kernels of `rnnsim.kernels.jacobians`) or layers of a feed-forward stack
        (the ``mlp_*`` kernels).
    arrays : tuple
        The kernels' leading arguments, before the activation code: ``(W, H)`` with states H
        (S+1, B, n) for ``"step"``; ``(flat, widths, d_out, Hbuf, B)`` for ``"layer"``.
    act_code : int
        The activation's kernel code.
    batch, length : int
        Samples B and factors S (T steps or L layers).
    n_first, n_last : int
        Sizes of h_0 and h_S.
    params : dict
        The parameter columns of the analyses' tables (``n_hidden`` and ``T``, or ``width`` and
        ``depth``).
    """

    axis: str
    arrays: tuple
    act_code: int
    batch: int
    length: int
    n_first: int
    n_last: int
    params: dict


@runtime_checkable
class Model(Protocol):
    """The interface of every model kind (`RNN`, `MLP`, next an ensemble of them).

    `rnnsim.train`, `rnnsim.curvature`, `rnnsim.landscape` and `rnnsim.jacobians` call only these
    members. ``loss=None`` means the model's default loss (`loss_name`); a model without an
    initial state rejects an ``h0`` with a ValueError. Flat vectors are in `params_vector` order.
    A model made of several networks (an ensemble) returns one loss per member and stacks the
    gradients on a first axis.
    """

    activation: str

    @property
    def n_params(self) -> int:
        """Number of parameters (the length of `params_vector`)."""

    @property
    def sequential(self) -> bool:
        """True when inputs carry a time axis, (T, B, d_in); False for (B, d_in)."""

    def loss_name(self, loss=None) -> str:
        """The name of the loss that ``loss`` selects (the default for None); ValueError if the
        model has no such loss."""

    def loss_and_grad(self, x, target, loss=None, h0=None) -> tuple:
        """(loss, gradients by parameter name, plus ``"h"``: dL/dh of every state)."""

    def loss_and_grad_vector(self, x, target, loss=None, h0=None) -> tuple:
        """(loss, flat gradient (n_params,))."""

    def predict(self, x, h0=None) -> np.ndarray:
        """The outputs for inputs ``x``, in the shape the tasks score."""

    def hvp(self, x, target, v, loss=None, h0=None) -> np.ndarray:
        """The exact Hessian-vector product ``H v`` (n_params,)."""

    def hvp_operator(self, x, target, loss=None, h0=None) -> Callable:
        """``v -> H v`` at these parameters and this batch, forward and backward passes run once."""

    def params_vector(self) -> np.ndarray:
        """All parameters as one flat float64 vector (n_params,)."""

    def with_params(self, vector) -> "Model":
        """A model of the same kind and shapes with the parameters ``vector``."""

    def filters(self) -> tuple:
        """(list of (start, stop) slices of the flat vector, one per unit's incoming weights;
        boolean mask (n_params,) of the biases)."""

    def jacobian_chain(self, x, h0=None) -> JacobianChain:
        """The states of one forward pass and the arrays the Jacobian kernels take."""


def _warn_if_overflowed(states, what):
    """Warn (not raise) when a forward pass overflowed: the mathematics gives values beyond float64.

    Returns True when every state is finite (no warning).
    """
    finite = bool(np.isfinite(states).all())
    if not finite:
        first = int(np.argwhere(~np.isfinite(states))[0][0])
        warnings.warn(
            f"{what} overflowed float64 at index {first} along the first axis; values from there "
            "on are inf, nan or unreliable. Use a smaller gain, a saturating activation, or rnnsim.jacobian_norms, "
            "which carries norms as logs.",
            RuntimeWarning,
            stacklevel=3,
        )
    return finite


def _warn_if_gradient_overflowed(grads, adjoints, axis, states_finite):
    """Warn (not raise) when a backward pass overflowed although the forward pass did not.

    ``grads`` are the parameter gradients, checked first (cheap: the size of the parameters);
    only when one is not finite are the ``adjoints`` searched, ``adjoints[k]`` = dL/dh_k for
    k = 0..S (a sequence of arrays). The backward chain runs from k = S down to 0, so the step
    where it first went non-finite is the largest k whose adjoint is not finite. ``axis`` names
    k ("step" or "layer"). Nothing is said when the forward states overflowed already
    (`_warn_if_overflowed` has said it).
    """
    if not states_finite or all(np.isfinite(g).all() for g in grads):
        return
    S = len(adjoints) - 1
    bad = [k for k in range(S, -1, -1) if not np.isfinite(adjoints[k]).all()]
    where = (
        f"at {axis} {bad[0]} (dL/dh_{bad[0]}, {S - bad[0]} {axis}s back from {axis} {S})"
        if bad
        else "while summing the parameter gradient (every dL/dh is finite)"
    )
    warnings.warn(
        f"the gradient overflowed float64 in the backward pass {where}; the gradient is inf or "
        "nan from there on. Use a smaller gain or shorter sequences; rnnsim.jacobian_norms "
        "carries the growth as logs.",
        RuntimeWarning,
        stacklevel=3,
    )


@dataclass(frozen=True, eq=False)
class RNN:
    """Vanilla RNN ``h_t = phi(W h_{t-1} + U x_t + b)``, ``y_t = V h_t + c``.

    Parameters
    ----------
    W : array (n, n), recurrent weights.
    U : array (n, d_in), input weights.
    b : array (n,), hidden bias.
    V : array (d_out, n), readout weights.
    c : array (d_out,), readout bias.
    activation : {"tanh", "relu", "sigmoid", "linear"}
    """

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    V: np.ndarray
    c: np.ndarray
    activation: str = "tanh"

    def __post_init__(self):
        choice("activation", self.activation, ACTIVATIONS)
        W = float_array("W", self.W, ndim=2)
        n = W.shape[0]
        if W.shape != (n, n):
            raise ValueError(f"W must be square (n, n); got shape {W.shape}")
        U = float_array("U", self.U, ndim=2, shape=(n, None))
        b = float_array("b", self.b, ndim=1, shape=(n,))
        V = float_array("V", self.V, ndim=2, shape=(None, n))
        c = float_array("c", self.c, ndim=1, shape=(V.shape[0],))
        for name, arr in dict(W=W, U=U, b=b, V=V, c=c).items():
            arr = arr.copy()
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    # -- sizes -------------------------------------------------------------------------------
    @property
    def n_hidden(self):
        return self.W.shape[0]

    @property
    def n_in(self):
        return self.U.shape[1]

    @property
    def n_out(self):
        return self.V.shape[0]

    @property
    def act_code(self):
        """The activation's integer code for the kernels."""
        return ACTIVATIONS[self.activation]

    @property
    def n_params(self):
        return sum(p.size for p in (self.W, self.U, self.b, self.V, self.c))

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def random(
        cls,
        n_in,
        n_hidden,
        n_out,
        *,
        activation="tanh",
        init="gaussian",
        gain=1.0,
        bias_std=0.0,
        seed=0,
        input_init="gaussian",
        input_gain=1.0,
        output_init="gaussian",
        output_gain=1.0,
    ):
        """A random RNN.

        ``W`` is drawn with ``init`` and ``gain`` (see `rnnsim.init`); ``U`` with ``input_init``
        (default N(0, 1/n_in)) and ``V`` with ``output_init`` (default N(0, 1/n_hidden)); ``b``
        ~ N(0, bias_std^2), ``c`` = 0. ``seed`` is an int or a numpy Generator.
        """
        n_in = positive_int("n_in", n_in)
        n_hidden = positive_int("n_hidden", n_hidden)
        n_out = positive_int("n_out", n_out)
        gain = finite_float("gain", gain, minimum=0.0)
        input_gain = finite_float("input_gain", input_gain, minimum=0.0)
        output_gain = finite_float("output_gain", output_gain, minimum=0.0)
        bias_std = finite_float("bias_std", bias_std, minimum=0.0)
        rng = generator("seed", seed)
        W = initialisers.matrix(init, n_hidden, n_hidden, gain=gain, rng=rng)
        U = initialisers.matrix(input_init, n_hidden, n_in, gain=input_gain, rng=rng)
        V = initialisers.matrix(output_init, n_out, n_hidden, gain=output_gain, rng=rng)
        b = rng.normal(0.0, bias_std, size=n_hidden) if bias_std > 0 else np.zeros(n_hidden)
        return cls(W, U, b, V, np.zeros(n_out), activation)

    # -- inputs ------------------------------------------------------------------------------
    def check_input(self, x, h0=None):
        """Validate ``x`` (T, B, d_in) and ``h0`` ((B, n), (n,) or None); return kernel arrays."""
        x = float_array("x", x, ndim=3, shape=(None, None, self.n_in))
        T, B, _ = x.shape
        if T < 1 or B < 1:
            raise ValueError(f"x must have T >= 1 steps and B >= 1 samples; got shape {x.shape}")
        if h0 is None:
            h0 = np.zeros((B, self.n_hidden))
        else:
            h0 = real_array("h0", h0)
            if h0.shape == (self.n_hidden,):
                h0 = np.broadcast_to(h0, (B, self.n_hidden))
            h0 = float_array("h0", h0, ndim=2, shape=(B, self.n_hidden))
        return x, np.ascontiguousarray(h0)

    def check_target(self, target, loss, T, B):
        """Validate a target for ``loss``; return (float targets, integer labels) for the kernel,
        each with a leading time axis (length 1 for the ``*_last`` losses)."""
        choice("loss", loss, LOSSES)
        last = loss.endswith("_last")
        if loss.startswith("mse"):
            shape = (B, self.n_out) if last else (T, B, self.n_out)
            y = float_array("target", target, ndim=len(shape), shape=shape)
            return (y[None] if last else y), np.zeros((1, 1), dtype=np.int64)
        shape = (B,) if last else (T, B)
        labels = real_array("target", target)
        if labels.shape != shape:
            raise ValueError(
                f"target for loss {loss!r} must have shape {shape}; got {labels.shape}"
            )
        if not (np.isfinite(labels) & (labels == np.round(labels))).all():
            raise ValueError(f"target for loss {loss!r} must hold integer class labels")
        labels = labels.astype(np.int64)
        if labels.min() < 0 or labels.max() >= self.n_out:
            raise ValueError(
                f"target labels must lie in 0..{self.n_out - 1} (n_out = {self.n_out}); "
                f"got values from {labels.min()} to {labels.max()}"
            )
        return np.zeros((1, 1, 1)), np.ascontiguousarray(labels[None] if last else labels)

    # -- computation ---------------------------------------------------------------------------
    def forward(self, x, h0=None):
        """Run the network.

        Parameters
        ----------
        x : array (T, B, d_in)
        h0 : array (B, n) or (n,), optional; zero when omitted.

        Returns
        -------
        H : float64 array (T+1, B, n), states with h_0 first.
        Y : float64 array (T, B, d_out), outputs y_1..y_T.
        """
        x, h0 = self.check_input(x, h0)
        with single_threaded_blas():  # the kernel runs batch chunks in parallel threads
            H, Y = rnn_forward(self.W, self.U, self.b, self.V, self.c, x, h0, self.act_code)
        _warn_if_overflowed(H, "the hidden state")
        return H, Y

    def predict(self, x, h0=None):
        """The outputs Y (T, B, d_out) of `forward`, for x (T, B, d_in)."""
        return self.forward(x, h0)[1]

    @property
    def sequential(self):
        """True: inputs carry a time axis (T, B, d_in)."""
        return True

    def loss_name(self, loss=None):
        """``loss``, checked against `LOSSES`; ``"mse_last"`` for None."""
        return "mse_last" if loss is None else choice("loss", loss, LOSSES)

    def _kernel_batch(self, x, target, loss, h0):
        """Validated kernel arrays of one batch: x, h0, float targets, labels, loss code."""
        loss = self.loss_name(loss)
        x, h0 = self.check_input(x, h0)
        target, labels = self.check_target(target, loss, x.shape[0], x.shape[1])
        return x, h0, target, labels, LOSSES[loss]

    def loss_and_grad(self, x, target, loss=None, h0=None):
        """Loss and its exact gradient by backpropagation through time.

        Parameters
        ----------
        x : array (T, B, d_in)
        target : ``mse_last`` (B, d_out); ``mse_all`` (T, B, d_out); ``xent_last`` int (B,);
            ``xent_all`` int (T, B).
        loss : {"mse_last", "mse_all", "xent_last", "xent_all"} or None (``"mse_last"``)
        h0 : array (B, n) or (n,), optional.

        Returns
        -------
        loss : float
        grads : dict of float64 arrays ``"W"``, ``"U"``, ``"b"``, ``"V"``, ``"c"`` (shaped like the
            parameters), and ``"h"`` (T+1, B, n), the total derivative dL/dh_t for t = 0..T.
        """
        x, h0, target, labels, code = self._kernel_batch(x, target, loss, h0)
        with single_threaded_blas():
            value, gW, gU, gb, gV, gc, H, G = rnn_loss_grad(
                self.W, self.U, self.b, self.V, self.c, x, h0, self.act_code, target, labels, code
            )
        finite = _warn_if_overflowed(H, "the hidden state")
        grads = {"W": gW, "U": gU, "b": gb, "V": gV, "c": gc}
        _warn_if_gradient_overflowed(grads.values(), G, "step", finite)
        return float(value), {**grads, "h": G}

    def loss_and_grad_vector(self, x, target, loss=None, h0=None):
        """`loss_and_grad` with the gradient as one flat vector in `params_vector` order."""
        value, g = self.loss_and_grad(x, target, loss, h0)
        return value, np.concatenate([g[k].ravel() for k in ("W", "U", "b", "V", "c")])

    def hvp(self, x, target, v, loss=None, h0=None):
        """Exact Hessian-vector product ``H v`` of the loss (Pearlmutter's R-operator).

        Parameters
        ----------
        x, target, loss, h0 : as for `loss_and_grad`.
        v : array (n_params,), a direction in `params_vector` order.

        Returns
        -------
        float64 array (n_params,), ``H v`` in `params_vector` order (`rnnsim.kernels.hvp`).
        """
        from rnnsim.kernels.hvp import rnn_hvp

        x, h0, target, labels, code = self._kernel_batch(x, target, loss, h0)
        v = float_array("v", v, ndim=1, shape=(self.n_params,))
        with single_threaded_blas():  # the forward and backward passes run batch chunks in threads
            W, U, b, V, c, act = self.W, self.U, self.b, self.V, self.c, self.act_code
            return rnn_hvp(W, U, b, V, c, x, h0, act, target, labels, code, v)[2]

    def hvp_operator(self, x, target, loss=None, h0=None):
        """``v -> H v`` (n_params,) -> (n_params,) on one batch, equal to `hvp`.

        The forward and backward passes run once, here; each call then runs only the two R-passes
        (about 60 % of a full `hvp`), which is what Lanczos and Hutchinson need.
        """
        from rnnsim.kernels.hvp import rnn_hvp_apply, rnn_hvp_prepare

        x, h0, target, labels, code = self._kernel_batch(x, target, loss, h0)
        W, V, act, P = self.W, self.V, self.act_code, self.n_params
        with single_threaded_blas():  # the engine's passes run batch chunks in threads
            _, _, H, Y, dY, G, dA = rnn_hvp_prepare(
                W, self.U, self.b, V, self.c, x, h0, act, target, labels, code
            )

        def hvp(v):
            v = float_array("v", v, ndim=1, shape=(P,))
            return rnn_hvp_apply(W, V, x, act, code, H, Y, dY, G, dA, v)

        return hvp

    def filters(self):
        """Rows of W, U and V (one unit's incoming weights each), and the mask of b and c."""
        n, d_in, d_out = self.n_hidden, self.n_in, self.n_out
        return _filters([(n, n), (n, d_in), (n,), (d_out, n), (d_out,)])

    def jacobian_chain(self, x, h0=None):
        """States H (T+1, B, n) of `forward` and the recurrent weights, as a `JacobianChain`."""
        x, h0 = self.check_input(x, h0)
        H = np.ascontiguousarray(self.forward(x, h0)[0])
        T, B = H.shape[0] - 1, H.shape[1]
        n = self.n_hidden
        return JacobianChain(
            "step", (self.W, H), self.act_code, B, T, n, n, {"n_hidden": n, "T": T}
        )

    # -- flat parameter vector -------------------------------------------------------------------
    def params_vector(self):
        """All parameters as one flat float64 vector: W, U, b, V, c, each raveled in C order."""
        return np.concatenate([p.ravel() for p in (self.W, self.U, self.b, self.V, self.c)])

    def with_params(self, vector):
        """A new RNN of the same shapes and activation from a flat vector (`params_vector` order)."""
        vector = float_array("vector", vector, ndim=1, shape=(self.n_params,))
        parts, pos = [], 0
        for p in (self.W, self.U, self.b, self.V, self.c):
            parts.append(vector[pos : pos + p.size].reshape(p.shape))
            pos += p.size
        return RNN(*parts, activation=self.activation)


@dataclass(frozen=True, eq=False)
class MLP:
    """Deep MLP ``h_l = phi(W_l h_{l-1} + b_l)``, h_0 = x, optional linear readout ``y = V h_L + c``.

    Parameters
    ----------
    weights : list of arrays, ``weights[l]`` (n_{l+1}, n_l).
    biases : list of arrays, ``biases[l]`` (n_{l+1},).
    activation : {"tanh", "relu", "sigmoid", "linear"}
    readout : (V, c) with V (d_out, n_L) and c (d_out,), or None (then y = h_L).
    """

    weights: list
    biases: list
    activation: str = "tanh"
    readout: tuple | None = None
    widths: np.ndarray = field(init=False, repr=False)
    flat: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        choice("activation", self.activation, ACTIVATIONS)
        if not isinstance(self.weights, list | tuple) or len(self.weights) == 0:
            raise ValueError(
                f"weights must be a non-empty list of 2-D arrays; got {describe(self.weights)}"
            )
        if not isinstance(self.biases, list | tuple) or len(self.biases) != len(self.weights):
            raise ValueError(
                f"biases must be a list with one array per layer ({len(self.weights)}); "
                f"got {type(self.biases).__name__} of length "
                f"{len(self.biases) if hasattr(self.biases, '__len__') else '?'}"
            )
        weights, biases = [], []
        n_prev = None
        for l, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            W = float_array(f"weights[{l}]", W, ndim=2, shape=(None, n_prev))
            b = float_array(f"biases[{l}]", b, ndim=1, shape=(W.shape[0],))
            weights.append(W)
            biases.append(b)
            n_prev = W.shape[0]
        widths = np.array([weights[0].shape[1]] + [W.shape[0] for W in weights], dtype=np.int64)
        readout = None
        if self.readout is not None:
            if not isinstance(self.readout, tuple | list) or len(self.readout) != 2:
                raise ValueError(
                    f"readout must be a pair (V, c) or None; got {describe(self.readout)}"
                )
            V = float_array("readout V", self.readout[0], ndim=2, shape=(None, n_prev))
            c = float_array("readout c", self.readout[1], ndim=1, shape=(V.shape[0],))
            readout = (V, c)
        parts = [p.ravel() for W, b in zip(weights, biases, strict=True) for p in (W, b)]
        parts += [p.ravel() for p in readout] if readout else []
        flat = np.concatenate(parts)
        flat.flags.writeable = False
        widths.flags.writeable = False
        # The public arrays are read-only views into the one flat vector the kernels use.
        views = unflatten(flat, widths, 0 if readout is None else readout[0].shape[0])
        object.__setattr__(self, "weights", views[0])
        object.__setattr__(self, "biases", views[1])
        object.__setattr__(self, "readout", views[2])
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "flat", flat)

    @property
    def depth(self):
        return len(self.weights)

    @property
    def d_out(self):
        """Readout size, 0 without a readout."""
        return 0 if self.readout is None else self.readout[0].shape[0]

    @property
    def act_code(self):
        return ACTIVATIONS[self.activation]

    @property
    def n_params(self):
        return self.flat.size

    @classmethod
    def random(
        cls,
        width,
        depth,
        *,
        n_in=None,
        activation="tanh",
        init="gaussian",
        sigma_w=1.0,
        sigma_b=0.0,
        seed=0,
        n_out=None,
    ):
        """A random MLP.

        Parameters
        ----------
        width : int, or a sequence of ``depth`` ints (per-layer widths n_1..n_L).
        depth : int, number of hidden layers L.
        n_in : int, input size (default ``width``, the first width).
        init : str, initialiser name (`rnnsim.init`); ``sigma_w`` is its gain, so ``"gaussian"``
            draws W_ij ~ N(0, sigma_w^2 / fan_in) as in the mean-field papers.
        sigma_b : float, biases ~ N(0, sigma_b^2).
        seed : int or numpy Generator.
        n_out : int or None, size of a linear readout (N(0, 1/n_L) weights, zero bias); None for none.
        """
        depth = positive_int("depth", depth)
        if np.ndim(width) == 0:
            widths = [positive_int("width", width)] * depth
        else:
            widths = [positive_int("width", w) for w in width]
            if len(widths) != depth:
                raise ValueError(f"width must be an int or {depth} ints; got {len(widths)} values")
        n_in = widths[0] if n_in is None else positive_int("n_in", n_in)
        sigma_w = finite_float("sigma_w", sigma_w, minimum=0.0)
        sigma_b = finite_float("sigma_b", sigma_b, minimum=0.0)
        rng = generator("seed", seed)
        sizes = [n_in, *widths]
        weights, biases = [], []
        for l in range(depth):
            weights.append(initialisers.matrix(init, sizes[l + 1], sizes[l], gain=sigma_w, rng=rng))
            biases.append(rng.normal(0.0, sigma_b, size=sizes[l + 1]))
        readout = None
        if n_out is not None:
            n_out = positive_int("n_out", n_out)
            readout = (initialisers.matrix("gaussian", n_out, sizes[-1], rng=rng), np.zeros(n_out))
        return cls(weights, biases, activation, readout)

    def check_input(self, x):
        """Validate ``x`` (B, n_in) with B >= 1; return it as a kernel array."""
        x = float_array("x", x, ndim=2, shape=(None, int(self.widths[0])))
        if x.shape[0] < 1:
            raise ValueError(f"x must have B >= 1 samples; got shape {x.shape}")
        return x

    @property
    def sequential(self):
        """False: inputs have no time axis, (B, n_in)."""
        return False

    def loss_name(self, loss=None):
        """``"mse"``, the MLP's only loss, for None, ``"mse"`` or ``"mse_last"`` (the same loss:
        the output is the last and only one); ValueError for any other name."""
        if loss not in (None, "mse", "mse_last"):
            raise ValueError(
                f"loss must be None, 'mse' or 'mse_last' for an MLP (its squared error); got {loss!r}"
            )
        return "mse"

    def _kernel_batch(self, x, target, loss, h0):
        """Validated kernel arrays of one batch: x (B, n_in) and target (B, d_out)."""
        self.loss_name(loss)
        _no_initial_state(h0)
        x = self.check_input(x)
        n_y = self.d_out or int(self.widths[-1])
        return x, float_array("target", target, ndim=2, shape=(x.shape[0], n_y))

    def forward(self, x):
        """Layer activations ``[h_0 = x, h_1, ..., h_L]``, each (B, n_l), for x (B, n_in).

        The readout output, when there is one, is ``V h_L + c`` (`predict`).
        """
        x = self.check_input(x)
        Hbuf, _ = mlp_forward(self.flat, self.widths, self.d_out, self.act_code, x)
        hs = split_states(Hbuf, self.widths, x.shape[0])
        _warn_if_overflowed(hs[-1], "the last layer")
        return hs

    def predict(self, x, h0=None):
        """The network output y (B, d_out), or h_L (B, n_L) without a readout."""
        _no_initial_state(h0)
        x = self.check_input(x)
        return mlp_forward(self.flat, self.widths, self.d_out, self.act_code, x)[1]

    def loss_and_grad(self, x, target, loss=None, h0=None):
        """Squared-error loss ``0.5 * mean_b ||y - target||^2`` and its exact gradient.

        Parameters
        ----------
        x : array (B, n_in)
        target : array (B, d_out), or (B, n_L) without a readout.
        loss : None, "mse" or "mse_last" (all the same loss).
        h0 : None (an MLP has no initial state).

        Returns
        -------
        loss : float
        grads : dict with ``"weights"`` and ``"biases"`` (lists shaped like the parameters),
            ``"V"`` and ``"c"`` with a readout, and ``"h"``: [dL/dh_0, ..., dL/dh_L], each (B, n_l).
        """
        x, target = self._kernel_batch(x, target, loss, h0)
        value, grad, Gbuf = self._loss_grad(x, target)
        gW, gb, gr = unflatten(grad, self.widths, self.d_out)
        grads = {"weights": gW, "biases": gb, "h": split_states(Gbuf, self.widths, x.shape[0])}
        if gr is not None:
            grads["V"], grads["c"] = gr
        return value, grads

    def loss_and_grad_vector(self, x, target, loss=None, h0=None):
        """`loss_and_grad` with the gradient as one flat vector in `params_vector` order."""
        x, target = self._kernel_batch(x, target, loss, h0)
        return self._loss_grad(x, target)[:2]

    def _loss_grad(self, x, target):
        """Loss, flat gradient and flat dL/dh buffer for validated kernel arrays."""
        with policy_blas():  # one large product at a time: BLAS's threads
            value, grad, Hbuf, Gbuf = mlp_loss_grad(
                self.flat, self.widths, self.d_out, self.act_code, x, target
            )
        finite = _warn_if_overflowed(Hbuf, "a layer state")
        adjoints = split_states(Gbuf, self.widths, x.shape[0])
        _warn_if_gradient_overflowed([grad], adjoints, "layer", finite)
        return float(value), grad, Gbuf

    def hvp(self, x, target, v, loss=None, h0=None):
        """Exact Hessian-vector product ``H v`` of the squared-error loss (R-operator).

        x, target, loss, h0 as for `loss_and_grad`; v (n_params,) in `params_vector` order;
        returns ``H v`` (n_params,) in the same order (`rnnsim.kernels.hvp`).
        """
        from rnnsim.kernels.hvp import mlp_hvp

        x, target = self._kernel_batch(x, target, loss, h0)
        v = float_array("v", v, ndim=1, shape=(self.n_params,))
        with policy_blas():  # one large product at a time: BLAS's threads
            return mlp_hvp(self.flat, self.widths, self.d_out, self.act_code, x, target, v)[2]

    def hvp_operator(self, x, target, loss=None, h0=None):
        """``v -> H v`` (n_params,) -> (n_params,) on one batch, equal to `hvp`; the forward and
        backward passes run once, here, each call only the two R-passes."""
        from rnnsim.kernels.hvp import mlp_hvp_apply

        x, target = self._kernel_batch(x, target, loss, h0)
        flat, widths, d_out, act = self.flat, self.widths, self.d_out, self.act_code
        P = self.n_params
        with policy_blas():
            _, _, Hbuf, Gbuf = mlp_loss_grad(flat, widths, d_out, act, x, target)

        def hvp(v):
            v = float_array("v", v, ndim=1, shape=(P,))
            with policy_blas():
                return mlp_hvp_apply(flat, widths, d_out, act, x, target, Hbuf, Gbuf, v)

        return hvp

    def filters(self):
        """Rows of every W_l and of V (one unit's incoming weights each), and the mask of the
        biases b_l and c."""
        widths = [int(w) for w in self.widths]
        blocks = []
        for l in range(len(widths) - 1):
            blocks += [(widths[l + 1], widths[l]), (widths[l + 1],)]
        if self.d_out:
            blocks += [(self.d_out, widths[-1]), (self.d_out,)]
        return _filters(blocks)

    def jacobian_chain(self, x, h0=None):
        """The flat state buffer of one forward pass and the flat parameters, as a
        `JacobianChain`."""
        _no_initial_state(h0)
        x = self.check_input(x)
        # Single-threaded: multi-threaded BLAS threads keep spinning for a while after a call and
        # would compete with the kernels' own threads that follow (the forward pass is cheap here).
        with single_threaded_blas():
            Hbuf, _ = mlp_forward(self.flat, self.widths, self.d_out, self.act_code, x)
        B, L = x.shape[0], self.depth
        return JacobianChain(
            axis="layer",
            arrays=(self.flat, self.widths, self.d_out, Hbuf, B),
            act_code=self.act_code,
            batch=B,
            length=L,
            n_first=int(self.widths[0]),
            n_last=int(self.widths[-1]),
            params={"width": int(self.widths[1]), "depth": L},
        )

    def params_vector(self):
        """All parameters as one flat float64 vector: W_1, b_1, ..., W_L, b_L, then V, c."""
        return self.flat.copy()

    def with_params(self, vector):
        """A new MLP of the same shapes from a flat vector (`params_vector` order)."""
        vector = float_array("vector", vector, ndim=1, shape=(self.n_params,))
        weights, biases, readout = unflatten(vector, self.widths, self.d_out)
        return MLP(weights, biases, self.activation, readout)


def _no_initial_state(h0):
    if h0 is not None:
        raise ValueError(
            f"h0 must be None for an MLP (it has no initial state); got {describe(h0)}"
        )


def _filters(blocks):
    """(start, stop) slices of the rows of the matrices among ``blocks`` (shapes, in flat-vector
    order) and a boolean mask of the entries of its vectors (the biases)."""
    rows, bias, pos = [], np.zeros(sum(int(np.prod(s)) for s in blocks), dtype=bool), 0
    for shape in blocks:
        if len(shape) == 2:
            n_rows, n_cols = shape
            rows.extend((pos + i * n_cols, pos + (i + 1) * n_cols) for i in range(n_rows))
        else:
            bias[pos : pos + shape[0]] = True
        pos += int(np.prod(shape))
    return rows, bias


def unflatten(flat, widths, d_out):
    """Split a flat MLP vector into (weights list, biases list, readout pair or None) of views."""
    weights, biases, pos = [], [], 0
    for l in range(len(widths) - 1):
        n_out, n_in = int(widths[l + 1]), int(widths[l])
        weights.append(flat[pos : pos + n_out * n_in].reshape(n_out, n_in))
        pos += n_out * n_in
        biases.append(flat[pos : pos + n_out])
        pos += n_out
    if d_out == 0:
        return weights, biases, None
    nL = int(widths[-1])
    V = flat[pos : pos + d_out * nL].reshape(d_out, nL)
    return weights, biases, (V, flat[pos + d_out * nL : pos + d_out * nL + d_out])


def split_states(buf, widths, B):
    """The flat state buffer of the MLP kernels as a list of (B, n_l) arrays, l = 0..L."""
    off, _ = state_offsets(widths, B)
    return [buf[o : o + B * int(n)].reshape(B, int(n)) for o, n in zip(off, widths, strict=True)]


def warmup():
    """Compile (or load from Numba's on-disk cache) the engine's kernels (forward, backward,
    Hessian-vector products) on tiny inputs; returns the seconds it took. `rnnsim.warmup` also
    covers the Jacobian kernels."""
    import time

    t0 = time.perf_counter()
    x = np.zeros((2, 1, 1))
    for activation in ACTIVATIONS:
        rnn = RNN.random(1, 2, 2, activation=activation)
        for loss in LOSSES:
            target = {"mse_last": np.zeros((1, 2)), "mse_all": np.zeros((2, 1, 2))}.get(
                loss, np.zeros((1,) if loss == "xent_last" else (2, 1), dtype=np.int64)
            )
            rnn.loss_and_grad(x, target, loss)
            rnn.hvp(x, target, np.zeros(rnn.n_params), loss)
        mlp = MLP.random(2, 2, activation=activation, n_out=1)
        mlp.loss_and_grad(np.zeros((1, 2)), np.zeros((1, 1)))
        mlp.hvp(np.zeros((1, 2)), np.zeros((1, 1)), np.zeros(mlp.n_params))
    return time.perf_counter() - t0

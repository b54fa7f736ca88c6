"""The models: a vanilla RNN and a deep MLP, as frozen dataclasses of float64 arrays.

Validation happens once, at construction; the methods hand C-contiguous float64 arrays to the
Numba kernels in `rnnsim.kernels` and wrap what comes back.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

from rnnsim import init as initialisers
from rnnsim.kernels.activations import ACTIVATIONS
from rnnsim.kernels.blas import single_threaded_blas
from rnnsim.kernels.mlp import mlp_forward, mlp_loss_grad, state_offsets
from rnnsim.kernels.rnn import rnn_forward, rnn_loss_grad
from rnnsim.validation import choice, finite_float, float_array, positive_int

LOSSES = {"mse_last": 0, "mse_all": 1, "xent_last": 2, "xent_all": 3}


def _warn_if_overflowed(states, what):
    """Warn (not raise) when a forward pass overflowed: the mathematics gives values beyond float64."""
    if not np.isfinite(states).all():
        first = int(np.argwhere(~np.isfinite(states))[0][0])
        warnings.warn(
            f"{what} overflowed float64 at index {first} along the first axis; values from there "
            "on are inf, nan or unreliable. Use a smaller gain, a saturating activation, or rnnsim.jacobian_norms, "
            "which carries norms as logs.",
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
        gain = finite_float("gain", gain)
        bias_std = finite_float("bias_std", bias_std, minimum=0.0)
        rng = np.random.default_rng(seed)
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
            h0 = np.asarray(h0, dtype=np.float64)
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
        labels = np.asarray(target)
        if labels.shape != shape:
            raise ValueError(
                f"target for loss {loss!r} must have shape {shape}; got {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer) and not np.all(labels == np.round(labels)):
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

    def loss_and_grad(self, x, target, loss="mse_last", h0=None):
        """Loss and its exact gradient by backpropagation through time.

        Parameters
        ----------
        x : array (T, B, d_in)
        target : ``mse_last`` (B, d_out); ``mse_all`` (T, B, d_out); ``xent_last`` int (B,);
            ``xent_all`` int (T, B).
        loss : {"mse_last", "mse_all", "xent_last", "xent_all"}
        h0 : array (B, n) or (n,), optional.

        Returns
        -------
        loss : float
        grads : dict of float64 arrays ``"W"``, ``"U"``, ``"b"``, ``"V"``, ``"c"`` (shaped like the
            parameters), and ``"h"`` (T+1, B, n), the total derivative dL/dh_t for t = 0..T.
        """
        x, h0 = self.check_input(x, h0)
        target, labels = self.check_target(target, loss, x.shape[0], x.shape[1])
        with single_threaded_blas():
            value, gW, gU, gb, gV, gc, H, G = rnn_loss_grad(
                self.W, self.U, self.b, self.V, self.c, x, h0, self.act_code, target, labels,
                LOSSES[loss],
            )  # fmt: skip
        _warn_if_overflowed(H, "the hidden state")
        return float(value), {"W": gW, "U": gU, "b": gb, "V": gV, "c": gc, "h": G}

    def loss_and_grad_vector(self, x, target, loss="mse_last", h0=None):
        """`loss_and_grad` with the gradient as one flat vector in `params_vector` order."""
        value, g = self.loss_and_grad(x, target, loss, h0)
        return value, np.concatenate([g[k].ravel() for k in ("W", "U", "b", "V", "c")])

    def hvp(self, x, target, v, loss="mse_last", h0=None):
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

        x, h0 = self.check_input(x, h0)
        target, labels = self.check_target(target, loss, x.shape[0], x.shape[1])
        v = float_array("v", v, ndim=1, shape=(self.n_params,))
        with single_threaded_blas():  # the forward and backward passes run batch chunks in threads
            return rnn_hvp(
                self.W, self.U, self.b, self.V, self.c, x, h0, self.act_code, target, labels,
                LOSSES[loss], v,
            )[2]  # fmt: skip

    # -- flat parameter vector -------------------------------------------------------------------
    def params_vector(self):
        """All parameters as one flat float64 vector: W, U, b, V, c, each raveled in C order."""
        return np.concatenate([p.ravel() for p in (self.W, self.U, self.b, self.V, self.c)])

    def with_params(self, vector):
        """A new RNN of the same shapes and activation from a flat vector (`params_vector` order)."""
        vector = float_array("vector", vector, ndim=1, shape=(self.n_params,), finite=False)
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
                f"weights must be a non-empty list of 2-D arrays; got {self.weights!r}"
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
                raise ValueError(f"readout must be a pair (V, c) or None; got {self.readout!r}")
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
        sigma_w = finite_float("sigma_w", sigma_w)
        sigma_b = finite_float("sigma_b", sigma_b, minimum=0.0)
        rng = np.random.default_rng(seed)
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
        return float_array("x", x, ndim=2, shape=(None, int(self.widths[0])))

    def forward(self, x):
        """Layer activations ``[h_0 = x, h_1, ..., h_L]``, each (B, n_l), for x (B, n_in).

        The readout output, when there is one, is ``V h_L + c`` (`output`).
        """
        x = self.check_input(x)
        Hbuf, _ = mlp_forward(self.flat, self.widths, self.d_out, self.act_code, x)
        hs = split_states(Hbuf, self.widths, x.shape[0])
        _warn_if_overflowed(hs[-1], "the last layer")
        return hs

    def output(self, x):
        """The network output y (B, d_out), or h_L (B, n_L) without a readout."""
        x = self.check_input(x)
        return mlp_forward(self.flat, self.widths, self.d_out, self.act_code, x)[1]

    def loss_and_grad(self, x, target):
        """Squared-error loss ``0.5 * mean_b ||y - target||^2`` and its exact gradient.

        Parameters
        ----------
        x : array (B, n_in)
        target : array (B, d_out), or (B, n_L) without a readout.

        Returns
        -------
        loss : float
        grads : dict with ``"weights"`` and ``"biases"`` (lists shaped like the parameters),
            ``"V"`` and ``"c"`` with a readout, and ``"h"``: [dL/dh_0, ..., dL/dh_L], each (B, n_l).
        """
        value, grad, _, Gbuf = self.loss_and_grad_flat(x, target)
        gW, gb, gr = unflatten(grad, self.widths, self.d_out)
        grads = {"weights": gW, "biases": gb, "h": split_states(Gbuf, self.widths, x.shape[0])}
        if gr is not None:
            grads["V"], grads["c"] = gr
        return value, grads

    def loss_and_grad_flat(self, x, target):
        """Loss, flat gradient (`params_vector` order), flat states and flat dL/dh buffers."""
        x = self.check_input(x)
        n_y = self.d_out or int(self.widths[-1])
        target = float_array("target", target, ndim=2, shape=(x.shape[0], n_y))
        value, grad, Hbuf, Gbuf = mlp_loss_grad(
            self.flat, self.widths, self.d_out, self.act_code, x, target
        )
        _warn_if_overflowed(Hbuf, "a layer state")
        return float(value), grad, Hbuf, Gbuf

    def loss_and_grad_vector(self, x, target):
        """`loss_and_grad` with the gradient as one flat vector in `params_vector` order."""
        value, grad, _, _ = self.loss_and_grad_flat(x, target)
        return value, grad

    def hvp(self, x, target, v):
        """Exact Hessian-vector product ``H v`` of the squared-error loss (R-operator).

        x (B, n_in), target as for `loss_and_grad`, v (n_params,) in `params_vector` order;
        returns ``H v`` (n_params,) in the same order (`rnnsim.kernels.hvp`).
        """
        from rnnsim.kernels.hvp import mlp_hvp

        x = self.check_input(x)
        n_y = self.d_out or int(self.widths[-1])
        target = float_array("target", target, ndim=2, shape=(x.shape[0], n_y))
        v = float_array("v", v, ndim=1, shape=(self.n_params,))
        return mlp_hvp(self.flat, self.widths, self.d_out, self.act_code, x, target, v)[2]

    def params_vector(self):
        """All parameters as one flat float64 vector: W_1, b_1, ..., W_L, b_L, then V, c."""
        return self.flat.copy()

    def with_params(self, vector):
        """A new MLP of the same shapes from a flat vector (`params_vector` order)."""
        vector = float_array("vector", vector, ndim=1, shape=(self.n_params,), finite=False)
        weights, biases, readout = unflatten(vector, self.widths, self.d_out)
        return MLP(weights, biases, self.activation, readout)


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

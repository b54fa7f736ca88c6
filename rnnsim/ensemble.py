"""Ensembles: E RNNs of one shape and activation, stacked, computed in one call.

An `Ensemble` holds its members' parameters stacked on a first axis (W (E, n, n), U (E, n, d_in),
b (E, n), V (E, d_out, n), c (E, d_out)) and a table of what distinguishes them (seed, gain, init,
...; `Ensemble.member_params`). Its gradients and forward passes run in one kernel call
(`rnnsim.kernels.ensemble`), members split over threads when there are enough of them; its
Jacobian norms and Lyapunov spectra are the single-model analyses run member by member, gathered
into one tidy table with a ``member`` column and the members' parameters as columns.

Member e gives the numbers of the RNN ``ens[e]``: bit for bit, except where many small members run
side by side in SIMD lanes (then to rounding; `rnnsim.kernels.ensemble`). An ensemble of one is the
single model.
"""

import warnings

import numpy as np
import pandas as pd

from rnnsim import jacobians
from rnnsim.kernels.activations import ACTIVATIONS
from rnnsim.kernels.blas import single_threaded_blas
from rnnsim.kernels.ensemble import ensemble_forward, ensemble_loss_grad
from rnnsim.models import LOSSES, RNN
from rnnsim.validation import choice, describe, float_array, positive_int, real_array

PARAMS = ("W", "U", "b", "V", "c")
SHARED = ("activation", "n_hidden", "n_in", "n_out")  # what every member must have in common


class Ensemble:
    """E vanilla RNNs of one shape and activation, their parameters stacked on a first axis.

    Parameters
    ----------
    models : sequence of rnnsim.RNN, the members (at least one), all with the same activation,
        n_hidden, n_in and n_out.
    params : dict or DataFrame, optional. Columns that describe the members (``seed``,
        ``gain``, ...), one value per member; they become columns of every table the ensemble
        returns (`member_params`).

    Attributes
    ----------
    W, U, b, V, c : read-only float64 arrays (E, n, n), (E, n, d_in), (E, n), (E, d_out, n),
        (E, d_out): member e's parameters at index e.
    activation : str

    Notes
    -----
    An ensemble implements the model interface (`rnnsim.models.Model`) with the member axis in
    front: ``loss_and_grad`` gives the losses (E,) and gradients stacked on axis 0,
    ``params_vector`` an (E, n_params) matrix whose row e is ``ens[e].params_vector()``, and
    ``n_params`` counts one member's parameters. Data is shared by every member, or given one per
    member with a leading axis E.
    """

    def __init__(self, models, params=None):
        if isinstance(models, RNN) or not isinstance(models, list | tuple) or not models:
            raise ValueError(
                f"models must be a non-empty list of rnnsim.RNN; got {describe(models)}"
            )
        for i, model in enumerate(models):
            if not isinstance(model, RNN):
                raise TypeError(f"models[{i}] must be an rnnsim.RNN; got {describe(model)}")
            for name in SHARED:
                got, want = getattr(model, name), getattr(models[0], name)
                if got != want:
                    raise ValueError(
                        f"models[{i}] has {name} {got!r} but models[0] has {want!r}: the members "
                        f"of an Ensemble share {', '.join(SHARED)}"
                    )
        arrays = [np.stack([getattr(m, k) for m in models]) for k in PARAMS]
        self._set(arrays, models[0].activation, params)

    @classmethod
    def stacked(cls, W, U, b, V, c, activation="tanh", params=None):
        """An ensemble from stacked arrays: W (E, n, n), U (E, n, d_in), b (E, n), V (E, d_out, n),
        c (E, d_out); ``params`` as for `Ensemble`."""
        ens = cls.__new__(cls)
        choice("activation", activation, ACTIVATIONS)
        W = float_array("W", W, ndim=3)
        E, n = W.shape[:2]
        if E < 1 or W.shape != (E, n, n):
            raise ValueError(f"W must be (E, n, n) with E >= 1; got shape {W.shape}")
        U = float_array("U", U, ndim=3, shape=(E, n, None))
        b = float_array("b", b, ndim=2, shape=(E, n))
        V = float_array("V", V, ndim=3, shape=(E, None, n))
        c = float_array("c", c, ndim=2, shape=(E, V.shape[1]))
        ens._set([W, U, b, V, c], activation, params)
        return ens

    def _set(self, arrays, activation, params):
        """Store read-only copies of the stacked arrays and the members' parameter table."""
        for name, arr in zip(PARAMS, arrays, strict=True):
            arr = np.array(arr, dtype=np.float64, order="C")
            arr.flags.writeable = False
            setattr(self, name, arr)
        self.activation = activation
        self._params = _member_table(params, self.W.shape[0])
        self._first = self[0]  # checks targets and loss names for every member

    @classmethod
    def random(
        cls,
        E,
        n_in,
        n_hidden,
        n_out,
        *,
        activation="tanh",
        init="gaussian",
        gains=1.0,
        bias_std=0.0,
        seeds=None,
    ):
        """E random RNNs: member i is ``RNN.random(n_in, n_hidden, n_out, activation=activation,
        init=init[i], gain=gains[i], bias_std=bias_std, seed=seeds[i])``, exactly.

        Parameters
        ----------
        E : int, number of members.
        n_in, n_hidden, n_out, activation, bias_std : as for `rnnsim.RNN.random`.
        init : str, or a sequence of E initialiser names (`rnnsim.init`).
        gains : float, or a sequence of E gains.
        seeds : sequence of E non-negative int seeds; 0..E-1 by default.

        The members' ``seed``, ``init`` and ``gain`` become the columns of `member_params`.
        """
        E = positive_int("E", E)
        seeds = _per(range(E) if seeds is None else seeds, "seeds", E, scalar=False)
        columns = {
            "seed": [positive_int(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds)],
            "init": _per(init, "init", E, scalar=isinstance(init, str)),
            "gain": _per(gains, "gains", E, scalar=np.ndim(gains) == 0),
        }
        options = dict(activation=activation, bias_std=bias_std)
        models = [
            RNN.random(n_in, n_hidden, n_out, init=i, gain=g, seed=s, **options)
            for s, i, g in zip(columns["seed"], columns["init"], columns["gain"], strict=True)
        ]
        return cls(models, params=columns)

    # -- sizes and members ---------------------------------------------------------------------
    def __len__(self):
        return self.W.shape[0]

    def __getitem__(self, e):
        """Member ``e`` (an int, negative counting from the end) as an `rnnsim.RNN`."""
        E = len(self)
        if isinstance(e, bool | np.bool_) or not isinstance(e, int | np.integer):
            raise TypeError(f"an Ensemble is indexed by an int member; got {describe(e)}")
        if not -E <= e < E:
            raise IndexError(f"member {e} out of range for an ensemble of {E}")
        return RNN(*(getattr(self, k)[e] for k in PARAMS), activation=self.activation)

    def __repr__(self):
        return (
            f"Ensemble(E={len(self)}, n_in={self.n_in}, n_hidden={self.n_hidden}, "
            f"n_out={self.n_out}, activation={self.activation!r})"
        )

    n_hidden = property(lambda self: self.W.shape[1], doc="Hidden units n of every member.")
    n_in = property(lambda self: self.U.shape[2], doc="Input size d_in of every member.")
    n_out = property(lambda self: self.V.shape[1], doc="Output size d_out of every member.")
    act_code = property(lambda self: ACTIVATIONS[self.activation], doc="The activation's code.")
    sequential = property(lambda self: True, doc="True: inputs carry a time axis.")

    @property
    def n_params(self):
        """Parameters of one member (the length of each row of `params_vector`)."""
        n, d_in, d_out = self.n_hidden, self.n_in, self.n_out
        return n * n + n * d_in + n + d_out * n + d_out

    def member_params(self):
        """The members' parameters: a DataFrame with one row per member, ``member`` (0..E-1)
        and the columns given at construction (``seed``, ``init``, ``gain`` for `random`)."""
        return self._params.copy()

    # -- inputs ------------------------------------------------------------------------------
    def check_input(self, x, h0=None):
        """Kernel arrays x (1 or E, T, B, d_in) and h0 (1 or E, B, n) (1: shared by the members).

        ``x`` is (T, B, d_in), shared, or (E, T, B, d_in), one per member; ``h0`` is None (zero),
        (n,) or (B, n), shared, or (E, B, n), one per member.
        """
        E, n = len(self), self.n_hidden
        ndim = np.ndim(x)
        if ndim not in (3, 4):
            raise ValueError(
                f"x must be (T, B, d_in), shared by the members, or (E, T, B, d_in) with E = {E}, "
                f"one per member; got {describe(x)}"
            )
        front = (E,) if ndim == 4 else ()
        x = float_array("x", x, ndim=ndim, shape=(*front, None, None, self.n_in))
        x = x if ndim == 4 else x[None]
        T, B = x.shape[1:3]
        if T < 1 or B < 1:
            raise ValueError(f"x must have T >= 1 steps and B >= 1 samples; got shape {x.shape}")
        if h0 is None:
            return x, np.zeros((1, B, n))
        h0 = real_array("h0", h0)
        if h0.ndim == 3:
            return x, float_array("h0", h0, ndim=3, shape=(E, B, n))
        h0 = np.broadcast_to(h0, (B, n)) if h0.shape == (n,) else h0
        return x, np.ascontiguousarray(float_array("h0", h0, ndim=2, shape=(B, n))[None])

    def check_target(self, target, loss, T, B):
        """Kernel targets for ``loss``: (float targets, int labels), each with a member axis
        (1: shared) and a time axis (1 for the ``*_last`` losses). ``target`` is one member's
        target (see `rnnsim.RNN.loss_and_grad`), shared, or E of them stacked on a first axis."""
        E = len(self)
        one = (B,) if loss.endswith("_last") else (T, B)
        one += (self.n_out,) if loss.startswith("mse") else ()
        member = self._first
        if np.ndim(target) != len(one) + 1:  # shared by the members
            y, labels = member.check_target(target, loss, T, B)
            return np.ascontiguousarray(y[None]), np.ascontiguousarray(labels[None])
        raw = real_array("target", target)
        if raw.shape != (E, *one):
            raise ValueError(
                f"target for loss {loss!r} must be {one}, shared, or {(E, *one)}, one per member; "
                f"got {raw.shape}"
            )
        # E targets of one member are checked as one target of E (or E * T) steps.
        kind = "mse_all" if loss.startswith("mse") else "xent_all"
        steps = raw.reshape(-1, *one[1:]) if len(one) > 1 + loss.startswith("mse") else raw
        y, labels = member.check_target(steps, kind, len(steps), B)
        y = y.reshape(E, -1, *y.shape[1:]) if kind == "mse_all" else y[None]
        labels = labels.reshape(E, -1, B) if kind == "xent_all" else labels[None]
        return np.ascontiguousarray(y), np.ascontiguousarray(labels)

    def loss_name(self, loss=None):
        """``loss``, checked against `rnnsim.models.LOSSES`; ``"mse_last"`` for None."""
        return self._first.loss_name(loss)

    def _kernel_batch(self, x, target, loss, h0):
        """Validated kernel arrays of one batch: x, h0, float targets, labels, loss code."""
        loss = self.loss_name(loss)
        x, h0 = self.check_input(x, h0)
        target, labels = self.check_target(target, loss, x.shape[1], x.shape[2])
        return x, h0, target, labels, LOSSES[loss]

    # -- computation -----------------------------------------------------------------------------
    def forward(self, x, h0=None):
        """Run every member.

        Parameters
        ----------
        x : array (T, B, d_in), shared, or (E, T, B, d_in), one per member.
        h0 : array (n,), (B, n) or (E, B, n), optional; zero when omitted.

        Returns
        -------
        H : float64 array (E, T+1, B, n), each member's states with h_0 first.
        Y : float64 array (E, T, B, d_out), each member's outputs y_1..y_T.
        """
        x, h0 = self.check_input(x, h0)
        with single_threaded_blas():  # the kernel splits members or batch chunks over threads
            H, Y = ensemble_forward(self.W, self.U, self.b, self.V, self.c, x, h0, self.act_code)
        _warn_members(~np.isfinite(H).reshape(len(self), -1).all(axis=1), "the hidden state")
        return H, Y

    def predict(self, x, h0=None):
        """The outputs Y (E, T, B, d_out) of `forward`."""
        return self.forward(x, h0)[1]

    def loss_and_grad(self, x, target, loss=None, h0=None):
        """Every member's loss and exact gradient (backpropagation through time), in one call.

        Parameters
        ----------
        x : array (T, B, d_in), shared by the members, or (E, T, B, d_in), one per member.
        target : one member's target as for `rnnsim.RNN.loss_and_grad` (``mse_last`` (B, d_out),
            ``mse_all`` (T, B, d_out), ``xent_last`` int (B,), ``xent_all`` int (T, B)), shared,
            or E of them stacked on a first axis.
        loss : {"mse_last", "mse_all", "xent_last", "xent_all"} or None (``"mse_last"``).
        h0 : array (n,), (B, n) or (E, B, n), optional.

        Returns
        -------
        losses : float64 array (E,)
        grads : dict of float64 arrays ``"W"`` (E, n, n), ``"U"``, ``"b"``, ``"V"``, ``"c"``:
            member e's gradient at index e (the states' gradients dL/dh are not kept).

        Notes
        -----
        Member e's loss and gradient equal ``ens[e].loss_and_grad``: bit for bit, or to rounding
        when many small members run side by side in SIMD lanes (at least
        `rnnsim.kernels.ensemble.LANES` small members; see ``use_lanes`` there). A member whose
        values overflow float64 gets inf or nan and a RuntimeWarning names it; the others are
        computed as if it were not there.
        """
        x, h0, target, labels, code = self._kernel_batch(x, target, loss, h0)
        with single_threaded_blas():
            losses, *g = ensemble_loss_grad(
                self.W, self.U, self.b, self.V, self.c, x, h0, self.act_code, target, labels, code
            )
        grads = dict(zip(PARAMS, g, strict=True))
        bad = ~np.isfinite(losses)
        for gk in g:
            bad |= ~np.isfinite(gk.reshape(len(self), -1)).all(axis=1)
        _warn_members(bad, "the loss or gradient")
        return losses, grads

    def loss_and_grad_vector(self, x, target, loss=None, h0=None):
        """`loss_and_grad` with each member's gradient as a row of an (E, n_params) matrix, in
        `params_vector` order."""
        losses, g = self.loss_and_grad(x, target, loss, h0)
        return losses, np.concatenate([g[k].reshape(len(self), -1) for k in PARAMS], axis=1)

    def _member_batches(self, x, target, loss, h0):
        """Member e's batch (x, target, h0) in the single model's shapes, for e = 0..E-1."""
        loss = self.loss_name(loss)
        x, h0, y, labels, _ = self._kernel_batch(x, target, loss, h0)
        t = y if loss.startswith("mse") else labels
        last = loss.endswith("_last")
        for e in range(len(self)):
            te = t[min(e, t.shape[0] - 1)]
            yield x[min(e, x.shape[0] - 1)], te[0] if last else te, h0[min(e, h0.shape[0] - 1)]

    def hvp(self, x, target, v, loss=None, h0=None):
        """Every member's exact Hessian-vector product: v (E, n_params) -> (E, n_params), row e
        ``ens[e].hvp`` of row e of v (x, target, loss, h0 as for `loss_and_grad`)."""
        v = float_array("v", v, ndim=2, shape=(len(self), self.n_params))
        batches = self._member_batches(x, target, loss, h0)
        return np.stack(
            [self[e].hvp(xe, te, v[e], loss, he) for e, (xe, te, he) in enumerate(batches)]
        )

    def hvp_operator(self, x, target, loss=None, h0=None):
        """``v -> H v`` for v (E, n_params), equal to `hvp`; each member's forward and backward
        passes run once, here."""
        batches = self._member_batches(x, target, loss, h0)
        ops = [self[e].hvp_operator(xe, te, loss, he) for e, (xe, te, he) in enumerate(batches)]
        shape = (len(self), self.n_params)

        def hvp(v):
            v = float_array("v", v, ndim=2, shape=shape)
            return np.stack([op(ve) for op, ve in zip(ops, v, strict=True)])

        return hvp

    def filters(self):
        """The filters of one member (`rnnsim.RNN.filters`): slices of each row of
        `params_vector`."""
        return self._first.filters()

    def jacobian_chain(self, x, h0=None):
        """Not defined for an ensemble (one chain per member): TypeError pointing to
        `Ensemble.jacobian_norms`."""
        raise TypeError(
            "an Ensemble has one Jacobian chain per member: use its jacobian_norms and "
            "lyapunov_spectrum methods, or index a member (ens[e])"
        )

    # -- flat parameters -------------------------------------------------------------------------
    def params_vector(self):
        """The members' parameters as an (E, n_params) matrix, row e = ``ens[e].params_vector()``."""
        return np.concatenate([getattr(self, k).reshape(len(self), -1) for k in PARAMS], axis=1)

    def with_params(self, vector):
        """An ensemble of the same shapes, activation and member parameters from an
        (E, n_params) matrix (`params_vector` order)."""
        E = len(self)
        vector = float_array("vector", vector, ndim=2, shape=(E, self.n_params))
        parts, pos = [], 0
        for k in PARAMS:
            shape = getattr(self, k).shape
            size = int(np.prod(shape[1:]))
            parts.append(vector[:, pos : pos + size].reshape(shape))
            pos += size
        return Ensemble.stacked(
            *parts, activation=self.activation, params=self._params.drop(columns="member")
        )

    # -- analyses ------------------------------------------------------------------------------
    def jacobian_norms(self, x, direction="backward", h0=None):
        """`rnnsim.jacobian_norms` of every member, as one table.

        Parameters
        ----------
        x : array (T, B, d_in), shared, or (E, T, B, d_in), one per member.
        direction : {"backward", "forward"}
        h0 : array (n,), (B, n) or (E, B, n), optional.

        Returns
        -------
        DataFrame: ``member``, then the columns of `rnnsim.jacobian_norms` for that member, then
        the members' parameters (`member_params`).
        """
        x, h0 = self.check_input(x, h0)
        frames = []
        for e in range(len(self)):
            xe, he = x[min(e, len(x) - 1)], h0[min(e, len(h0) - 1)]
            frames.append(jacobians.jacobian_norms(self[e], xe, direction, he))
        return self._table(frames)

    def lyapunov_spectrum(
        self, x=None, *, steps=None, transient=100, h0=None, k=None, reorth_every=1, seed=0
    ):
        """`rnnsim.lyapunov_spectrum` of every member, as one table.

        Parameters
        ----------
        x : array, optional: (T, d_in) or (T, 1, d_in), shared, or (E, T, 1, d_in), one per
            member; None for the autonomous map.
        h0 : array (n,) or (1, n), shared, or (E, n), one per member; optional.
        seed : int, or a sequence of E ints (one per member), for the initial basis.
        steps, transient, k, reorth_every : as for `rnnsim.lyapunov_spectrum`.

        Returns
        -------
        DataFrame, one row per member and exponent: ``member``, ``rank`` (1 = largest),
        ``exponent`` (per step, natural log), ``activation``, ``n_hidden``, then the members'
        parameters (`member_params`).
        """
        E = len(self)
        xs = _split(x, "x", E, per_member_ndim=4)
        h0s = _split(h0, "h0", E, per_member_ndim=2 if E > 1 else None)
        seeds = _per(seed, "seed", E, scalar=np.ndim(seed) == 0)
        options = dict(steps=steps, transient=transient, k=k, reorth_every=reorth_every)
        frames = []
        for e in range(E):
            exps = jacobians.lyapunov_spectrum(self[e], xs[e], h0=h0s[e], seed=seeds[e], **options)
            frames.append(
                pd.DataFrame(
                    {
                        "rank": np.arange(1, exps.size + 1),
                        "exponent": exps,
                        "activation": self.activation,
                        "n_hidden": self.n_hidden,
                    }
                )
            )
        return self._table(frames)

    def _table(self, frames):
        """One table from per-member ``frames``: a ``member`` column first, the members'
        parameters (the columns of `member_params` not already there) last."""
        table = pd.concat(frames, keys=range(len(frames)), names=["member", None])
        table = table.reset_index(level=0).reset_index(drop=True)
        extra = [col for col in self._params.columns if col not in table.columns]
        return table.merge(self._params[["member", *extra]], on="member", how="left")


def _member_table(params, E):
    """The members' parameter table: ``member`` 0..E-1 and the columns of ``params`` (a dict or a
    DataFrame, one value per member, or None)."""
    table = pd.DataFrame({"member": np.arange(E)})
    if params is None:
        return table
    if not isinstance(params, dict | pd.DataFrame):
        raise TypeError(f"params must be a dict or a DataFrame of columns; got {describe(params)}")
    for name in params:
        if name == "member":
            raise ValueError("params must not have a column 'member' (it is the member index)")
        values = list(params[name])
        if len(values) != E:
            raise ValueError(
                f"params[{name!r}] must have one value per member ({E}); got {len(values)}"
            )
        table[name] = values
    return table


def _per(value, name, E, scalar):
    """``value`` repeated E times if ``scalar``, else checked to hold E values."""
    if scalar:
        return [value] * E
    values = list(value) if isinstance(value, list | tuple | range | np.ndarray) else None
    if values is None or len(values) != E:
        raise ValueError(
            f"{name} must be one value or {E} values (one per member); got {describe(value)}"
        )
    return values


def _split(value, name, E, per_member_ndim):
    """``value`` for each member: itself when shared (or None), ``value[e]`` when it has
    ``per_member_ndim`` dimensions (one per member, E of them)."""
    if value is None or per_member_ndim is None or np.ndim(value) != per_member_ndim:
        return [value] * E
    arr = real_array(name, value)
    if arr.shape[0] != E:
        raise ValueError(
            f"{name} with {per_member_ndim} dimensions holds one per member: its first axis must "
            f"be E = {E}; got shape {arr.shape}"
        )
    return list(arr)


def _warn_members(bad, what):
    """Warn (not raise) naming the members (bool (E,) ``bad``) whose values overflowed float64."""
    if bad.any():
        members = np.flatnonzero(bad)
        listed = ", ".join(map(str, members[:10])) + (", ..." if members.size > 10 else "")
        warnings.warn(
            f"{what} of {members.size} of {bad.size} members overflowed float64 (members "
            f"{listed}): inf or nan there; the other members are unaffected. Use a smaller gain "
            "or a saturating activation.",
            RuntimeWarning,
            stacklevel=3,
        )


def warmup():
    """Compile (or load from Numba's on-disk cache) the ensemble kernels, both ways of running
    the members, on tiny inputs; returns the seconds it took."""
    import time

    from rnnsim.kernels.ensemble import LANES

    t0 = time.perf_counter()
    x, target = np.zeros((2, 1, 1)), np.zeros((1, 1))
    for E in (2, LANES):
        ens = Ensemble.random(E, 1, 2, 1)
        ens.loss_and_grad(x, target)
        ens.forward(x)
    return time.perf_counter() - t0

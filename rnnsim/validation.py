"""Input checks shared by the public functions: each failure names the argument, the value received
and what is allowed."""

import numbers

import numpy as np
import pandas as pd

INT64_MAX = 2**63 - 1  # the kernels take integers as int64


def describe(value):
    """A short description of a value for an error message."""
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def choice(name, value, allowed):
    """Return ``value`` if it is one of ``allowed`` (an iterable of names).

    Raises TypeError when the names are strings and ``value`` is not one, else ValueError.
    """
    allowed = list(allowed)
    if not any(_same_option(value, a) for a in allowed):
        message = f"{name} must be one of {', '.join(map(str, allowed))}; got {describe(value)}"
        if not isinstance(value, str) and all(isinstance(a, str) for a in allowed):
            raise TypeError(message)
        raise ValueError(message)
    return value


def _same_option(value, option):
    """``value == option`` for a name or number of the same kind (an array, a list or a bool is
    never an option, and ``True`` does not stand for 1)."""
    if isinstance(value, bool | np.bool_) != isinstance(option, bool | np.bool_):
        return False
    return isinstance(value, str | numbers.Number) and bool(value == option)


def positive_int(name, value, minimum=1):
    """Return ``value`` as an int if it is an integer >= ``minimum`` (and within int64)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    if value > INT64_MAX:
        raise ValueError(f"{name} must be an integer <= 2**63 - 1; got {value}")
    return int(value)


def generator(name, value):
    """Return a numpy Generator: ``value`` itself, or a new one seeded with the int ``value``
    (None: fresh entropy)."""
    if isinstance(value, np.random.Generator):
        return value
    if value is None:
        return np.random.default_rng()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        if value < 0:
            raise ValueError(f"{name} must be a non-negative int seed or a Generator; got {value}")
        return np.random.default_rng(value)
    raise TypeError(
        f"{name} must be an int seed or a numpy.random.Generator; got {describe(value)}"
    )


def require_columns(name, frame, columns, source=None):
    """Raise unless ``frame`` is a pandas DataFrame holding every non-None name in ``columns``
    (``source``, e.g. the function whose tables these are, is named in the message)."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame; got {describe(frame)}")
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        origin = f" (from {source})" if source else ""
        raise ValueError(
            f"{name} must have the columns {missing}{origin}; got columns {list(frame.columns)}"
        )


def finite_float(name, value, minimum=None, maximum=None):
    """Return ``value`` as a finite float (and >= ``minimum``, <= ``maximum`` when given)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {describe(value)}")
    try:
        value = float(value)
    except OverflowError as err:  # an int beyond float64
        raise ValueError(f"{name} must be finite; got {describe(value)}") from err
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}; got {value}")
    return value


def positive_float(name, value):
    """Return ``value`` as a finite float > 0."""
    value = finite_float(name, value)
    if not value > 0.0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return value


def real_array(name, value):
    """``value`` as a float64 array if it holds real numbers only (any shape; not copied when it
    is one already); TypeError for booleans, complex numbers, strings, None and other objects,
    which a conversion to float would silently turn into numbers or drop the imaginary part of."""
    if value is None or isinstance(value, str | bytes):
        raise TypeError(f"{name} must be an array of real numbers; got {describe(value)}")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as err:  # ragged nested lists
        raise TypeError(f"{name} must be an array of real numbers; got {describe(value)}") from err
    if raw.dtype == object:
        reals = all(
            isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in raw.flat
        )
    else:
        reals = raw.dtype.kind in "iuf"
    if not reals:
        raise TypeError(
            f"{name} must be an array of real numbers (int or float); got {describe(raw)}"
        )
    try:
        return raw.astype(np.float64, copy=False)
    except OverflowError as err:  # Python ints beyond float64
        raise ValueError(f"{name} must be finite; got {describe(value)}") from err


def float_array(name, value, ndim=None, shape=None, finite=True):
    """Convert ``value`` to a C-contiguous float64 array that the caller may hand to a kernel.

    A read-only or non-contiguous input is copied (kernels and callers must never write to arrays
    they were handed). ``shape`` may contain None for free dimensions.
    """
    arr = real_array(name, value)
    if ndim is not None and arr.ndim != ndim:
        want = "x".join("?" if s is None else str(s) for s in shape) if shape else f"{ndim}-D"
        raise ValueError(f"{name} must be a {ndim}-D array ({want}); got shape {arr.shape}")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(arr.shape, shape, strict=True)):
            if want is not None and got != want:
                raise ValueError(
                    f"{name} must have shape "
                    f"({', '.join('any' if s is None else str(s) for s in shape)}); "
                    f"got {arr.shape} (axis {axis} is {got}, expected {want})"
                )
    if finite and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} must be finite; got {arr[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        arr = np.ascontiguousarray(arr).copy()
    return arr


def float_vector(name, value, finite=True):
    """Flatten ``value`` (any shape) to a non-empty 1-D float64 array, a fresh copy the caller owns.

    For grids of parameter values: a scalar becomes a 1-element vector.
    """
    arr = float_array(name, value, finite=finite).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} must be a non-empty array of real numbers; got {describe(value)}")
    return arr.copy()

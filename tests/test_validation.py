"""The shared input checks of rnnsim.validation: each failure names the argument, the value received
and what is allowed."""

import numpy as np
import pytest

from rnnsim.validation import (
    choice,
    finite_float,
    float_vector,
    generator,
    positive_float,
    positive_int,
    require_columns,
)


def test_choice_type_and_value():
    assert choice("activation", "tanh", ["relu", "tanh"]) == "tanh"
    with pytest.raises(ValueError, match="activation must be one of relu, tanh; got 'soft'"):
        choice("activation", "soft", ["relu", "tanh"])
    with pytest.raises(TypeError, match="activation must be one of relu, tanh; got 3"):
        choice("activation", 3, ["relu", "tanh"])
    with pytest.raises(ValueError, match="k must be one of 1, 2; got 3"):
        choice("k", 3, [1, 2])


def test_positive_float():
    assert positive_float("lr", np.float64(0.5)) == 0.5
    assert type(positive_float("lr", 2)) is float
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lr must be"):
            positive_float("lr", bad)
    with pytest.raises(TypeError, match="lr must be a real number; got 'x'"):
        positive_float("lr", "x")


def test_finite_float_minimum_and_positive_int_minimum():
    assert finite_float("q", 0.0, minimum=0.0) == 0.0
    with pytest.raises(ValueError, match=r"q must be >= 0.0; got -1.0"):
        finite_float("q", -1, minimum=0.0)
    assert positive_int("steps", 0, 0) == 0
    with pytest.raises(ValueError, match="steps must be an integer >= 0; got -1"):
        positive_int("steps", -1, 0)


def test_float_vector_flattens_and_copies():
    a = np.arange(6.0).reshape(2, 3)
    v = float_vector("w_values", a)
    assert v.shape == (6,) and v.flags.c_contiguous and v.flags.writeable
    v[0] = 99.0
    assert a[0, 0] == 0.0  # a fresh copy
    assert float_vector("w_values", 2.5).tolist() == [2.5]
    with pytest.raises(ValueError, match="w_values must be finite; got nan"):
        float_vector("w_values", [1.0, np.nan])
    with pytest.raises(ValueError, match="w_values must be a non-empty array"):
        float_vector("w_values", [])
    assert np.isnan(float_vector("grid", [np.nan], finite=False)[0])


def test_generator_from_seed_or_generator():
    rng = np.random.default_rng(3)
    assert generator("rng", rng) is rng
    assert generator("seed", 7).random() == np.random.default_rng(7).random()
    assert isinstance(generator("seed", None), np.random.Generator)
    for bad in (True, 1.5, "7"):
        with pytest.raises(TypeError, match="seed must be an int seed or a numpy.random.Generator"):
            generator("seed", bad)


def test_require_columns_names_the_table_the_missing_columns_and_their_source():
    import pandas as pd

    frame = pd.DataFrame({"a": [1], "b": [2]})
    require_columns("records", frame, ["a", None, "b"])  # None entries are skipped
    with pytest.raises(ValueError, match=r"records must have the columns \['c'\] \(from cb\); got"):
        require_columns("records", frame, ["a", "c"], "cb")
    with pytest.raises(ValueError, match=r"the columns \['c'\]; got columns \['a', 'b'\]"):
        require_columns("records", frame, ["c"])
    with pytest.raises(TypeError, match="records must be a pandas DataFrame; got array"):
        require_columns("records", frame.to_numpy(), ["a"])

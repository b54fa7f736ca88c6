"""Tasks: targets on hand-made examples, layouts, baselines equal to chance (closed form and
simulation), criteria, determinism and argument errors."""

import math

import numpy as np
import pytest

from rnnsim import tasks
from rnnsim.models import LOSSES

N_SIM = 200_000  # sequences for simulated baselines


def const_outputs(value, B, d_out):
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (1, B, d_out)).copy()


# ---------------------------------------------------------------- adding: pascanu2013


def test_adding_pascanu_layout_and_targets():
    t = tasks.make("adding", 50, variant="pascanu2013")
    x, y = t.batch(400, np.random.default_rng(1))
    L = x.shape[0]
    assert 50 <= L < 55 and x.shape[1:] == (400, 2) and y.shape == (400, 1)
    assert x.dtype == np.float64
    markers = x[:, :, 0]
    assert np.all(markers.sum(axis=0) == 2)
    for b in range(400):
        p0, p1 = np.flatnonzero(markers[:, b])
        assert 0 <= p0 < int(0.1 * L) <= p1 < int(0.1 * L) + int(0.4 * L)
        assert y[b, 0] == pytest.approx((x[p0, b, 1] + x[p1, b, 1]) / 2, abs=1e-15)
    assert np.all((x[:, :, 1] >= 0) & (x[:, :, 1] < 1))


def test_adding_pascanu_criterion_on_hand_made_outputs():
    t = tasks.make("adding", 20, variant="pascanu2013")
    target = np.array([[0.5], [0.5], [0.5], [0.1]])
    Y = np.array([[[0.69], [0.71], [0.5], [0.1]]])  # squared errors 0.0361, 0.0441, 0, 0
    r = t.evaluate(Y, target)
    assert r["error_rate"] == pytest.approx(0.25)
    assert r["success"] is False
    ok = t.evaluate(np.array([[[0.5], [0.69], [0.5], [0.1]]]), target)
    assert ok["error_rate"] == 0.0 and ok["success"] is True
    assert r["loss"] == pytest.approx(0.5 * (0.19**2 + 0.21**2) / 4)


def test_adding_pascanu_baseline_by_simulation():
    t = tasks.make("adding", 10, variant="pascanu2013")
    assert t.baseline == pytest.approx(1 / 48)
    _, y = t.batch(N_SIM, np.random.default_rng(2))
    r = t.evaluate(const_outputs(0.5, N_SIM, 1), y)
    assert r["loss"] == pytest.approx(t.baseline, rel=0.02)
    assert r["error_rate"] == pytest.approx(t.baseline_error_rate, abs=0.005)
    assert np.mean(y) == pytest.approx(0.5, abs=0.003)  # 0.5 is the best constant


def test_adding_pascanu_one_length_per_batch_varies_between_batches():
    t = tasks.make("adding", 100, variant="pascanu2013")
    rng = np.random.default_rng(0)
    lengths = {t.batch(2, rng)[0].shape[0] for _ in range(60)}
    assert min(lengths) >= 100 and max(lengths) < 110 and len(lengths) > 3


# ---------------------------------------------------------------- adding: hochreiter1997


def test_adding_hochreiter_layout_and_targets():
    t = tasks.make("adding", 40, variant="hochreiter1997")
    rng = np.random.default_rng(3)
    zeroed = 0
    for _ in range(5):
        x, y = t.batch(300, rng)
        L = x.shape[0]
        assert 40 <= L <= 44
        marks = x[:, :, 1]
        assert np.all((marks == 1).sum(axis=0) == 2)
        assert np.all(marks[-1] == -1)
        for b in range(300):
            p = np.flatnonzero(marks[:, b] == 1)
            assert p[0] < 20 and p[1] < 20  # first 10 pairs; first T/2 - 1 unmarked pairs
            assert marks[0, b] == (1 if p[0] == 0 else -1)
            vals = x[p, b, 0]
            assert y[b, 0] == pytest.approx(0.5 + vals.sum() / 4, abs=1e-15)
            zeroed += p[0] == 0 and x[0, b, 0] == 0.0
    assert 0.06 < zeroed / 1500 < 0.14  # X1 := 0 when pair 1 is X1's (probability 1/10)


def test_adding_hochreiter_baseline_and_criterion():
    t = tasks.make("adding", 20, variant="hochreiter1997")
    assert t.baseline == pytest.approx(19 / 960)
    _, y = t.batch(N_SIM, np.random.default_rng(4))
    assert t.evaluate(const_outputs(0.5, N_SIM, 1), y)["loss"] == pytest.approx(
        t.baseline, rel=0.02
    )
    target = np.array([[0.5], [0.5]])
    r = t.evaluate(np.array([[[0.539], [0.541]]]), target)
    assert r["error_rate"] == pytest.approx(0.5)


# ---------------------------------------------------------------- adding: arjovsky2016 / le2015


@pytest.mark.parametrize("variant", ["arjovsky2016", "le2015"])
def test_adding_arjovsky_layout_targets_and_baseline(variant):
    t = tasks.make("adding", 30, variant=variant)
    x, y = t.batch(500, np.random.default_rng(5))
    assert x.shape == (30, 500, 2)
    for b in range(500):
        p = np.flatnonzero(x[:, b, 1])
        assert len(p) == 2 and p[0] < 15 <= p[1]
        assert y[b, 0] == pytest.approx(x[p, b, 0].sum(), abs=1e-15)
    assert t.baseline == pytest.approx(1 / 12)
    _, y = t.batch(N_SIM, np.random.default_rng(6))
    r = t.evaluate(const_outputs(1.0, N_SIM, 1), y)
    assert r["loss"] == pytest.approx(t.baseline, rel=0.02)
    assert r["success"] is False and math.isnan(r["error_rate"])
    assert t.evaluate(const_outputs(0.0, 2, 1) + y[:2], y[:2])["success"] is True


# ---------------------------------------------------------------- copy


def test_copy_layout_targets_and_baseline():
    T = 15
    t = tasks.make("copy", T)
    x, y = t.batch(64, np.random.default_rng(7))
    L = T + 20
    assert x.shape == (L, 64, 10) and y.shape == (L, 64) and y.dtype == np.int64
    assert np.all(x.sum(axis=-1) == 1)
    sym = np.argmax(x, axis=-1)
    assert np.all((sym[:10] >= 1) & (sym[:10] <= 8))
    assert np.all(sym[10 : 10 + T - 1] == 0) and np.all(sym[10 + T - 1] == 9)
    assert np.all(sym[10 + T :] == 0)
    assert np.all(y[: T + 10] == 0) and np.array_equal(y[T + 10 :], sym[:10])
    assert t.baseline == pytest.approx(10 * math.log(8) / (T + 20))
    # the memoryless predictor: blank with certainty, then uniform over the 8 symbols
    Y = np.full((L, 1, 9), -1e9)
    Y[: T + 10, :, 0] = 0.0
    Y[T + 10 :, :, 1:] = 0.0
    Y = np.broadcast_to(Y, (L, 64, 9))
    assert t.evaluate(Y, y)["loss"] == pytest.approx(t.baseline, rel=1e-12)
    # a perfect recaller (large logit on the right class) is right on every sequence
    perfect = np.zeros((L, 64, 9))
    np.put_along_axis(perfect, y[..., None], 50.0, axis=-1)
    r = t.evaluate(perfect, y)
    assert r["error_rate"] == 0.0 and r["success"] is True


# ---------------------------------------------------------------- temporal order


@pytest.mark.parametrize("symbols, K", [(2, 4), (3, 8)])
def test_temporal_order_pascanu_layout_targets(symbols, K):
    T = 60
    t = tasks.make("temporal_order", T, symbols=symbols)
    x, y = t.batch(300, np.random.default_rng(8))
    assert x.shape == (T, 300, 6) and y.shape == (300,) and t.d_out == K
    sym = np.argmax(x, axis=-1)
    windows = [(6, 12), (30, 36)] if symbols == 2 else [(6, 12), (18, 24), (36, 42)]
    for b in range(300):
        p = np.flatnonzero(sym[:, b] < 2)
        assert len(p) == symbols
        for pos, (lo, hi) in zip(p, windows, strict=True):
            assert lo <= pos < hi
        v = sym[p, b]
        assert y[b] == sum(int(vi) << i for i, vi in enumerate(v))
    assert np.bincount(y, minlength=K).min() > 0


@pytest.mark.parametrize("symbols", [2, 3])
def test_temporal_order_pascanu_baseline(symbols):
    t = tasks.make("temporal_order", 20, symbols=symbols)
    K = 2**symbols
    _, y = t.batch(N_SIM, np.random.default_rng(9))
    r = t.evaluate(np.zeros((1, N_SIM, K)), y)  # uniform guess
    assert t.baseline == pytest.approx(math.log(K))
    assert r["loss"] == pytest.approx(math.log(K), rel=1e-12)
    # guessing one class: error 1 - 1/K by simulation
    g = t.evaluate(np.eye(K)[[0]][None].repeat(N_SIM, axis=1), y)
    assert g["error_rate"] == pytest.approx(t.baseline_error_rate, abs=0.005)


def test_temporal_order3_alias():
    t = tasks.make("temporal_order3", 30)
    assert t.d_out == 8 and t.options == {"symbols": 3}


@pytest.mark.parametrize("symbols", [2, 3])
def test_temporal_order_hochreiter_layout_targets_baseline(symbols):
    t = tasks.make("temporal_order", 100, variant="hochreiter1997", symbols=symbols)
    x, y = t.batch(200, np.random.default_rng(10))
    assert 100 <= x.shape[0] <= 110 and x.shape[2] == 8
    sym = np.argmax(x, axis=-1)
    assert np.all(sym[0] == 0) and np.all(sym[-1] == 1)
    ranges = [(10, 20), (50, 60)] if symbols == 2 else [(10, 20), (33, 43), (66, 76)]
    for b in range(200):
        p = np.flatnonzero(sym[:, b] >= 6)
        assert len(p) == symbols
        cls = 0
        for pos, (lo, hi) in zip(p, ranges, strict=True):
            assert lo <= pos <= hi
            cls = 2 * cls + int(sym[pos, b] - 6)
        assert y[b].argmax() == cls and y[b].sum() == 1
    K = 2**symbols
    _, y = t.batch(20_000, np.random.default_rng(11))
    r = t.evaluate(np.full((1, 20_000, K), 1.0 / K), y)
    assert r["loss"] == pytest.approx(t.baseline, rel=1e-12)
    assert r["error_rate"] == 1.0
    good = t.evaluate(y[None] + 0.29, y)
    assert good["error_rate"] == 0.0


# ---------------------------------------------------------------- latching


def test_latching_layout_targets_baseline():
    t = tasks.make("latching", 50, L=3, noise_var=0.2)
    x, y = t.batch(N_SIM // 4, np.random.default_rng(12))
    assert x.shape == (50, N_SIM // 4, 1)
    first = x[:3, :, 0]
    assert np.all(np.abs(first) == 1) and np.all(first == first[0])
    assert np.array_equal(np.sign(y[:, 0]) * 0.8, y[:, 0]) and np.all(np.sign(y[:, 0]) == first[0])
    assert np.var(x[3:]) == pytest.approx(0.2, rel=0.01)
    r = t.evaluate(np.zeros((1, N_SIM // 4, 1)), y)
    assert r["loss"] == pytest.approx(0.32) == pytest.approx(t.baseline)
    r2 = t.evaluate(np.full((1, N_SIM // 4, 1), 0.1), y)
    assert r2["error_rate"] == pytest.approx(0.5, abs=0.01)
    assert t.evaluate(y[None] * 0.1, y)["success"] is True


# ---------------------------------------------------------------- teacher (MLP)


def test_teacher_targets_and_baseline():
    t = tasks.make("teacher", d_in=5, d_out=2, width=16, depth=3, teacher_seed=4)
    x, y = t.batch(50_000, np.random.default_rng(13))
    assert x.shape == (50_000, 5) and y.shape == (50_000, 2)
    h = x
    for W in t.weights:
        h = np.tanh(h @ W.T)
    np.testing.assert_allclose(y, h @ t.V.T, rtol=1e-13, atol=1e-15)
    mean = y.mean(axis=0)
    r = t.evaluate(np.broadcast_to(mean, y.shape), y)
    assert r["loss"] == pytest.approx(t.baseline, rel=0.03)
    assert t.evaluate(y, y)["success"] is True


# ---------------------------------------------------------------- common


@pytest.mark.parametrize(
    "name, kw",
    [
        ("adding", {"variant": "pascanu2013"}),
        ("adding", {"variant": "hochreiter1997"}),
        ("adding", {"variant": "arjovsky2016"}),
        ("copy", {}),
        ("temporal_order", {}),
        ("temporal_order", {"variant": "hochreiter1997"}),
        ("latching", {}),
    ],
)
def test_same_seed_same_batch_and_shapes(name, kw):
    t = tasks.make(name, 40, **kw)
    x1, y1 = t.batch(7, 123)
    x2, y2 = t.batch(7, np.random.default_rng(123))
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.ndim == 3 and x1.shape[1:] == (7, t.d_in) and x1.dtype == np.float64
    x3, _ = t.batch(7, 124)
    assert not np.array_equal(x1[: min(len(x1), len(x3))], x3[: min(len(x1), len(x3))])
    assert t.loss in LOSSES and t.baseline > 0 and t.baseline_note


def test_argument_errors_name_argument_and_allowed_values():
    with pytest.raises(ValueError, match="name must be one of .*adding"):
        tasks.make("addition", 10)
    with pytest.raises(ValueError, match="variant .* must be one of .*pascanu2013"):
        tasks.make("adding", 10, variant="pascanu")
    with pytest.raises(ValueError, match=r"options \['symbol'\].*allowed options: \['symbols'\]"):
        tasks.make("temporal_order", 10, symbol=2)
    with pytest.raises(ValueError, match="symbols must be 2 or 3, got 4"):
        tasks.make("temporal_order", 10, symbols=4)
    with pytest.raises(ValueError, match="T must be an integer >= 10; got 5"):
        tasks.make("adding", 5, variant="pascanu2013")
    with pytest.raises(TypeError, match="T must be an integer"):
        tasks.make("copy", 10.5)
    with pytest.raises(ValueError, match="T must be None"):
        tasks.make("teacher", 10)
    with pytest.raises(ValueError, match="B must be an integer >= 1; got 0"):
        tasks.make("copy", 10).batch(0, 0)

"""The Playground's data sets (issue 4, and its regression sets): shapes,
ranges, balance, determinism, and the targets of the Playground's formulas."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.utils._param_validation import InvalidParameterError

from skdnn.datasets import (
    make_circle,
    make_multi_gaussian,
    make_plane,
    make_spiral,
    make_xor,
)

GENERATORS = [make_xor, make_spiral, make_circle]
REGRESSION_GENERATORS = [make_plane, make_multi_gaussian]
ALL_GENERATORS = GENERATORS + REGRESSION_GENERATORS


def _radius(X):
    return np.hypot(X[:, 0], X[:, 1])


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("n_samples", [1, 2, 7, 100])
def test_shapes_and_types(make, n_samples):
    X, y = make(n_samples, noise=0.1, random_state=0)
    assert X.shape == (n_samples, 2) and X.dtype == np.float64
    assert y.shape == (n_samples,) and y.dtype.kind == "i"
    assert set(np.unique(y)) <= {0, 1}


@pytest.mark.parametrize("make", ALL_GENERATORS)
def test_same_random_state_same_data(make):
    X1, y1 = make(50, noise=0.2, random_state=3)
    X2, y2 = make(50, noise=0.2, random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("make", ALL_GENERATORS)
def test_other_random_state_other_data(make):
    X1, _ = make(50, noise=0.2, random_state=0)
    X2, _ = make(50, noise=0.2, random_state=1)
    assert not np.allclose(X1, X2)


@pytest.mark.parametrize("make", ALL_GENERATORS)
def test_int_random_state_leaves_global_rng_alone(make):
    # The legacy global generator is what is under test here.
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    make(50, noise=0.2, random_state=0)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


@pytest.mark.parametrize("make", ALL_GENERATORS)
@pytest.mark.parametrize(
    "params",
    [{"n_samples": 0}, {"n_samples": 1.5}, {"noise": -0.1}, {"random_state": "a"}],
)
def test_invalid_parameters_are_rejected(make, params):
    with pytest.raises(InvalidParameterError):
        make(**params)


def test_xor_points_keep_away_from_the_axes():
    X, _ = make_xor(2000, noise=0.5, random_state=0)
    assert np.all(np.abs(X) >= 0.3) and np.all(np.abs(X) <= 5.3)


def test_xor_without_noise_labels_by_quadrant():
    X, y = make_xor(500, random_state=0)
    np.testing.assert_array_equal(y, (np.sign(X[:, 0]) == np.sign(X[:, 1])))


def test_xor_noise_flips_labels_only_near_the_axes():
    noise = 0.2
    X, y = make_xor(2000, noise=noise, random_state=0)
    quadrant = (np.sign(X[:, 0]) == np.sign(X[:, 1])).astype(int)
    flipped = y != quadrant
    # The label is read at most 5 * noise away along each coordinate.
    assert flipped.any()
    assert np.all(np.abs(X[flipped]).min(axis=1) <= 5 * noise)


def test_xor_classes_are_balanced_on_average():
    _, y = make_xor(4000, random_state=0)
    assert 0.47 < y.mean() < 0.53


@pytest.mark.parametrize("n_samples", [10, 11])
def test_spiral_classes_are_balanced(n_samples):
    _, y = make_spiral(n_samples, noise=0.3, random_state=0)
    assert np.bincount(y).tolist() == [n_samples // 2, n_samples - n_samples // 2]


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_spiral_stays_within_its_radius(noise):
    X, _ = make_spiral(500, noise=noise, random_state=0)
    assert _radius(X).max() < 5 + noise * np.sqrt(2)


def test_spiral_classes_are_half_a_turn_apart():
    X, y = make_spiral(200, shuffle=False)
    np.testing.assert_allclose(X[y == 0], -X[y == 1], atol=1e-12)


def test_spiral_is_shuffled_only_when_asked():
    _, y = make_spiral(20, random_state=0)
    _, y_ordered = make_spiral(20, shuffle=False, random_state=0)
    assert y_ordered.tolist() == [0] * 10 + [1] * 10
    assert y.tolist() != y_ordered.tolist()


def test_circle_has_a_gap_between_disc_and_ring():
    r = _radius(make_circle(2000, noise=0.5, random_state=0)[0])
    assert r.max() <= 5
    assert not np.any((r > 2.5) & (r < 3.5))


@pytest.mark.parametrize("n_samples", [10, 11])
def test_circle_without_noise_is_disc_against_ring(n_samples):
    X, y = make_circle(n_samples, random_state=0)
    np.testing.assert_array_equal(y, _radius(X) < 2.5)
    assert np.bincount(y).tolist() == [n_samples // 2, n_samples - n_samples // 2]


def test_circle_noise_flips_labels_only_near_the_boundary():
    noise = 0.1
    X, y = make_circle(2000, noise=noise, random_state=0)
    r = _radius(X)
    flipped = y != (r < 2.5)
    assert flipped.any()
    # The label is read at most 5 * noise * sqrt(2) away.
    assert np.all(np.abs(r[flipped] - 2.5) <= 5 * noise * np.sqrt(2))


def test_playground_gaussians_are_sklearn_blobs():
    # The module docstring's claim: the Playground's two Gaussians, variance
    # 0.5 + 7 * noise around (-2, -2) and (2, 2), are make_blobs.
    noise = 0.2
    X, y = make_blobs(
        20000,
        centers=[(-2, -2), (2, 2)],
        cluster_std=np.sqrt(0.5 + 7 * noise),
        random_state=0,
    )
    assert np.bincount(y).tolist() == [10000, 10000]
    np.testing.assert_allclose(X[y == 0].mean(axis=0), [-2, -2], atol=0.05)
    np.testing.assert_allclose(X[y == 1].var(axis=0), 0.5 + 7 * noise, rtol=0.05)


# ------------------------------------------------------------- regression


def _playground_multi_gaussian(x0, x1):
    """The Playground's regressGaussian label, transcribed loop for loop."""
    label = 0.0
    for cx, cy, sign in [
        (-4, 2.5, 1),
        (0, 2.5, -1),
        (4, 2.5, 1),
        (-4, -2.5, -1),
        (0, -2.5, 1),
        (4, -2.5, -1),
    ]:
        # d3's linear scale from [0, 2] to [1, 0], clamped.
        height = min(max(1 - np.hypot(x0 - cx, x1 - cy) / 2, 0.0), 1.0)
        if abs(sign * height) > abs(label):
            label = sign * height
    return label


@pytest.mark.parametrize("make", REGRESSION_GENERATORS)
@pytest.mark.parametrize("n_samples", [1, 2, 7, 100])
def test_regression_shapes_and_types(make, n_samples):
    X, y = make(n_samples, noise=0.1, random_state=0)
    assert X.shape == (n_samples, 2) and X.dtype == np.float64
    assert y.shape == (n_samples,) and y.dtype == np.float64


@pytest.mark.parametrize("make", REGRESSION_GENERATORS)
@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_regression_points_fill_the_square(make, noise):
    X, _ = make(4000, noise=noise, random_state=0)
    assert np.all(np.abs(X) <= 6)
    # Uniform: every quarter of the square gets about a quarter of the points.
    quarters = np.bincount(2 * (X[:, 0] > 0) + (X[:, 1] > 0), minlength=4)
    assert np.all(np.abs(quarters / 4000 - 0.25) < 0.03)


def test_plane_without_noise_is_the_sum_over_ten():
    X, y = make_plane(500, random_state=0)
    np.testing.assert_allclose(y, (X[:, 0] + X[:, 1]) / 10, rtol=0, atol=1e-15)
    assert -1.2 <= y.min() < -1.0 and 1.0 < y.max() <= 1.2


@pytest.mark.parametrize("noise", [0.1, 0.5])
def test_plane_noise_reads_the_target_at_most_6_noise_away(noise):
    X, y = make_plane(2000, noise=noise, random_state=0)
    error = y - (X[:, 0] + X[:, 1]) / 10
    # Each coordinate moves by at most 6 * noise; the two by 12 * noise.
    assert np.abs(error).max() <= 12 * noise / 10
    assert np.abs(error).max() > 0.8 * 12 * noise / 10
    assert abs(error.mean()) < 0.05 * noise


def test_multi_gaussian_without_noise_is_the_playgrounds_formula():
    X, y = make_multi_gaussian(2000, random_state=0)
    expected = [_playground_multi_gaussian(x0, x1) for x0, x1 in X]
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)
    assert -1 <= y.min() < -0.9 and 0.9 < y.max() <= 1
    # Six discs of radius 2 in the square of side 12.
    assert abs(np.mean(y != 0) - np.pi / 6) < 0.03


def test_multi_gaussian_signs_alternate_like_a_chequerboard():
    X, y = make_multi_gaussian(4000, random_state=0)
    for cx, cy, sign in [(-4, 2.5, 1), (0, 2.5, -1), (4, -2.5, -1), (0, -2.5, 1)]:
        near = np.hypot(X[:, 0] - cx, X[:, 1] - cy) < 1.5
        assert near.sum() > 10
        assert np.all(np.sign(y[near]) == sign)


@pytest.mark.parametrize("noise", [0.1, 0.5])
def test_multi_gaussian_noise_reads_the_target_elsewhere(noise):
    X, y = make_multi_gaussian(2000, noise=noise, random_state=0)
    clean = np.array([_playground_multi_gaussian(x0, x1) for x0, x1 in X])
    changed = ~np.isclose(y, clean)
    assert changed.mean() > 0.2
    assert np.all(np.abs(y) <= 1)
    # A bump falls by 1/2 per unit of distance, and the target is read at
    # most 6 * noise * sqrt(2) away.
    assert np.abs(y - clean).max() <= 6 * noise * np.sqrt(2) / 2 + 1e-12


@pytest.mark.parametrize("make", REGRESSION_GENERATORS)
def test_regression_noise_moves_targets_not_points(make):
    X_clean, y_clean = make(200, random_state=0)
    X_noisy, y_noisy = make(200, noise=0.3, random_state=0)
    np.testing.assert_array_equal(X_noisy, X_clean)
    assert not np.allclose(y_noisy, y_clean)

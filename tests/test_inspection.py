"""Pictures (issue 4, and regressors): each display draws on Agg with the right
artists."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colorbar import Colorbar  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.contour import QuadContourSet  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import make_blobs, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.inspection import DecisionBoundaryDisplay  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402

from skdnn import DNNClassifier, DNNRegressor  # noqa: E402
from skdnn.datasets import make_multi_gaussian, make_plane, make_xor  # noqa: E402
from skdnn.inspection import (  # noqa: E402
    LossCurveDisplay,
    NetworkDisplay,
    plot_playground,
)
from skdnn.inspection._colors import BLUE, ORANGE, diverging_cmap  # noqa: E402

CONVERGENCE = "ignore::sklearn.exceptions.ConvergenceWarning"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _xor(n_samples=40):
    return make_xor(n_samples, random_state=0)


def _blobs(n_samples=45):
    return make_blobs(n_samples, centers=3, random_state=0)


def _lbfgs(hidden_layer_sizes=(3,), **params):
    return DNNClassifier(
        hidden_layer_sizes, solver="lbfgs", max_iter=5, random_state=0, **params
    )


def _validating(max_iter=4, estimator=DNNClassifier):
    """Records validation curves for every epoch, without stopping early."""
    return estimator(
        hidden_layer_sizes=(4,),
        max_iter=max_iter,
        early_stopping=True,
        n_iter_no_change=np.inf,
        validation_fraction=0.25,
        random_state=0,
    )


def _regressor(hidden_layer_sizes=(3,), **params):
    return DNNRegressor(
        hidden_layer_sizes=hidden_layer_sizes,
        solver="lbfgs",
        max_iter=5,
        random_state=0,
        **params,
    )


def _grid(display):
    return np.c_[display.xx0.ravel(), display.xx1.ravel()]


def test_importing_inspection_does_not_import_matplotlib():
    code = "import sys, skdnn.inspection; print('matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# ------------------------------------------------- DecisionBoundaryDisplay


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("make_data", [_xor, _blobs])
@pytest.mark.parametrize("response_method", ["auto", "predict_proba", "predict"])
def test_decision_boundary_display_works_with_dnnclassifier(make_data, response_method):
    X, y = make_data()
    clf = _lbfgs().fit(X, y)
    display = DecisionBoundaryDisplay.from_estimator(
        clf, X, response_method=response_method, grid_resolution=7
    )
    expected = clf.predict(np.c_[display.xx0.ravel(), display.xx1.ravel()])
    if response_method == "predict":
        np.testing.assert_array_equal(clf.classes_[display.response.ravel()], expected)
    assert display.n_classes == len(clf.classes_)
    assert display.ax_.figure is display.figure_


# ------------------------------------------------------- LossCurveDisplay


@pytest.mark.filterwarnings(CONVERGENCE)
def test_validation_curves_without_stopping_early():
    X, y = _xor()
    clf = _validating(max_iter=6).fit(X, y)
    assert clf.n_iter_ == 6
    assert len(clf.loss_curve_) == 6
    assert len(clf.validation_loss_curve_) == 6
    assert len(clf.validation_scores_) == 6


@pytest.mark.filterwarnings(CONVERGENCE)
def test_loss_curve_without_validation_has_one_line():
    X, y = _xor()
    clf = DNNClassifier((3,), max_iter=5, random_state=0).fit(X, y)
    display = LossCurveDisplay.from_estimator(clf)
    assert list(display.lines_) == ["training loss"]
    np.testing.assert_array_equal(display.lines_["training loss"].get_ydata(),
                                  clf.loss_curve_)  # fmt: skip
    assert display.score_ax_ is None
    assert display.marker_.get_xdata()[0] == clf.n_iter_
    assert "stopped" in display.marker_.get_label()


@pytest.mark.filterwarnings(CONVERGENCE)
def test_loss_curve_with_validation_has_three_lines_and_marks_best_epoch():
    X, y = _xor()
    clf = _validating().fit(X, y)
    display = LossCurveDisplay.from_estimator(clf)
    assert list(display.lines_) == [
        "training loss",
        "validation loss",
        "validation score",
    ]
    np.testing.assert_array_equal(
        display.lines_["validation loss"].get_ydata(), clf.validation_loss_curve_
    )
    assert display.lines_["validation score"].axes is display.score_ax_
    assert display.marker_.get_xdata()[0] == np.argmax(clf.validation_scores_) + 1
    assert "weights kept" in display.marker_.get_label()
    display.figure_.canvas.draw()


@pytest.mark.filterwarnings(CONVERGENCE)
def test_loss_curve_draws_on_the_given_axes():
    X, y = _xor()
    clf = _validating().fit(X, y)
    _, ax = plt.subplots()
    display = LossCurveDisplay.from_estimator(clf, ax=ax)
    assert display.ax_ is ax and display.figure_ is ax.figure
    assert display.score_ax_.get_shared_x_axes().joined(ax, display.score_ax_)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_loss_curve_of_lbfgs_counts_iterations():
    X, y = _xor()
    display = LossCurveDisplay.from_estimator(_lbfgs().fit(X, y))
    assert display.ax_.get_xlabel() == "iteration"


@pytest.mark.filterwarnings(CONVERGENCE)
def test_loss_curve_works_with_mlpclassifier():
    X, y = _xor()
    clf = MLPClassifier((3,), max_iter=5, random_state=0).fit(X, y)
    display = LossCurveDisplay.from_estimator(clf)
    assert list(display.lines_) == ["training loss"]


def test_loss_curve_display_stores_its_data():
    display = LossCurveDisplay(loss_curve=[3.0, 2.0, 1.0], best_epoch=2)
    assert display.plot() is display
    assert display.marker_.get_xdata()[0] == 2


@pytest.mark.filterwarnings(CONVERGENCE)
def test_loss_curve_of_a_regressor_shows_the_validation_r2():
    X, y = make_plane(60, noise=0.1, random_state=0)
    reg = _validating(max_iter=6, estimator=DNNRegressor).fit(X, y)
    display = LossCurveDisplay.from_estimator(reg)
    assert list(display.lines_) == [
        "training loss",
        "validation loss",
        "validation score",
    ]
    np.testing.assert_array_equal(
        display.lines_["validation loss"].get_ydata(), reg.validation_loss_curve_
    )
    np.testing.assert_array_equal(
        display.lines_["validation score"].get_ydata(), reg.validation_scores_
    )
    assert display.lines_["validation score"].get_label() == "validation $R^2$"
    assert display.score_ax_.get_ylabel() == "validation $R^2$"
    assert display.marker_.get_xdata()[0] == np.argmax(reg.validation_scores_) + 1
    legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert "validation $R^2$" in legend
    assert display.ax_.get_legend().get_title().get_text() == "DNNRegressor"
    display.figure_.canvas.draw()


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "estimator, fit_data, score_label",
    [
        (DNNClassifier, _xor, "validation accuracy"),
        (MLPClassifier, _xor, "validation accuracy"),
        (MLPRegressor, lambda: make_plane(60, random_state=0), "validation $R^2$"),
    ],
)
def test_loss_curve_names_the_score_after_the_estimator(
    estimator, fit_data, score_label
):
    model = _validating(estimator=estimator).fit(*fit_data())
    display = LossCurveDisplay.from_estimator(model)
    assert display.score_ax_.get_ylabel() == score_label
    assert display.lines_["validation score"].get_label() == score_label


def test_loss_curve_display_without_score_name_says_score():
    display = LossCurveDisplay(
        loss_curve=[3.0, 2.0], validation_scores=[0.5, 0.6]
    ).plot()
    assert display.score_ax_.get_ylabel() == "validation score"


@pytest.mark.parametrize("display", [LossCurveDisplay, NetworkDisplay])
@pytest.mark.parametrize("estimator", [DNNClassifier, DNNRegressor])
def test_unfitted_estimator_is_refused(display, estimator):
    X, y = _xor()
    args = () if display is LossCurveDisplay else (X, y)
    with pytest.raises(NotFittedError):
        display.from_estimator(estimator(), *args)


# --------------------------------------------------------- NetworkDisplay


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("hidden_layer_sizes", [(), (3,), (4, 2)])
@pytest.mark.parametrize("make_data", [_xor, _blobs])
def test_one_neuron_panel_per_input_hidden_unit_and_output(
    hidden_layer_sizes, make_data
):
    X, y = make_data()
    clf = _lbfgs(hidden_layer_sizes).fit(X, y)
    display = NetworkDisplay.from_estimator(clf, X, y, grid_resolution=6)
    n_outputs = 1 if len(clf.classes_) == 2 else len(clf.classes_)
    assert [len(panels) for panels in display.neuron_axes_] == [
        2,
        *hidden_layer_sizes,
        n_outputs,
    ]
    panels = [panel for layer in display.neuron_axes_ for panel in layer]
    assert all(len(panel.get_images()) == 1 for panel in panels)
    assert len(display.connections_) == len(hidden_layer_sizes) + 1
    display.figure_.canvas.draw()


@pytest.mark.filterwarnings(CONVERGENCE)
def test_input_panels_show_the_features():
    X, y = _xor()
    display = NetworkDisplay.from_estimator(_lbfgs().fit(X, y), X, grid_resolution=6)
    x0, x1 = (panel.get_images()[0].get_array() for panel in display.neuron_axes_[0])
    np.testing.assert_allclose(x0, display.xx0)
    np.testing.assert_allclose(x1, display.xx1)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_input_panels_are_named_after_the_features():
    pd = pytest.importorskip("pandas")
    X, y = _xor()
    X = pd.DataFrame(X, columns=["width", "height"])
    display = NetworkDisplay.from_estimator(_lbfgs().fit(X, y), X, y)
    texts = [text.get_text() for text in display.ax_.texts]
    assert "width" in texts and "height" in texts
    assert display.decision_boundary_.ax_.get_xlabel() == "width"


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("make_data", [_xor, _blobs])
def test_output_panels_show_predict_proba(make_data):
    X, y = make_data()
    clf = _lbfgs((4, 2)).fit(X, y)
    display = NetworkDisplay.from_estimator(clf, X, grid_resolution=6)
    proba = clf.predict_proba(np.c_[display.xx0.ravel(), display.xx1.ravel()])
    shown = np.column_stack(
        [p.get_images()[0].get_array().ravel() for p in display.neuron_axes_[-1]]
    )
    np.testing.assert_allclose(shown, proba[:, 1:] if proba.shape[1] == 2 else proba)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_connections_are_coloured_by_sign_and_as_wide_as_the_weight():
    X, y = _xor()
    clf = _lbfgs((4, 3)).fit(X, y)
    display = NetworkDisplay.from_estimator(clf, X, grid_resolution=6)
    largest = max(np.abs(W).max() for W in clf.coefs_)
    for collection, W in zip(display.connections_, clf.coefs_, strict=True):
        weights = W.ravel()
        assert len(collection.get_segments()) == weights.size
        expected = [to_rgba(BLUE if w > 0 else ORANGE, 0.8) for w in weights]
        np.testing.assert_allclose(collection.get_colors(), expected)
        widths = np.asarray(collection.get_linewidths())
        np.testing.assert_allclose(widths / np.abs(weights), 4.0 / largest)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("with_y", [True, False])
def test_decision_regions_with_the_points_of_x(with_y):
    X, y = _blobs()
    clf = _lbfgs().fit(X, y)
    display = NetworkDisplay.from_estimator(
        clf, X, y if with_y else None, grid_resolution=6
    )
    assert isinstance(display.decision_boundary_, DecisionBoundaryDisplay)
    np.testing.assert_array_equal(display.scatter_.get_offsets(), X)
    display.figure_.canvas.draw()  # maps the labels to colours
    colours = np.unique(display.scatter_.get_facecolors(), axis=0)
    assert len(colours) == (3 if with_y else 1)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_network_display_draws_on_the_given_axes():
    X, y = _xor()
    _, ax = plt.subplots()
    display = NetworkDisplay.from_estimator(_lbfgs().fit(X, y), X, ax=ax)
    assert display.ax_ is ax and display.figure_ is ax.figure
    assert display.neuron_axes_[0][0] in ax.child_axes


@pytest.mark.filterwarnings(CONVERGENCE)
def test_network_display_works_with_mlpclassifier():
    X, y = _xor()
    clf = MLPClassifier((3,), solver="lbfgs", max_iter=5, random_state=0).fit(X, y)
    display = NetworkDisplay.from_estimator(clf, X, y, grid_resolution=6)
    assert [len(panels) for panels in display.neuron_axes_] == [2, 3, 1]


@pytest.mark.filterwarnings(CONVERGENCE)
def test_input_that_is_not_2d_is_refused():
    X, y = make_blobs(30, n_features=3, random_state=0)
    clf = _lbfgs().fit(X, y)
    with pytest.raises(ValueError, match="n_features_in_=3"):
        NetworkDisplay.from_estimator(clf, X, y)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "hidden_layer_sizes, match",
    [((17,), "Too many units"), ((2,) * 9, "9 hidden layers")],
)
def test_too_large_a_network_is_refused(hidden_layer_sizes, match):
    X, y = _xor()
    clf = _lbfgs(hidden_layer_sizes, max_fun=1).fit(X, y)
    with pytest.raises(ValueError, match=match):
        NetworkDisplay.from_estimator(clf, X, y)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_too_many_classes_are_refused():
    X, y = make_blobs(40, centers=20, random_state=0)
    clf = _lbfgs(max_fun=1).fit(X, y)
    with pytest.raises(ValueError, match="Too many units"):
        NetworkDisplay.from_estimator(clf, X, y)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_multilabel_network_is_refused():
    X, Y = make_multilabel_classification(30, n_features=2, random_state=0)
    clf = _lbfgs().fit(X, Y)
    with pytest.raises(ValueError, match="multilabel"):
        NetworkDisplay.from_estimator(clf, X)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "X_y, match",
    [
        (lambda X, y: (np.c_[X, X[:, 0]], y), "2 features"),
        (lambda X, y: (X, y[:-1]), "different numbers"),
        (lambda X, y: (X, y + 5), "not among the classes"),
    ],
)
def test_bad_points_are_refused(X_y, match):
    X, y = _xor()
    clf = _lbfgs().fit(X, y)
    with pytest.raises(ValueError, match=match):
        NetworkDisplay.from_estimator(clf, *X_y(X, y))


# ------------------------------------------------ NetworkDisplay, regressors


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("hidden_layer_sizes", [(), (3,), (4, 2)])
def test_regressor_has_a_panel_per_neuron_a_heat_map_and_a_colorbar(
    hidden_layer_sizes,
):
    X, y = make_multi_gaussian(40, random_state=0)
    reg = _regressor(hidden_layer_sizes).fit(X, y)
    display = NetworkDisplay.from_estimator(reg, X, y, grid_resolution=6)
    assert [len(panels) for panels in display.neuron_axes_] == [
        2,
        *hidden_layer_sizes,
        1,
    ]
    panels = [panel for layer in display.neuron_axes_ for panel in layer]
    assert all(len(panel.get_images()) == 1 for panel in panels)
    assert len(display.connections_) == len(hidden_layer_sizes) + 1
    heat_map = display.decision_boundary_.surface_
    assert isinstance(heat_map, QuadContourSet)
    assert isinstance(display.colorbar_, Colorbar)
    assert display.colorbar_.mappable is heat_map
    assert display.decision_boundary_.ax_.get_title() == "prediction"
    assert "prediction" in [text.get_text() for text in display.ax_.texts]
    display.figure_.canvas.draw()


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor_output_and_heat_map_show_predict(loss):
    X, y = make_multi_gaussian(40, random_state=0)
    reg = _regressor((4, 2), loss=loss).fit(X, y + 1)
    display = NetworkDisplay.from_estimator(reg, X, grid_resolution=6)
    prediction = reg.predict(_grid(display))
    shown = display.neuron_axes_[-1][0].get_images()[0].get_array()
    np.testing.assert_allclose(shown.ravel(), prediction)
    np.testing.assert_allclose(display.decision_boundary_.response.ravel(), prediction)
    assert display.ax_.texts[-1].get_text() == f"output\n{reg.out_activation_}"


@pytest.mark.filterwarnings(CONVERGENCE)
def test_regressor_points_are_coloured_by_target_on_the_heat_maps_scale():
    X, y = make_plane(40, noise=0.3, random_state=0)
    reg = _regressor().fit(X, y)
    display = NetworkDisplay.from_estimator(reg, X, y, grid_resolution=6)
    np.testing.assert_array_equal(display.scatter_.get_offsets(), X)
    np.testing.assert_array_equal(display.scatter_.get_array(), y)
    prediction = reg.predict(_grid(display))
    low = min(prediction.min(), y.min())
    high = max(prediction.max(), y.max())
    norm = display.colorbar_.norm
    np.testing.assert_allclose([norm.vmin, norm.vmax], [low, high])
    assert display.scatter_.norm is norm
    output_image = display.neuron_axes_[-1][0].get_images()[0]
    assert output_image.norm is norm
    display.figure_.canvas.draw()
    # Orange at the scale's low end, white midway, blue at its high end.
    expected = diverging_cmap()((y - low) / (high - low))
    np.testing.assert_allclose(display.scatter_.get_facecolors(), expected)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_regressor_points_without_y_are_drawn_alike():
    X, y = make_plane(40, random_state=0)
    reg = _regressor().fit(X, y)
    display = NetworkDisplay.from_estimator(reg, X, grid_resolution=6)
    display.figure_.canvas.draw()
    assert len(np.unique(display.scatter_.get_facecolors(), axis=0)) == 1
    prediction = reg.predict(_grid(display))
    norm = display.colorbar_.norm
    np.testing.assert_allclose(
        [norm.vmin, norm.vmax], [prediction.min(), prediction.max()]
    )


def test_constant_prediction_still_gets_a_colour_scale():
    xx0, xx1 = np.meshgrid(np.linspace(0, 1, 4), np.linspace(0, 1, 4))
    grid = np.c_[xx0.ravel(), xx1.ravel()]
    display = NetworkDisplay(
        xx0=xx0,
        xx1=xx1,
        layer_values=[grid, np.full((16, 1), 2.0)],
        coefs=[np.zeros((2, 1))],
        classes=None,
        activation="relu",
        out_activation="identity",
    ).plot()
    assert (display.colorbar_.norm.vmin, display.colorbar_.norm.vmax) == (1.5, 2.5)
    assert display.scatter_ is None
    display.figure_.canvas.draw()


@pytest.mark.filterwarnings(CONVERGENCE)
def test_network_display_works_with_mlpregressor():
    X, y = make_plane(40, random_state=0)
    reg = MLPRegressor(
        hidden_layer_sizes=(3,), solver="lbfgs", max_iter=5, random_state=0
    ).fit(X, y)
    display = NetworkDisplay.from_estimator(reg, X, y, grid_resolution=6)
    assert [len(panels) for panels in display.neuron_axes_] == [2, 3, 1]
    np.testing.assert_allclose(
        display.decision_boundary_.response.ravel(), reg.predict(_grid(display))
    )


@pytest.mark.filterwarnings(CONVERGENCE)
def test_multi_output_regressor_is_refused():
    X, y = make_plane(30, random_state=0)
    reg = _regressor().fit(X, np.c_[y, -y])
    with pytest.raises(ValueError, match="2 outputs \\(a multi-output target\\)"):
        NetworkDisplay.from_estimator(reg, X)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "bad_y, match",
    [
        (lambda y: np.array(["a"] * len(y)), "numeric targets; got y of dtype <U1"),
        (lambda y: np.r_[np.nan, y[1:]], "y contains NaN"),
        (lambda y: y[:-1], "different numbers"),
    ],
)
def test_bad_regression_targets_are_refused(bad_y, match):
    X, y = make_plane(30, random_state=0)
    reg = _regressor().fit(X, y)
    with pytest.raises(ValueError, match=match):
        NetworkDisplay.from_estimator(reg, X, bad_y(y))


def test_neither_classifier_nor_regressor_is_refused():
    X, _ = _xor()
    with pytest.raises(ValueError, match="KMeans is neither a classifier nor"):
        NetworkDisplay.from_estimator(KMeans(2, n_init=1, random_state=0).fit(X), X)


# -------------------------------------------------------- plot_playground


def test_playground_grid_has_a_cell_per_dataset_and_architecture():
    estimator = DNNClassifier(solver="lbfgs", max_iter=3, random_state=0)
    result = plot_playground(
        estimator, n_samples=20, grid_resolution=4, hidden_layer_sizes=[(), (2,)]
    )
    assert result.datasets == ["xor", "circle", "spiral", "gaussians", "moons"]
    assert result.displays.shape == result.test_scores.shape == (5, 2)
    for display, score, clf in zip(
        result.displays.ravel(),
        result.test_scores.ravel(),
        result.estimators.ravel(),
        strict=True,
    ):
        assert isinstance(display, DecisionBoundaryDisplay)
        assert display.figure_ is result.figure
        assert f"test accuracy {score:.2f}" in display.ax_.get_title()
        assert clf.max_iter == 3
    assert [clf.hidden_layer_sizes for clf in result.estimators[0]] == [(), (2,)]
    result.figure.canvas.draw()


def test_playground_xor_needs_a_hidden_layer():
    # The lesson's first row, with its defaults: a straight line cannot
    # separate XOR, four hidden units can.
    result = plot_playground(grid_resolution=4, hidden_layer_sizes=[(), (4,)])
    no_hidden, one_hidden = result.test_scores[0]
    assert no_hidden < 0.7
    assert one_hidden > 0.9


def test_playground_refuses_axes_of_the_wrong_shape():
    _, axes = plt.subplots(2, 3)
    with pytest.raises(ValueError, match=r"shape \(5, 3\)"):
        plot_playground(axes=axes)

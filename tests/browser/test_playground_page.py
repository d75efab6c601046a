"""The Playground's page in headless Chromium, as a learner uses it.

Each test opens the page served by ``python -m skdnn.playground``, works its
controls and reads what the page shows. The screenshots they take are the
pictures of the docs' page "The Playground".
"""

import json
import re
import time
import urllib.error
import urllib.request

import pytest

TRAIN_TIMEOUT_MS = 120_000


def _open(page, server, fragment=""):
    page.goto(server + fragment)
    page.evaluate("window.playground.ready")
    return page


def _epoch(page):
    return int(re.sub(r"\D", "", page.inner_text("#epoch")))


def _frame(page, expression):
    return page.evaluate(f"window.playground.frame.{expression}")


def _state(page):
    return page.evaluate("window.playground.state")


def _play_until(page, epochs):
    """Press play, wait until the epoch counter reaches ``epochs``, pause."""
    page.click("#play")
    page.wait_for_function(
        f"window.playground.frame.epoch >= {epochs}", timeout=TRAIN_TIMEOUT_MS
    )
    page.click("#play")
    page.wait_for_function("!window.playground.playing")
    # The last frame in flight when pause was pressed is drawn too.
    page.wait_for_timeout(300)


def _output_picture(page):
    return page.evaluate("document.querySelector('#output').toDataURL()")


def _wait_for_reset(page, condition):
    # The page merges quick changes into one reset: wait until none is on
    # its way and the frame is the new network's.
    page.wait_for_function(
        "window.playground.frame && !window.playground.busy && "
        f"window.playground.frame.epoch === 0 && ({condition})"
    )


def _neurons(page, column):
    return page.locator(f'canvas.neuron[data-column="{column}"]').count()


def _page_errors(page):
    # A refused upload answers 400, which Chromium logs as a failed resource;
    # any other console error, or an uncaught exception, is a bug of the page.
    return [e for e in page.errors if "Failed to load resource" not in e]


def test_page_loads_the_default_network(page, server, screenshots):
    _open(page, server)
    assert page.title()
    assert _epoch(page) == 0
    assert _state(page)["layers"] == [4, 2]
    assert [len(column["maps"]) for column in _frame(page, "columns")] == [2, 4, 2, 1]
    assert _neurons(page, 1) == 4 and _neurons(page, 2) == 2
    assert page.locator(".feature.active").count() == 2
    assert page.locator("svg#links path.link").count() >= 2 * 4 + 4 * 2 + 2
    assert (
        page.locator('.dataset[data-name="circle"]')
        .get_attribute("class")
        .split()
        .count("selected")
    )
    page.screenshot(path=screenshots / "start.png")
    assert not _page_errors(page)


def test_play_lowers_the_loss_and_changes_the_output(page, server, screenshots):
    _open(page, server)
    loss_before = float(page.inner_text("#loss-train"))
    picture_before = _output_picture(page)
    _play_until(page, 40)
    assert _epoch(page) >= 40
    loss_after = float(page.inner_text("#loss-train"))
    assert loss_after < 0.5 * loss_before
    picture_after, epoch_after = _output_picture(page), _epoch(page)
    assert picture_after != picture_before
    assert len(_frame(page, "history")) == _epoch(page) + 1
    page.screenshot(path=screenshots / "circle_trained.png")
    # Discretize draws the predicted class: the picture changes, the network
    # does not.
    page.check("#discretize")
    page.wait_for_function("window.playground.state.discretize === true")
    page.wait_for_timeout(200)
    assert _output_picture(page) != picture_after
    assert _epoch(page) == epoch_after
    page.uncheck("#discretize")
    # Step trains exactly one epoch.
    epoch = _epoch(page)
    page.click("#step")
    page.wait_for_function(f"window.playground.frame.epoch === {epoch + 1}")
    assert _epoch(page) == epoch + 1
    # Reset: a new, untrained network.
    page.click("#reset")
    _wait_for_reset(page, "true")
    assert _epoch(page) == 0
    assert not _page_errors(page)


def test_play_trains_frame_after_frame(page, server):
    # The target: 10 frames a second for a 2-8-8-1 network. Printed
    # (tests never assert on time); benchmarks/playground_fps.py measures it.
    _open(page, server, "#layers=8,8&dropout=0,0")
    page.click("#play")
    page.wait_for_function("window.playground.frame.epoch >= 3")
    start = page.evaluate("[performance.now(), window.playground.frame.epoch]")
    page.wait_for_timeout(3000)
    end = page.evaluate("[performance.now(), window.playground.frame.epoch]")
    # The page answers while it trains: a control takes effect at once.
    page.check("#show-test")
    page.wait_for_function("window.playground.state.show_test === true", timeout=1000)
    assert page.evaluate("window.playground.playing")
    page.click("#play")
    fps = (end[1] - start[1]) / ((end[0] - start[0]) / 1000)
    print(f"2-8-8-1 network: {fps:.1f} frames a second")
    assert end[1] > start[1]


def test_regenerate_draws_new_points(page, server):
    _open(page, server)
    seed, points = _state(page)["seed"], _frame(page, "points.train")
    page.click("#regenerate")
    _wait_for_reset(page, f"window.playground.state.seed !== {seed}")
    assert _frame(page, "points.train") != points
    assert f"seed={_state(page)['seed']}" in page.url
    # The sliders: noise and the ratio of training points.
    page.locator("#noise").fill("30")
    _wait_for_reset(page, "window.playground.state.noise === 30")
    page.locator("#train-ratio").fill("70")
    _wait_for_reset(page, "window.playground.state.train_ratio === 70")
    assert len(_frame(page, "points.train")) == 350
    assert not _page_errors(page)


def test_add_a_layer_and_a_neuron(page, server):
    _open(page, server)
    page.click("#add-layer")
    _wait_for_reset(page, "window.playground.frame.columns.length === 5")
    assert _state(page)["layers"] == [4, 2, 2] or len(_state(page)["layers"]) == 3
    layers = _state(page)["layers"]
    page.locator('.layer[data-layer="0"] .add-neuron').click()
    _wait_for_reset(
        page, f"window.playground.frame.columns[1].maps.length === {layers[0] + 1}"
    )
    assert _state(page)["layers"][0] == layers[0] + 1
    assert _neurons(page, 1) == layers[0] + 1
    assert "layers=" + ",".join(map(str, _state(page)["layers"])) in page.url
    page.locator('.layer[data-layer="2"] .remove-neuron').click()
    _wait_for_reset(page, f"window.playground.state.layers[2] === {layers[2] - 1}")
    page.click("#remove-layer")
    _wait_for_reset(page, "window.playground.frame.columns.length === 4")
    # The new network trains.
    _play_until(page, 3)
    assert not _page_errors(page)


def test_switch_to_a_regression_problem(page, server, screenshots):
    _open(page, server)
    page.select_option("#problem", "regression")
    _wait_for_reset(page, "window.playground.state.problem === 'regression'")
    assert _state(page)["dataset"] == "plane"
    assert _frame(page, "score.name") == "R²"
    page.locator('.dataset[data-name="multigauss"]').click()
    _wait_for_reset(page, "window.playground.state.dataset === 'multigauss'")
    page.select_option("#activation", "relu")
    _wait_for_reset(page, "window.playground.state.activation === 'relu'")
    _play_until(page, 30)
    # The training loss falls to about a fifth of the untrained network's,
    # then swings from epoch to epoch at the page's learning rate (R² 0.28
    # to 0.43 after epoch 20, where pausing lands wherever the server is):
    # the last five epochs' mean loss, and R², say that it learned.
    history = _frame(page, "history")
    assert history[0][0] == 0 and len(history) > 30
    recent = [row[1] for row in history[-5:]]
    assert sum(recent) / len(recent) < 0.4 * history[0][1]
    assert _frame(page, "score.train") > 0.2
    page.screenshot(path=screenshots / "regression.png")
    assert not _page_errors(page)


def test_upload_a_good_and_a_bad_csv(page, server, tmp_path, screenshots):
    _open(page, server)
    rows = ["width,height,kind"] + [
        f"{x},{y},{'wide' if x > y else 'tall'}"
        for x, y in ((i * 7 % 50, i * 13 % 50) for i in range(200))
    ]
    good = tmp_path / "shapes.csv"
    good.write_text("\n".join(rows))
    page.set_input_files("#csv-file", str(good))
    _wait_for_reset(page, "window.playground.state.dataset === 'csv'")
    assert _state(page)["csv"] == {"x1": "width", "x2": "height", "target": "kind"}
    assert sorted(_frame(page, "classes")) == ["tall", "wide"]
    assert not page.locator("#message.error").count()
    _play_until(page, 20)
    assert _frame(page, "score.train") > 0.8
    page.screenshot(path=screenshots / "csv.png")

    epoch = _epoch(page)
    bad = tmp_path / "one_class.csv"
    bad.write_text("\n".join(["a,b,label"] + [f"{i},{i % 3},same" for i in range(20)]))
    page.set_input_files("#csv-file", str(bad))
    page.wait_for_selector("#message.error")
    assert "one class" in page.inner_text("#message")
    # Nothing else broken: the shapes network is still there and trains.
    assert _state(page)["csv"]["target"] == "kind"
    page.click("#step")
    page.wait_for_function(f"window.playground.frame.epoch === {epoch + 1}")

    headless = tmp_path / "numbers.csv"
    headless.write_text("\n".join(f"{i},{i},{i % 2}" for i in range(20)))
    page.set_input_files("#csv-file", str(headless))
    page.wait_for_function(
        "document.querySelector('#message').textContent.includes('header')"
    )
    assert page.locator("#message.error").count() == 1
    assert not _page_errors(page)


def test_copy_as_python(page, server):
    _open(page, server, "#dataset=xor&layers=6,4&dropout=0.2,0&activation=sigmoid")
    _play_until(page, 5)
    page.click("#copy-python")
    page.wait_for_function(
        "(document.querySelector('#python-code').value || "
        "document.querySelector('#python-code').textContent).includes('model.fit')"
    )
    code = page.evaluate(
        "document.querySelector('#python-code').value || "
        "document.querySelector('#python-code').textContent"
    )
    assert "from skdnn.datasets import make_xor" in code
    assert "hidden_layer_sizes=(6, 4)" in code and 'activation="logistic"' in code
    assert "dropout=(0.2, 0.0)" in code
    compile(code, "playground_network.py", "exec")


def test_the_url_reproduces_the_network(browser, page, server):
    _open(page, server)
    page.locator('.dataset[data-name="spiral"]').click()
    _wait_for_reset(page, "window.playground.state.dataset === 'spiral'")
    page.locator('.feature[data-name="sinx1"]').click()
    _wait_for_reset(page, "window.playground.state.features.includes('sinx1')")
    page.click("#add-layer")
    _wait_for_reset(page, "window.playground.state.layers.length === 3")
    page.locator('.layer[data-layer="1"] select.dropout').select_option("0.3")
    _wait_for_reset(page, "window.playground.state.dropout[1] === 0.3")
    page.select_option("#learning-rate", "0.01")
    _wait_for_reset(page, "window.playground.state.learning_rate === 0.01")
    state, weights, url = _state(page), _frame(page, "weights"), page.url
    assert "#" in url

    other = browser.new_page()
    other.goto(url)
    other.evaluate("window.playground.ready")
    assert other.evaluate("window.playground.state") == state
    assert other.evaluate("window.playground.frame.weights") == weights
    assert other.locator(".feature.active").count() == 3
    assert other.locator('.layer[data-layer="1"] select.dropout').input_value() in (
        "0.3",
        "0.30",
    )
    other.close()


def test_a_closed_tab_loses_its_network(browser, server):
    page = browser.new_page()
    _open(page, server)
    key = page.evaluate("window.playground.frame.session")
    page.close(run_before_unload=True)
    # The page's "pagehide" beacon drops the tab's network.
    status = None
    for _ in range(50):
        request = urllib.request.Request(
            server + "api/step",
            data=json.dumps({"session": key}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=10)
            status = 200
        except urllib.error.HTTPError as error:
            status = error.code
        if status == 404:
            break
        time.sleep(0.1)
    assert status == 404


SPIRAL = "dataset=spiral&learning_rate=0.01"
LESSONS = [
    # (file, URL state, epochs): the docs' lessons.
    ("lesson_linear_xor", "dataset=xor&layers=&dropout=", 100),
    ("lesson_xor_product", "dataset=xor&layers=&dropout=&features=x1,x2,x1x2", 10),
    ("lesson_one_layer_xor", "dataset=xor&layers=4&dropout=0", 100),
    ("lesson_spiral_0", SPIRAL + "&layers=&dropout=", 300),
    ("lesson_spiral_1", SPIRAL + "&layers=8&dropout=0", 300),
    ("lesson_spiral_3", SPIRAL + "&layers=8,8,8&dropout=0,0,0", 300),
]


def _train_and_record(page, screenshots, name, epochs):
    _play_until(page, epochs)
    page.screenshot(path=screenshots / f"{name}.png")
    result = {
        "epoch": _epoch(page),
        "score": _frame(page, "score"),
        "loss": _frame(page, "loss"),
    }
    (screenshots / f"{name}.json").write_text(json.dumps(result) + "\n")
    return result


@pytest.mark.parametrize("name, fragment, epochs", LESSONS)
def test_lessons(page, server, screenshots, name, fragment, epochs):
    _open(page, server, "#" + fragment + "&show_test=1")
    score = _train_and_record(page, screenshots, name, epochs)["score"]
    if name == "lesson_linear_xor":
        # No hidden layer draws one straight line: XOR's four quadrants
        # cannot all be right.
        assert score["test"] < 0.8
    if name in ("lesson_one_layer_xor", "lesson_xor_product"):
        assert score["test"] > 0.9
    assert not _page_errors(page)


def test_dropout_lesson(page, server, screenshots):
    # A small noisy set (100 training points, half the labels noisy near
    # the boundary) and three layers of 8: without dropout the network
    # learns the noise; dropout 0.3 in each layer keeps its test loss lower.
    _open(
        page, server, "#dataset=circle&noise=50&train_ratio=20&layers=8,8,8&show_test=1"
    )
    overfit = _train_and_record(page, screenshots, "lesson_overfit", 300)
    assert overfit["score"]["train"] - overfit["score"]["test"] > 0.1
    for layer in range(3):
        page.locator(f'.layer[data-layer="{layer}"] select.dropout').select_option(
            "0.3"
        )
    _wait_for_reset(page, "window.playground.state.dropout.every(p => p === 0.3)")
    dropout = _train_and_record(page, screenshots, "lesson_dropout", 300)
    assert dropout["score"]["test"] > overfit["score"]["test"]
    assert dropout["loss"]["test"] < overfit["loss"]["test"]
    # The dropout curve: 6 rates x 3 folds of the training points.
    page.click("#dropout-curve")
    page.wait_for_function(
        "window.playground.curve !== undefined", timeout=TRAIN_TIMEOUT_MS
    )
    curve = page.evaluate("window.playground.curve")
    assert curve["values"] == [0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert max(curve["test"][1:4]) > curve["test"][0]
    page.locator("#curve").screenshot(path=screenshots / "dropout_curve.png")
    assert not _page_errors(page)

"""The Playground's server: state, features, training, code export, CSV files.

The page itself is tested in a real browser by tests/browser (tox -e browser).
"""

import base64
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from starlette.testclient import TestClient

from skdnn import DNNClassifier, DNNRegressor
from skdnn.playground import create_app, main
from skdnn.playground._app import JSON_BYTES
from skdnn.playground._cli import _is_loopback
from skdnn.playground._data import UPLOAD_BYTES, UPLOAD_ROWS, guess_columns, parse_csv
from skdnn.playground._session import (
    NEURON_RESOLUTION,
    OUTPUT_RESOLUTION,
    Session,
    make_network,
    network_state,
)
from skdnn.playground._state import (
    CHOICES,
    DEFAULTS,
    FEATURES,
    normalize_state,
    transform_features,
)


@pytest.fixture
def client():
    return TestClient(create_app())


def _decode(encoded, resolution):
    values = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8)
    assert values.shape == (resolution * resolution,)
    return values / 127.5 - 1.0


def _csv(rows, header="a,b,label"):
    return (header + "\n" + "\n".join(",".join(map(str, r)) for r in rows)).encode()


def _good_rows(n=40):
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 100, size=(n, 2))
    labels = np.where(X[:, 0] > 50, "big", "small")
    return [[f"{a:.3f}", f"{b:.3f}", c] for (a, b), c in zip(X, labels, strict=True)]


# --------------------------------------------------------------- the state


def test_defaults_are_the_tensorflow_playgrounds():
    assert normalize_state({}) == DEFAULTS
    assert DEFAULTS["dataset"] == "circle" and DEFAULTS["layers"] == [4, 2]
    assert DEFAULTS["activation"] == "tanh" and DEFAULTS["learning_rate"] == 0.03


def test_state_reads_the_urls_strings():
    # The page sends the URL's values as they are: lists comma-joined,
    # booleans 0/1, numbers as text.
    state = normalize_state(
        {
            "layers": "8,8,1",
            "dropout": "0.1,0,0.5",
            "features": "x1x2,x1",
            "learning_rate": "0.030000000000000002",
            "show_test": "1",
            "seed": "42",
            "unknown": "ignored",
        }
    )
    assert state["layers"] == [8, 8, 1]
    assert state["dropout"] == [0.1, 0.0, 0.5]
    # The page's order, whatever the URL's.
    assert state["features"] == ["x1", "x1x2"]
    assert state["learning_rate"] == 0.03 and state["seed"] == 42
    assert state["show_test"] is True
    assert normalize_state({"layers": ""})["layers"] == []


def test_new_layers_without_dropout_get_none():
    assert normalize_state({"layers": [3, 3, 3]})["dropout"] == [0.0, 0.0, 0.0]


def test_switching_problem_picks_its_first_data_set():
    state = normalize_state({"problem": "regression"})
    assert state["dataset"] == "plane"


@pytest.mark.parametrize(
    "raw, named",
    [
        ({"layers": [9]}, "layers=[9]"),
        ({"layers": [1] * 7}, "layers="),
        ({"layers": [0]}, "layers=[0]"),
        ({"dropout": [0.1]}, "one rate per hidden layer (2)"),
        ({"dropout": [0.7, 0]}, "dropout=0.7"),
        ({"learning_rate": 0.5}, "learning_rate=0.5"),
        ({"regularization_rate": -1}, "regularization_rate=-1"),
        ({"activation": "softplus"}, "activation='softplus'"),
        ({"optimizer": "lbfgs"}, "optimizer='lbfgs'"),
        ({"features": []}, "at least one input feature"),
        ({"features": ["x3"]}, "features='x3'"),
        ({"dataset": "plane"}, "dataset='plane'"),
        ({"problem": "ranking"}, "problem='ranking'"),
        ({"noise": 7}, "noise=7"),
        ({"train_ratio": 95}, "train_ratio=95"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
        ({"seed": -1}, "seed=-1"),
        ({"show_test": "maybe"}, "show_test='maybe'"),
        ({"dataset": "csv"}, "csv=None"),
        ({"dataset": "csv", "csv": {"x1": "a"}}, "csv="),
    ],
)
def test_bad_state_names_the_control(raw, named):
    with pytest.raises(ValueError, match="is not valid: expected") as info:
        normalize_state(raw)
    assert named in str(info.value)


# -------------------------------------------------- state to estimator and back


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"layers": [8, 8], "dropout": [0.2, 0.5], "activation": "relu"},
        {"layers": [], "activation": "sigmoid", "optimizer": "sgd"},
        {"problem": "regression", "activation": "linear", "batch_size": 30},
        {"regularization_rate": 0.3, "learning_rate": 1e-5, "seed": 999},
    ],
)
def test_state_to_estimator_and_back(raw):
    state = normalize_state(raw)
    network = make_network(state)[-1]
    expected = DNNClassifier if state["problem"] == "classification" else DNNRegressor
    assert type(network) is expected
    back = network_state(network)
    assert back == {key: state[key] for key in back}
    # Every 'auto' is resolved: the page's network does not change with the
    # library's defaults.
    assert "auto" not in network.get_params().values()


def test_estimator_parameters_follow_the_controls():
    state = normalize_state(
        {"optimizer": "sgd", "activation": "sigmoid", "layers": [5], "dropout": [0.3]}
    )
    params = make_network(state)[-1].get_params()
    assert params["activation"] == "logistic"
    assert params["solver"] == "sgd" and params["momentum"] == 0.0
    assert params["dropout"] == (0.3,)
    assert params["n_threads"] == 1


def test_feature_transforms():
    X = np.array([[0.0, 1.0], [2.0, -3.0], [np.pi / 2, 0.5]])
    Z = transform_features(X, list(FEATURES))
    x1, x2 = X.T
    expected = np.column_stack([x1, x2, x1**2, x2**2, x1 * x2, np.sin(x1), np.sin(x2)])
    np.testing.assert_allclose(Z, expected)
    assert transform_features(X, ["x2"]).shape == (3, 1)


# ------------------------------------------------------------------ training


def test_reset_draws_the_untrained_network():
    session = Session()
    frame = session.reset({"layers": [3, 2], "train_ratio": 30})
    assert frame["epoch"] == 0 and len(frame["history"]) == 1
    assert len(frame["points"]["train"]) == 150 and len(frame["points"]["test"]) == 350
    kinds = [column["kind"] for column in frame["columns"]]
    assert kinds == ["input", "hidden", "hidden", "output"]
    assert [len(column["maps"]) for column in frame["columns"]] == [2, 3, 2, 1]
    for column in frame["columns"]:
        resolution = column["resolution"]
        for encoded in column["maps"]:
            assert np.all(np.abs(_decode(encoded, resolution)) <= 1)
    assert [np.shape(w) for w in frame["weights"]] == [(2, 3), (3, 2), (2, 1)]
    np.testing.assert_allclose(
        frame["weights"][0], np.round(session.network.coefs_[0], 4)
    )
    # The input neuron x1 grows from left to right, x2 from bottom to top.
    x1 = _decode(frame["columns"][0]["maps"][0], NEURON_RESOLUTION)
    x2 = _decode(frame["columns"][0]["maps"][1], NEURON_RESOLUTION)
    side = NEURON_RESOLUTION
    assert x1[0] < x1[side - 1] and x2[0] > x2[(side - 1) * side]


def test_play_trains_the_page_network_with_partial_fit():
    session = Session()
    first = session.reset({"dataset": "xor", "layers": [4, 4]})
    before = _decode(first["columns"][-1]["maps"][0], OUTPUT_RESOLUTION)
    weights = [w.copy() for w in session.network.coefs_]
    frame = session.step(30)
    # A step sends its own epochs' history; the session keeps it all.
    assert frame["epoch"] == 30 and [row[0] for row in frame["history"]] == list(
        range(1, 31)
    )
    assert len(session.history) == 31
    assert session.network.t_ == 30 * 250
    assert frame["loss"]["train"] < 0.5 * first["loss"]["train"]
    assert frame["score"]["test"] > 0.9
    after = _decode(frame["columns"][-1]["maps"][0], OUTPUT_RESOLUTION)
    assert np.abs(after - before).max() > 0.5
    assert any(
        not np.allclose(w, v)
        for w, v in zip(weights, session.network.coefs_, strict=True)
    )


def test_regression_problem():
    session = Session()
    frame = session.reset({"problem": "regression", "dataset": "multigauss"})
    assert "classes" not in frame and frame["score"]["name"] == "R²"
    assert len(frame["points"]["train"]) == 600
    frame = session.step(20)
    assert frame["score"]["train"] > 0.2
    assert frame["loss"]["train"] < session.history[0][1]


def test_a_diverging_network_still_draws():
    # Plain gradient descent at rate 10 blows the weights up; the page still
    # gets a frame it can read (JSON has no inf or NaN) and can reset.
    session = Session()
    session.reset(
        {
            "problem": "regression",
            "optimizer": "sgd",
            "learning_rate": 10,
            "activation": "relu",
            "layers": [8, 8],
        }
    )
    frame = session.step(20)
    assert np.abs(session.network.coefs_[0]).max() > 1e3
    json.dumps(frame, allow_nan=False)
    assert session.reset({})["epoch"] == 0


def test_step_refuses_bad_epochs():
    session = Session()
    session.reset({})
    with pytest.raises(ValueError, match="epochs=0 is not valid"):
        session.step(0)


def test_dropout_curve():
    session = Session()
    session.reset({"dataset": "spiral", "layers": [8, 8], "noise": 30})
    curve = session.curve()
    assert curve["values"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert len(curve["train"]) == len(curve["test"]) == 6
    assert curve["metric"] == "accuracy" and curve["epochs"] == 100
    # More dropout, less fitted training folds.
    assert curve["train"][0] > curve["train"][-1]
    session.reset({"layers": []})
    with pytest.raises(ValueError, match="add one"):
        session.curve()


# --------------------------------------------------------------- code export


def _run_export(code, tmp_path, extra=""):
    script = tmp_path / "playground_network.py"
    script.write_text(code, encoding="utf-8")
    probe = textwrap.dedent(
        f"""
        import json, runpy
        ns = runpy.run_path({str(script)!r}, run_name="__main__")
        model = ns["model"]
        params = model[-1].get_params()
        print(json.dumps({{
            "steps": [name for name, _ in model.steps],
            "score": model.score(ns["X_test"], ns["y_test"]),
            "params": {{k: repr(v) for k, v in params.items()}},
        }}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "raw, epochs",
    [
        # The tutorial's 2-6-4-1 ReLU network on XOR.
        ({"dataset": "xor", "layers": [6, 4], "activation": "relu"}, 40),
        (
            {
                "dataset": "gauss",
                "noise": 20,
                "layers": [3],
                "dropout": [0.2],
                "optimizer": "sgd",
                "features": ["x1", "x2", "x1^2", "sinx2"],
            },
            15,
        ),
        (
            {
                "problem": "regression",
                "dataset": "multigauss",
                "layers": [8, 8],
                "activation": "relu",
                "learning_rate": 0.01,
                "seed": 3,
            },
            100,
        ),
    ],
)
def test_exported_code_reproduces_the_network(raw, epochs, tmp_path):
    session = Session()
    session.reset(raw)
    for _ in range(epochs // 5):
        frame = session.step(5)
    code = session.export()["code"]
    compile(code, "playground_network.py", "exec")
    result = _run_export(code, tmp_path)
    network = session.network
    assert result["steps"] == [name for name, _ in session.pipeline.steps]
    expected = {k: repr(v) for k, v in network.get_params().items()}
    expected["max_iter"] = expected["n_iter_no_change"] = repr(epochs)
    assert result["params"] == expected
    # fit starts from the page's initial weights but shuffles differently
    # from partial_fit: its test score is the page's within noise.
    assert abs(result["score"] - frame["score"]["test"]) < 0.05


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_page_starts_from_the_initial_weights_of_fit():
    session = Session()
    frame = session.reset({"dataset": "spiral", "layers": [5, 3], "seed": 7})
    untrained = make_network(session.state)
    # A fit that cannot move its weights shows where fit starts.
    untrained.set_params(dnnclassifier__learning_rate_init=1e-300)
    untrained.fit(session.X_train_raw, session.y_train)
    for page, start in zip(frame["weights"], untrained[-1].coefs_, strict=True):
        np.testing.assert_allclose(page, np.round(start, 4))


def test_exported_features_are_the_pages(tmp_path):
    session = Session()
    session.reset({"features": list(FEATURES)})
    namespace = {}
    code = session.export()["code"]
    source = code[code.index("def playground_features") : code.index("model =")]
    exec("import numpy as np\n" + source, namespace)
    X = np.random.RandomState(0).normal(size=(20, 2)) * 4
    np.testing.assert_allclose(
        namespace["playground_features"](X), transform_features(X, list(FEATURES))
    )


def test_exported_code_for_an_uploaded_file(tmp_path):
    session = Session()
    data = _csv(_good_rows(), header="width;height;size").replace(b",", b";")
    session.upload(data, "shapes.csv")
    columns = {"x1": "width", "x2": "height", "target": "size"}
    session.reset({"dataset": "csv", "csv": columns})
    session.step(20)
    (tmp_path / "shapes.csv").write_bytes(data)
    code = session.export()["code"]
    assert 'pd.read_csv("shapes.csv", sep=";")' in code
    result = _run_export(code, tmp_path)
    assert result["steps"] == ["minmaxscaler", "functiontransformer", "dnnclassifier"]


# ----------------------------------------------------------------- CSV files


def test_guess_takes_a_two_valued_column_as_label():
    rows = [
        [i, i % 7, f"name{i}", "yes" if i % 2 else "no", f"x{i}"] for i in range(20)
    ]
    table = parse_csv(_csv(rows, header="a,b,name,label,id"))
    assert guess_columns(table) == {"x1": "a", "x2": "b", "target": "label"}


def test_good_csv_and_its_guess():
    table = parse_csv(_csv(_good_rows()))
    assert table.columns == ["a", "b", "label"] and len(table.rows) == 40
    session = Session()
    answer = session.upload(_csv(_good_rows()), "mine.csv")
    assert answer["guess"] == {"x1": "a", "x2": "b", "target": "label"}
    frame = session.reset({"dataset": "csv", "csv": answer["guess"]})
    assert frame["classes"] == ["big", "small"]
    assert frame["domain"]["x1"][0] < 0 < 100 < frame["domain"]["x1"][1]
    assert session.step(30)["score"]["train"] > 0.8


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"\xff\xfe\x00bad", "not a text"),
        (_csv(_good_rows(), header="1,2,3"), "no header"),
        (_csv([[1, 2]] * 20, header="a,b"), "2 column"),
        (_csv([[1, 2, 3]] * 5), "at least 10"),
        (_csv([[1, 2, 3]] * 20 + [[1, 2]]), "Line 22 has 2 fields"),
        (_csv([[1, 2, 3]] * 20, header="a,a,b"), "names a column twice"),
        (_csv([[1, 2, 3]] * (UPLOAD_ROWS + 1)), f"at most {UPLOAD_ROWS:,}"),
        (b"a,b,c\n" + b"1,2,3\n" * (UPLOAD_BYTES // 6 + 1), "bytes"),
    ],
)
def test_csv_that_cannot_be_read_is_named(data, message):
    with pytest.raises(ValueError, match=message):
        parse_csv(data)


@pytest.mark.parametrize(
    "rows, problem, message",
    [
        ([[1, "x", 0]] + [[1, 2, 0], [2, 1, 1]] * 10, "classification", "numeric"),
        ([[1, "", 0]] + [[1, 2, 0], [2, 1, 1]] * 10, "classification", "missing"),
        ([[1, 2, "NA"]] + [[1, 2, 0], [2, 1, 1]] * 10, "classification", "missing"),
        ([[1, 2, "cat"]] * 20, "classification", "one class"),
        ([[i, i, i] for i in range(20)], "classification", "20 classes"),
        ([[1, 2, "x"]] + [[1, 2, 3]] * 20, "regression", "numeric"),
    ],
)
def test_csv_with_unusable_columns_is_named(rows, problem, message):
    session = Session()
    first = session.reset({})
    session.step(2)
    session.upload(_csv(rows), "bad.csv")
    columns = {"x1": "a", "x2": "b", "target": "label"}
    with pytest.raises(ValueError, match=message):
        session.reset({"problem": problem, "dataset": "csv", "csv": columns})
    # Nothing else broken: the tab's network and data are as they were.
    assert session.state == first["state"] and session.epoch == 2
    assert session.step(1)["epoch"] == 3


# ------------------------------------------------------------------- the app


def test_app_round_trip(client):
    frame = client.post("/api/reset", json={"state": {"layers": [2]}}).json()
    key = frame["session"]
    assert frame["state"]["layers"] == [2]
    assert (
        client.post("/api/step", json={"session": key, "epochs": 3}).json()["epoch"]
        == 3
    )
    code = client.post("/api/export", json={"session": key}).json()["code"]
    assert "hidden_layer_sizes=(2,)" in code
    curve = client.post("/api/curve", json={"session": key}).json()
    assert len(curve["test"]) == 6
    options = client.get("/api/options").json()
    assert options["defaults"] == DEFAULTS and options["choices"]["max_layers"] == 6


def test_each_tab_has_its_own_network(client):
    one = client.post("/api/reset", json={"state": {}}).json()["session"]
    two = client.post("/api/reset", json={"state": {"layers": [1]}}).json()["session"]
    assert one != two
    client.post("/api/step", json={"session": one, "epochs": 5})
    frame = client.post("/api/step", json={"session": two}).json()
    assert frame["epoch"] == 1 and len(frame["weights"]) == 2


def test_closed_or_expired_tab_loses_its_network():
    app = create_app(max_sessions=2)
    client = TestClient(app)
    keys = [client.post("/api/reset", json={}).json()["session"] for _ in range(3)]
    # The oldest of three made room for the newest.
    answer = client.post("/api/step", json={"session": keys[0]})
    assert answer.status_code == 404 and "expired" in answer.json()["error"]
    assert client.post("/api/close", json={"session": keys[1]}).json()["closed"]
    assert client.post("/api/step", json={"session": keys[1]}).status_code == 404
    assert len(app.state.sessions) == 1
    idle = create_app(idle_seconds=0)
    key = TestClient(idle).post("/api/reset", json={}).json()["session"]
    assert TestClient(idle).post("/api/step", json={"session": key}).status_code == 404


def test_bad_requests_get_messages(client):
    answer = client.post("/api/reset", json={"state": {"layers": [9]}})
    assert answer.status_code == 400 and "layers=[9]" in answer.json()["error"]
    answer = client.post("/api/reset", content=b"{not json")
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]
    answer = client.post("/api/reset", content=b"x" * (JSON_BYTES + 1))
    assert answer.status_code == 413
    key = client.post("/api/reset", json={}).json()["session"]
    answer = client.post("/api/step", json={"session": key, "epochs": "many"})
    assert answer.status_code == 400 and "epochs='many'" in answer.json()["error"]
    answer = client.post(
        f"/api/upload?session={key}", content=b"x" * (UPLOAD_BYTES + 1)
    )
    assert answer.status_code == 413 and "bytes" in answer.json()["error"]
    answer = client.post(f"/api/upload?session={key}", content=_csv([[1, 2, 3]] * 3))
    assert answer.status_code == 400 and "at least 10" in answer.json()["error"]
    # The failed upload left the tab's network trainable.
    assert client.post("/api/step", json={"session": key}).json()["epoch"] == 1


def test_only_the_apps_own_files_are_served(client):
    assert client.get("/").status_code == 200
    assert client.get("/static/playground.js").status_code == 200
    for path in ("/static/../_app.py", "/static/%2e%2e/_app.py", "/etc/passwd"):
        assert client.get(path).status_code == 404


# ------------------------------------------------------------------ the command


def test_command_help(capsys):
    assert main(["--help"]) == 0
    assert "--no-browser" in capsys.readouterr().out


def test_command_listens_locally_and_warns_otherwise(monkeypatch, capsys):
    import uvicorn

    served = {}

    def fake_run(server):
        served["host"] = server.config.host
        served["port"] = server.config.port

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    assert main(["--no-browser", "--port", "8999"]) == 0
    assert served == {"host": "127.0.0.1", "port": 8999}
    assert "warning" not in capsys.readouterr().err
    assert main(["--no-browser", "--host", "0.0.0.0"]) == 0
    assert served["host"] == "0.0.0.0"
    assert "warning: listening on 0.0.0.0" in capsys.readouterr().err
    assert _is_loopback("localhost") and _is_loopback("::1")
    assert not _is_loopback("192.168.1.2")


def test_choices_cover_the_tensorflow_playgrounds_menus():
    assert CHOICES["dataset"]["classification"] == ["circle", "xor", "gauss", "spiral"]
    assert CHOICES["dataset"]["regression"] == ["plane", "multigauss"]
    assert set(CHOICES["activation"]) == {"relu", "tanh", "sigmoid", "linear"}
    assert list(FEATURES) == CHOICES["features"] and len(FEATURES) == 7


def test_command_without_its_extra_says_what_to_install(monkeypatch, capsys):
    # ``import uvicorn`` fails where the extra is not installed.
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["--no-browser"]) == 1
    assert 'pip install "skdnn[playground]"' in capsys.readouterr().err

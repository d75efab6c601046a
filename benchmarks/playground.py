"""The Playground's frame rate: a 2-8-8-1 network on the spiral.

The page asks for one epoch per frame and draws what comes back. This times,
in one process with one torch thread (as the server trains each tab):

- the server's whole frame for the default page with two hidden layers of 8
  (``partial_fit`` on 250 points in batches of 10, the losses, accuracies
  and every neuron's heat map), and its ``partial_fit`` alone;
- for scale, one epoch of ``MLPClassifier.partial_fit`` and of a plain
  PyTorch loop (``nn.Sequential``, autograd, Adam) on the same points;
- with ``--browser`` (Playwright and Chromium installed), the frames a
  second the page itself shows in headless Chromium, for 5 seconds of play.

Prints a table and writes ``benchmarks/playground.json``. Run on an idle
machine: ``python benchmarks/playground.py [--browser]``.
"""

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier

from skdnn.playground._session import Session

STATE = {"dataset": "spiral", "layers": [8, 8], "dropout": [0, 0]}
EPOCHS = 200


def _median_ms(step, repeats=EPOCHS):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _torch_epoch(X, y):
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 8), torch.nn.Tanh(),
        torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    loss = torch.nn.BCEWithLogitsLoss()
    X = torch.as_tensor(X, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)[:, None]
    model.double()

    def epoch():
        for rows in torch.randperm(len(X)).split(10):
            optimizer.zero_grad()
            loss(model(X[rows]), y[rows]).backward()
            optimizer.step()

    return epoch


def _browser_fps(seconds=5.0):
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "skdnn.playground", "--no-browser", "--port", str(port)]
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "api/options", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url + "#dataset=spiral&layers=8,8&dropout=0,0")
            page.evaluate("window.playground.ready")
            page.click("#play")
            page.wait_for_function("window.playground.frame.epoch >= 5")
            first = page.evaluate("[performance.now(), window.playground.frame.epoch]")
            page.wait_for_timeout(1000 * seconds)
            last = page.evaluate("[performance.now(), window.playground.frame.epoch]")
            browser.close()
        return (last[1] - first[1]) / ((last[0] - first[0]) / 1000)
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    session = Session()
    session.reset(STATE)
    session.step(5)  # past the first epoch's imports
    frame_ms = _median_ms(session.step)
    network, X, y = session.network, session.X_train, session.y_train
    fit_ms = _median_ms(lambda: network.partial_fit(X, y))
    mlp = MLPClassifier((8, 8), activation="tanh", batch_size=10,
                        learning_rate_init=0.03, random_state=0)  # fmt: skip
    mlp.partial_fit(X, y, classes=np.unique(y))
    mlp_ms = _median_ms(lambda: mlp.partial_fit(X, y))
    torch_ms = _median_ms(_torch_epoch(X, y))
    results = {
        "frame_ms": frame_ms,
        "partial_fit_ms": fit_ms,
        "mlp_partial_fit_ms": mlp_ms,
        "torch_epoch_ms": torch_ms,
        "server_frames_per_second": 1000 / frame_ms,
    }
    if args.browser:
        results["browser_frames_per_second"] = _browser_fps()
    print("what (2-8-8-1 tanh, 250 points, batch 10, 1 thread) | ms | vs skdnn")
    for name in ("frame_ms", "partial_fit_ms", "mlp_partial_fit_ms", "torch_epoch_ms"):
        ratio = results[name] / fit_ms
        print(f"{name:<24} | {results[name]:7.2f} | {ratio:5.2f}")
    for name in ("server_frames_per_second", "browser_frames_per_second"):
        if name in results:
            print(f"{name:<24} | {results[name]:7.1f}")
    out = Path(__file__).with_name("playground.json")
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

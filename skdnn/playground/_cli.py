"""The ``skdnn-playground`` command."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import argparse
import ipaddress
import sys
import threading
import time
import webbrowser

_EXTRA = 'The Playground needs its extra: pip install "skdnn[playground]"'


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parser():
    parser = argparse.ArgumentParser(
        prog="skdnn-playground",
        description="Serve the skdnn Playground and open it in a browser.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    parser.add_argument("--port", type=int, default=8765, help="default 8765")
    parser.add_argument(
        "--no-browser", action="store_true", help="do not open a browser"
    )
    return parser


def _warm_up():
    # The first Adam step imports much of torch (about a second); a tiny
    # network trained here means the page's first frame does not wait for it.
    from ._session import Session

    session = Session()
    session.reset({"layers": [2]})
    session.step(1)


def main(argv=None):
    """Serve the Playground; the ``skdnn-playground`` command.

    It listens on 127.0.0.1 unless ``--host`` says otherwise (with a warning:
    anyone who can reach the address can then train networks on this
    machine), opens the page in the default browser unless ``--no-browser``
    is given, and runs until Ctrl-C. Each tab's training runs on one torch
    thread.

    Parameters
    ----------
    argv : list of str, default=None
        The command's arguments (``--host``, ``--port``, ``--no-browser``);
        None reads ``sys.argv``.

    Returns
    -------
    status : int
        The exit status: 0 once the server has stopped.

    Examples
    --------
    >>> from skdnn.playground import main
    >>> main(["--help"])  # doctest: +ELLIPSIS
    usage: skdnn-playground [-h] [--host HOST] [--port PORT] [--no-browser]
    ...
    0
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit:
        return exit.code or 0
    try:
        import uvicorn
    except ImportError:
        print(_EXTRA, file=sys.stderr)
        return 1
    import torch

    from ._app import create_app

    # Several tabs train at once: one thread each keeps them from starving
    # the machine (and these networks are fastest on one thread anyway).
    torch.set_num_threads(1)
    if not _is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: anyone who can reach this "
            "address can use the Playground and train networks on this machine.",
            file=sys.stderr,
        )
    _warm_up()
    config = uvicorn.Config(
        create_app(), host=args.host, port=args.port, log_level="warning"
    )
    server = uvicorn.Server(config)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{shown}:{args.port}/"

    def announce():
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"skdnn Playground at {url} (Ctrl-C stops it)", flush=True)
            if not args.no_browser:
                webbrowser.open(url)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    return 0

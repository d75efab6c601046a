"""A/B fit speed on one machine: skdnn before a change against skdnn after it.

Method
------
The *before* code is a git worktree of ``--before`` (a commit; by default
``HEAD``, the commit the change starts from), made under a temporary
directory and removed at the end, also when the run is interrupted or
fails. The *after* code is ``--after``: by default this checkout's working
tree, uncommitted and untracked files included; a directory is taken as a
tree as it is, anything else as a commit, checked out in a second worktree.

Each measurement is a fresh process, ``benchmarks/_ab_runner.py``, run with
``PYTHONPATH`` set to the root of the tree measured, ahead of whatever
``PYTHONPATH`` held, so that ``import skdnn`` resolves there rather than to
the editable install. The runner reports the file of every ``skdnn`` module it
loaded, and a measurement whose modules come from elsewhere stops the run.
Both sides take their workloads from the *after* tree's ``benchmarks/bench.py``
(W1-W3) and ``benchmarks/search.py`` (W4), so that they fit the same data
with the same settings; only ``skdnn`` differs.

In each process: one untimed fit, the same as the timed ones (it pays the
one-time costs: imports, the BLAS libraries' first calls at these shapes, the
allocator's pools), then ``--fits-per-process`` timed calls of ``fit(X, y)``:

- W1, W2, W3: ``DNNClassifier.fit`` on the workload's training rows, as
  ``bench.py`` makes the estimator, with the seed of the repeat;
- W4: the fit of skdnn's batched ``GridSearchCV`` over dropout, refit
  included, as ``search.py`` times it.

Repeats alternate the sides in ABBA order (before, after; after, before; ...),
every workload in each, so that a drift in machine load, or an advantage of
running first or second, hits both sides alike. Both sides get the same
environment; like ``bench.py``, this script sets no thread counts, so torch
and the BLAS libraries use their defaults (or the ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` of the calling shell, for both sides).

Output: a markdown table with the median fit time of each side over all its
timed fits, the ratio after / before and a verdict: ``faster`` below 0.97,
``same (within 5%)`` up to 1.05, ``SLOWER`` above; then the fastest and
slowest fit of each side and the median of the paired ratios (each repeat's
after against its before, measured next to each other). ``--json`` writes
every measurement, the trees' commits and source hashes, and the load
averages. The exit status is 1 when a workload is ``SLOWER``.

Usage
-----
``python benchmarks/ab.py [--before REV] [--after TREE_OR_REV] [--repeats 5]
[--fits-per-process 1] [--only W1 W2 W3 W4] [--json PATH]``

For example, the working tree against the commit it started from, or against
an older commit::

    python benchmarks/ab.py --json ab.json
    python benchmarks/ab.py --before ec39f41 --only W1 W4 --repeats 7

Run it on an otherwise idle machine: tests or builds running alongside add
noise larger than the 5% this is meant to resolve.
"""

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "_ab_runner.py"
MARKER = "AB_RESULT "
WORKLOADS = ("W1", "W2", "W3", "W4")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SIDES = ("before", "after")


def _git(*args, cwd):
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(
            f"ab.py: git {' '.join(args)} failed in {cwd}:\n{result.stderr}"
        )
    return result.stdout.strip()


def _source_hash(tree):
    """SHA-256 of the tree's skdnn/*.py, paths and contents: what is imported."""
    root = Path(tree) / "skdnn"
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _describe(tree, label):
    try:
        commit = _git("rev-parse", "HEAD", cwd=tree)
        # Untracked files count: the working tree's skdnn imports them.
        dirty = bool(_git("status", "--porcelain", "--", "skdnn", cwd=tree))
    except SystemExit:  # --after a directory that is no git checkout
        commit, dirty = "unknown", True
    return {
        "label": label,
        "path": str(tree),
        "commit": commit,
        "uncommitted_changes_in_skdnn": dirty,
        "skdnn_sha256": _source_hash(tree),
    }


class Worktrees:
    """Detached git worktrees under one temporary directory, all removed on exit."""

    def __init__(self, repo):
        self.repo = repo
        self.root = Path(tempfile.mkdtemp(prefix="skdnn-ab-"))
        self.paths = []

    def add(self, rev, name):
        commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}", cwd=self.repo)
        path = self.root / name
        # Registered before git runs: an interruption during the checkout
        # leaves a partial worktree that close() must remove too.
        self.paths.append(path)
        _git("worktree", "add", "--detach", "--quiet", str(path), commit, cwd=self.repo)
        return path

    def close(self):
        for path in self.paths:
            result = subprocess.run(
                ["git", "worktree", "remove", "--force", str(path)],
                cwd=self.repo,
                capture_output=True,
                check=False,
            )
            if result.returncode:
                print(f"ab.py: git worktree remove {path} failed", file=sys.stderr)
        # Whatever git could not remove (a partial checkout, files it does
        # not know): delete it, and drop its administrative entry.
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=self.repo, capture_output=True)


def _measure(tree, bench_dir, workload, fits, seed, scratch):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tree)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    command = [
        sys.executable,
        str(RUNNER),
        f"--workload={workload}",
        f"--tree={tree}",
        f"--bench-dir={bench_dir}",
        f"--fits={fits}",
        f"--seed={seed}",
    ]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    # cwd is a scratch directory, not a checkout: nothing there can be
    # imported by mistake. stderr goes to the terminal (warnings, tracebacks).
    result = subprocess.run(
        command, cwd=scratch, env=env, stdout=subprocess.PIPE, text=True, check=False
    )
    wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(
            f"ab.py: {workload} in {tree} failed with status {result.returncode}"
            f"\n{result.stdout}"
        )
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARKER)]
    if len(lines) != 1:
        raise SystemExit(f"ab.py: no result from the runner:\n{result.stdout}")
    record = json.loads(lines[0][len(MARKER) :])
    # The runner checks this already; checked again here, where the intended
    # tree is known for sure.
    skdnn_dir = (Path(tree) / "skdnn").resolve()
    for name, file in record["skdnn_modules"].items():
        if file is not None and not Path(file).resolve().is_relative_to(skdnn_dir):
            raise SystemExit(f"ab.py: {name} came from {file}, not from {skdnn_dir}")
    if not Path(record["skdnn_file"]).resolve().is_relative_to(skdnn_dir):
        raise SystemExit(f"ab.py: skdnn came from {record['skdnn_file']}")
    record.update(process_seconds=wall, load_average_1min_before=load)
    return record


def _verdict(ratio):
    if ratio < 0.97:
        return "faster"
    if ratio <= 1.05:
        return "same (within 5%)"
    return "SLOWER"


def _summarize(measurements, names):
    summary = {}
    for name in names:
        ours = [m for m in measurements if m["workload"] == name]
        runs = {side: [m for m in ours if m["side"] == side] for side in SIDES}
        row = {}
        for side in SIDES:
            seconds = [s for m in runs[side] for s in m["seconds"]]
            row[side] = {
                "median": statistics.median(seconds),
                "min": min(seconds),
                "max": max(seconds),
                "fits": len(seconds),
            }
        row["ratio"] = row["after"]["median"] / row["before"]["median"]
        row["verdict"] = _verdict(row["ratio"])
        # Pairs: the two sides' processes of one repeat ran next to each
        # other, under nearly the same load.
        pairs = [
            statistics.median(a["seconds"]) / statistics.median(b["seconds"])
            for b, a in zip(runs["before"], runs["after"], strict=True)
        ]
        row["paired_ratios"] = pairs
        row["paired_ratio_median"] = statistics.median(pairs)
        summary[name] = row
    return summary


def _tables(summary):
    lines = [
        "| workload | before median s | after median s | after/before | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {row['before']['median']:.3f} | {row['after']['median']:.3f}"
            f" | {row['ratio']:.3f} | {row['verdict']} |"
        )
    lines += [
        "",
        "| workload | before min s | before max s | after min s | after max s "
        "| fits per side | paired after/before, median |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in summary.items():
        b, a = row["before"], row["after"]
        lines.append(
            f"| {name} | {b['min']:.3f} | {b['max']:.3f} | {a['min']:.3f} "
            f"| {a['max']:.3f} | {b['fits']} | {row['paired_ratio_median']:.3f} |"
        )
    return "\n".join(lines)


def _tree_line(info):
    state = " + uncommitted changes" if info["uncommitted_changes_in_skdnn"] else ""
    return (
        f"{info['label']}: {info['commit'][:10]}{state} at {info['path']} "
        f"(skdnn sources sha256 {info['skdnn_sha256'][:12]})"
    )


def _cpu_name():
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", default="HEAD", help="commit of the before code (default HEAD)"
    )
    parser.add_argument(
        "--after",
        default=None,
        help="tree (a directory) or commit of the after code; default: this "
        "checkout's working tree, uncommitted changes included",
    )
    parser.add_argument("--repeats", type=int, default=5, help="processes per side")
    parser.add_argument("--fits-per-process", type=int, default=1)
    parser.add_argument("--only", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--json", default=None, help="write every measurement here")
    args = parser.parse_args()
    unknown = sorted(set(args.only) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")
    if args.repeats < 1 or args.fits_per_process < 1:
        parser.error("--repeats and --fits-per-process must be at least 1")
    return args


def _raise_exit(signum, frame):
    # SIGTERM and SIGHUP end the run through the finally blocks, as Ctrl-C
    # does, so that the worktrees are removed.
    raise SystemExit(128 + signum)


def main():
    args = _parse_args()
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    repo = Path(_git("rev-parse", "--show-toplevel", cwd=HERE))
    worktrees = Worktrees(repo)
    try:
        before = worktrees.add(args.before, "before")
        if args.after is None:
            after, after_label = repo, "after (working tree)"
        elif Path(args.after).is_dir():
            after, after_label = Path(args.after).resolve(), "after (tree)"
        else:
            after, after_label = worktrees.add(args.after, "after"), "after"
        if not (after / "skdnn" / "__init__.py").is_file():
            raise SystemExit(f"ab.py: {after} holds no skdnn package")
        bench_dir = after / "benchmarks"
        for needed in ("bench.py", "search.py"):
            if not (bench_dir / needed).is_file():
                raise SystemExit(f"ab.py: {bench_dir / needed} is missing")
        trees = {
            "before": _describe(before, f"before ({args.before})"),
            "after": _describe(after, after_label),
        }
        for info in trees.values():
            print(_tree_line(info), flush=True)
        if trees["before"]["skdnn_sha256"] == trees["after"]["skdnn_sha256"]:
            print("note: both trees have the same skdnn sources: an A/A run")
        paths = {"before": before, "after": after}
        scratch = worktrees.root
        measurements = []
        loads = [os.getloadavg()]
        for repeat in range(args.repeats):
            # ABBA: before first on even repeats, after first on odd ones.
            order = SIDES if repeat % 2 == 0 else SIDES[::-1]
            for name in args.only:
                for side in order:
                    record = _measure(
                        paths[side],
                        bench_dir,
                        name,
                        args.fits_per_process,
                        repeat * args.fits_per_process,
                        scratch,
                    )
                    record.update(repeat=repeat, side=side)
                    measurements.append(record)
                    times = ", ".join(f"{s:.3f}" for s in record["seconds"])
                    print(f"repeat {repeat} {name} {side:6s} {times} s", flush=True)
        loads.append(os.getloadavg())
        # A working tree can change under a run (an editor, a checkout): then
        # its measurements mix two versions of the code.
        for side, info in trees.items():
            info["skdnn_sha256_at_end"] = _source_hash(paths[side])
            if info["skdnn_sha256_at_end"] != info["skdnn_sha256"]:
                print(f"WARNING: {side}'s skdnn sources changed during the run")
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        worktrees.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    threads = {m["torch_threads"] for m in measurements}
    summary = _summarize(measurements, args.only)
    print()
    print(
        f"{args.repeats} processes per side and workload, "
        f"{args.fits_per_process} timed fit(s) each after one untimed; ABBA order; "
        f"torch threads {sorted(threads)}; "
        + ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_VARIABLES)
        + f"; load average {loads[0][0]:.2f} at the start, {loads[1][0]:.2f} at "
        f"the end; {_cpu_name()}, "
        f"{os.cpu_count()} cores"
    )
    print()
    print(_tables(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "arguments": vars(args),
                    "trees": trees,
                    "python": sys.executable,
                    "platform": platform.platform(),
                    "cpu_count": os.cpu_count(),
                    "environment": {v: os.environ.get(v) for v in THREAD_VARIABLES},
                    "load_averages": {"start": loads[0], "end": loads[1]},
                    "measurements": measurements,
                    "summary": summary,
                },
                f,
                indent=2,
            )
    return 1 if any(r["verdict"] == "SLOWER" for r in summary.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The worktrees are gone already (main's finally); no traceback.
        sys.exit(130)

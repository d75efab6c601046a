#!/usr/bin/env bash
# The GPU check, in one run: the tests marked `cuda`, then benchmarks/gpu_bench.py.
#
# Usage: bash benchmarks/gpu_check.sh [gpu_bench.py options, e.g. --quick --json out.json]
#
# PYTHON names the interpreter to use (one with skdnn and its test requirements
# installed). Without it, the script makes (or reuses) the virtualenv
# .venv-gpu, with the system's site-packages, so that a CUDA build of torch
# already installed there is used rather than replaced by a download; skdnn
# alone is then installed into it, or, where any requirement is missing, skdnn
# with all of them.
#
# Sized for a machine lent for a few minutes: everything, installation
# included, stops 480 s after the start (the benchmark prints each result as it
# goes, and usually needs a few minutes; the tests well under one on a GPU).
# Where torch sees no CUDA GPU the tests are skipped, the benchmark says there
# is nothing to compare, and the script exits 0: it says so, and that is no
# failure. A failing test still lets the benchmark run, so one run gives
# both; the script then exits with pytest's status.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# The whole script's budget, in seconds: bash's SECONDS counts from the start.
BUDGET_S=480

remaining() {
    # What is left of the budget, at least 30 s so that a step still starts.
    local left=$((BUDGET_S - SECONDS))
    echo $((left > 30 ? left : 30))
}

# What `pip install -e ".[tests]"` would install; when all of it imports, skdnn
# is installed without dependencies, so no CUDA build of torch is replaced.
REQUIREMENTS_IMPORT="import torch, numpy, scipy, sklearn, threadpoolctl, safetensors, \
pytest, hypothesis, pandas, matplotlib, numpydoc, dask.array, distributed, dask_ml"

if [[ -n "${PYTHON:-}" ]]; then
    PY=$PYTHON
else
    if [[ ! -x .venv-gpu/bin/python ]]; then
        echo "== making the virtualenv .venv-gpu (with the system's site-packages)"
        python3 -m venv --system-site-packages .venv-gpu
    fi
    PY=$ROOT/.venv-gpu/bin/python
    if "$PY" -c "$REQUIREMENTS_IMPORT" 2>/dev/null; then
        echo "== torch and the test requirements import: installing skdnn alone"
        # Without build isolation, which would download setuptools: the lent
        # machine may have no network. Where that install fails (an older
        # setuptools), the checkout itself is put on the path.
        if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . \
            >.venv-gpu/pip-install.log 2>&1; then
            echo "== pip could not install skdnn (.venv-gpu/pip-install.log says" \
                "why); importing it from $ROOT"
            export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
        fi
    else
        echo "== some requirements are missing: installing skdnn with them"
        "$PY" -m pip install -q -e ".[tests]"
    fi
fi

echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
    # Informative only: a machine without a GPU can still run the script.
    nvidia-smi || echo "nvidia-smi failed (exit $?)"
else
    echo "nvidia-smi: not found"
fi

echo "== torch"
"$PY" - <<'EOF'
import sys

import torch

import skdnn

print(f"python {sys.version.split()[0]}, skdnn {skdnn.__version__}")
print(f"torch {torch.__version__} (built for CUDA {torch.version.cuda})")
print(f"torch.cuda.is_available(): {torch.cuda.is_available()}")
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        print(f"cuda:{i}: {torch.cuda.get_device_name(i)}")
EOF
HAS_CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))")
if [[ $HAS_CUDA != 1 ]]; then
    echo "no CUDA GPU: the cuda tests are skipped and nothing is benchmarked"
fi

echo "== pytest -m cuda"
# Exit status 5 (no test collected) is no failure: it means there are no
# cuda tests to run. Skipped tests exit 0.
tests_rc=0
MPLBACKEND=Agg timeout "$(remaining)" "$PY" -m pytest -m cuda -q -p no:cacheprovider \
    tests/ || tests_rc=$?
if [[ $tests_rc == 5 ]]; then
    echo "pytest: no cuda tests collected"
    tests_rc=0
elif [[ $tests_rc == 124 ]]; then
    echo "pytest stopped: the ${BUDGET_S} s budget ran out"
fi

echo "== benchmarks/gpu_bench.py"
bench_rc=0
bench_s=$(remaining)
echo "(time limit ${bench_s} s: the rest of the ${BUDGET_S} s budget)"
timeout "$bench_s" "$PY" benchmarks/gpu_bench.py "$@" || bench_rc=$?
if [[ $bench_rc == 124 ]]; then
    echo "gpu_bench.py stopped after ${bench_s} s; the results above are partial"
fi

echo "== summary"
if [[ $HAS_CUDA != 1 ]]; then
    echo "no CUDA GPU on this machine: cuda tests skipped, benchmark not run"
fi
echo "pytest -m cuda: exit $tests_rc; gpu_bench.py: exit $bench_rc; ${SECONDS} s in all"
if [[ $tests_rc != 0 ]]; then
    exit "$tests_rc"
fi
exit "$bench_rc"

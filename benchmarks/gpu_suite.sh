#!/usr/bin/env bash
# Everything tilec runs on a GPU, in one call: install, GPU tests, every benchmark.
#
# Run from the repository root on the GPU machine, which has Python and torch but cannot
# download: `bash benchmarks/gpu_suite.sh`. lark comes from _carry/lark-*.whl when it is not
# installed (carry `_carry` with the call). Results JSON (and the test log) are copied into
# $OUT when it is set; PYTEST_ARGS (e.g. "-n 8" with pytest-xdist) go to pytest. Exit status:
# nonzero if the install, a test or a benchmark failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
marker="$(mktemp)"
status=0

if ! "$PY" -c "import lark" 2>/dev/null; then
    wheel="$(ls _carry/lark-*.whl 2>/dev/null | head -n 1)"
    if [ -z "$wheel" ]; then
        echo "gpu_suite: lark is not installed and no _carry/lark-*.whl was carried" >&2
        exit 1
    fi
    "$PY" -m pip install -q --no-index --no-deps "$wheel" || exit 1
fi
"$PY" -m pip install -q --no-deps --no-build-isolation -e . || exit 1
"$PY" -c "import torch, tilec; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

log="${OUT:-/tmp}/gpu_tests.log"
"$PY" -m pytest -m "gpu or torch" tests -q -rs -p no:cacheprovider ${PYTEST_ARGS:-} 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

benchlog="${OUT:-/tmp}/benchmarks.log"
: >"$benchlog"
for bench in benchmarks/*.py; do
    [ "$(basename "$bench")" = common.py ] && continue  # helpers, not a benchmark
    echo "== $bench" | tee -a "$benchlog"
    "$PY" "$bench" 2>&1 | tee -a "$benchlog"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "gpu_suite: $bench failed" | tee -a "$benchlog" >&2; status=1; }
done

if [ -n "${OUT:-}" ]; then
    find benchmarks/results -name '*.json' -newer "$marker" -exec cp {} "$OUT"/ \; 2>/dev/null
    ls -l "$OUT"
fi
rm -f "$marker"
exit $status

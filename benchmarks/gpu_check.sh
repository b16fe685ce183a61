#!/usr/bin/env bash
# Everything issue 23 measures on a GPU, in one call: install, correctness, the tests on CUDA, the benchmark, the
# profile. Results go under $OUT (default $TMPDIR/gpu_check_out): log, cuda_check.json, pytest_junit.xml,
# bench_cuda.json, bench_cuda.md, profile_cuda.txt, profile_trace.json.gz.
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh            # on the GPU machine (about 7 min on an H200)
#   OUT=/tmp/gc bash benchmarks/gpu_check.sh --smoke      # CPU, tiny sizes, a few tests: checks this script
#
# Each stage has its own time limit (seconds), so that one slow stage cannot eat the others; override with
# T_INSTALL, T_CHECK, T_PYTEST, T_BENCH, T_PROFILE (sum of the defaults: 540 s). Extra arguments per stage:
# CHECK_ARGS, BENCH_ARGS, PROFILE_ARGS (e.g. BENCH_ARGS="--sizes 272 --long-epochs 1000"), and PYTEST_FILES
# (the test files, most device-relevant first). PYTHON (default python3) is the interpreter.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-${TMPDIR:-/tmp}/gpu_check_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
TEE_PID=$!
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
S=1
[ "$SMOKE" = 1 ] && S=4  # a CPU smoke run computes on the CPU what a GPU run computes on the device: 4x the limits

T_INSTALL=${T_INSTALL:-30}
T_CHECK=${T_CHECK:-$((120 * S))}
T_PYTEST=${T_PYTEST:-170}
T_BENCH=${T_BENCH:-$((170 * S))}
T_PROFILE=${T_PROFILE:-$((50 * S))}
CHECK_ARGS=${CHECK_ARGS:-}
BENCH_ARGS=${BENCH_ARGS:-}
PROFILE_ARGS=${PROFILE_ARGS:-}
PYTEST_FILES=${PYTEST_FILES:-"tests/test_multislice_forward.py tests/test_separation.py
 tests/test_multislice_reconstruct.py tests/test_pipeline.py tests/test_mixing.py tests/test_sweep.py
 tests/test_cli_multislice.py tests/test_cli_separate.py tests/test_separation_stability.py
 tests/test_multislice_xrf.py"}
TEST_DEVICE=cuda
if [ "$SMOKE" = 1 ]; then
    CHECK_ARGS="--smoke $CHECK_ARGS"; BENCH_ARGS="--smoke $BENCH_ARGS"; PROFILE_ARGS="--smoke $PROFILE_ARGS"
    TEST_DEVICE=cpu
    PYTEST_FILES="tests/test_multislice_forward.py tests/test_sweep.py::test_settings_combine_filters_and_gammas"
fi

SUMMARY=""
START=$SECONDS
stage() {  # stage NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    echo
    echo "=== [$(date +%H:%M:%S), +$((SECONDS - START)) s] stage $name (limit ${limit} s): $*"
    local t0=$SECONDS
    timeout --signal=TERM --kill-after=15 "$limit" "$@"
    local rc=$?
    [ $rc = 124 ] && echo "=== stage $name TIMED OUT after ${limit} s"
    echo "=== stage $name: exit $rc in $((SECONDS - t0)) s"
    SUMMARY="$SUMMARY $name=rc$rc/$((SECONDS - t0))s"
    return 0
}

echo "=== gpu_check $(date), smoke=$SMOKE, OUT=$OUT, commit $(git rev-parse --short HEAD 2>/dev/null)," \
     "$(git status --short 2>/dev/null | wc -l) changed files"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv

# no network on the GPU machine: no dependencies, no build isolation, no index; a user install if the site is
# read-only; PYTHONPATH covers a failure of both (then there is no console script: cuda_check says so)
stage install "$T_INSTALL" bash -c 'for opt in "" --user; do "$0" -m pip install -q --no-deps --no-build-isolation \
    --no-index $opt -e . && exit 0; done; exit 1' "$PY"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
echo "ptycho-ddip console script: $(command -v ptycho-ddip || echo 'not on PATH (cuda_check falls back to python -c)')"
"$PY" - <<'EOF'
import os, torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available {torch.cuda.is_available()}, "
      f"devices {torch.cuda.device_count()}, cpus {os.cpu_count()}")
if torch.cuda.is_available():
    print("device 0:", torch.cuda.get_device_name(0), ", cuDNN", torch.backends.cudnn.version(),
          ", cuDNN TF32", torch.backends.cudnn.allow_tf32, ", matmul TF32", torch.backends.cuda.matmul.allow_tf32)
import ptycho_ddip
print("ptycho_ddip", getattr(ptycho_ddip, "__version__", "?"), "from", os.path.dirname(ptycho_ddip.__file__))
EOF

stage cuda_check "$T_CHECK" "$PY" benchmarks/cuda_check.py --out "$OUT" $CHECK_ARGS

# -v: one line per test, so that a stage cut by its limit still says what passed
stage pytest "$T_PYTEST" env PTYCHO_DDIP_TEST_DEVICE=$TEST_DEVICE "$PY" -m pytest -v -p no:cacheprovider -rfE \
    --tb=short --durations=25 --timeout=150 --junitxml="$OUT/pytest_junit.xml" $PYTEST_FILES

stage bench "$T_BENCH" "$PY" benchmarks/bench_cuda.py --out "$OUT" $BENCH_ARGS

stage profile "$T_PROFILE" "$PY" benchmarks/profile_cuda.py --out "$OUT" $PROFILE_ARGS

echo
echo "=== gpu_check done in $((SECONDS - START)) s:$SUMMARY"
grep -h "^FAIL\|^GOAL" "$OUT/log" | sort | uniq -c | sort -rn | head -40 || true
ls -la "$OUT"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null || sleep 1  # let tee finish the log before the results are collected

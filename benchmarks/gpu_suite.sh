#!/usr/bin/env bash
# One-command GPU suite (issue 4): build the extension for the local GPU, run the CUDA/Triton tests,
# then the GPU benchmarks; logs, CSV and PNGs go to OUTDIR.
#
#   bash benchmarks/gpu_suite.sh [--dry-run] [--stages build,test,bench] OUTDIR
#
# On a machine with one NVIDIA GPU (made for an H100/H200 and the packages such a machine has: torch,
# triton, pytest, numpy, matplotlib; nothing is downloaded). Exits 2 at once, loudly, when there is
# no usable GPU (unless --dry-run, which only prints the commands it would run and writes nothing).
#
# Stages (all by default, in this order; each one logged, timed and bounded by `timeout`):
#   build  FORCE_CUDA=1 CUDA_HOME=... TORCH_CUDA_ARCH_LIST=<the GPU's capability, e.g. 9.0>
#          MAX_JOBS=<cores> python3 setup.py build_ext --inplace  (falls back to
#          pip install --no-build-isolation --no-deps -e . when that fails); then
#          `python3 -m inpaint_fast info`. setup.py lets torch's BuildExtension fall back to its
#          slow non-ninja backend when ninja is missing.
#   test   the GPU tests: pytest -k 'cuda or triton' -m 'not build' (the tests that take the
#          `gpu_backend` fixture carry the parameter id 'cuda' or 'triton'; test_benchmarks.py is left
#          out). Fails loudly when nothing is selected.
#   bench  first benchmarks/bench_time_split.py (issue 14: per case the wall time, the summed kernel
#          time and the CUDA-graph replay time of eager, torch.compile and our backends; rec, TV and
#          frequency at 8x3x512x512 and 16x3x1024x1024, style distance at 8x256x128x128; fp32, then
#          bf16), then benchmarks/bench_*.py --device cuda at issue 4's shapes: reconstruction_loss and
#          masked_tv at 16x3x1024x1024, style_distance (and gram) at 8x256x128x128, fp32 and bf16;
#          frequency_loss (spectral_l1) at 16x3x512x512 fp32. Most important first: a run that would
#          start with under 45 s of the budget left is skipped (and reported).
#
# OUTDIR gets at most 7 plain files, no folders (the device tool returns at most 8 files, 16 MiB each):
#   suite.log      everything printed (GPU, versions, info, test summary, benchmark tables, summary)
#   build.log      the compiler's output
#   pytest.xml     JUnit XML of the GPU tests
#   <gpu>.csv      benchmarks/results/<gpu>.csv after the run (committed rows + this run's), to be
#                  copied to benchmarks/results/
#   plots.tar.gz   the PNGs this run wrote (benchmarks/plots/*.png), to be unpacked in benchmarks/plots/
#   report.md      `python benchmarks/report.py --print` over the results (the README's table)
#   summary.txt    one line per stage and benchmark: ok / FAILED / skipped, seconds
#
# Environment: PYTHON (default python3), SUITE_BUDGET_S (default 470: the whole suite in one device call
# of at most 8 minutes, build included; the lent machines stop a command at 600), BENCH_REPEATS (default 20), BENCH_WARMUP (default 5),
# SUITE_TEST_WORKERS (pytest-xdist workers for the tests, default min(8, cores/2); 0 or 1: none),
# INPAINT_FAST_GIT_REV (the revision written to the CSV; a copied tree may have no .git),
# TORCH_CUDA_ARCH_LIST, CUDA_HOME, MAX_JOBS (override what is detected).
# Exit status: 0 all stages ok; 1 a stage or benchmark failed or was skipped; 2 usage / no GPU.

set -uo pipefail

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

DRY_RUN=0
STAGES="build,test,bench"
OUTDIR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --stages) shift; STAGES="${1:-}" ;;
        --stages=*) STAGES="${1#--stages=}" ;;
        -h|--help) usage ;;
        -*) echo "gpu_suite.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$OUTDIR" ] || { echo "gpu_suite.sh: one OUTDIR only" >&2; usage; }; OUTDIR="$1" ;;
    esac
    shift
done
[ -n "$OUTDIR" ] || { echo "gpu_suite.sh: OUTDIR is required" >&2; usage; }
for s in ${STAGES//,/ }; do
    case "$s" in build|test|bench) ;; *) echo "gpu_suite.sh: unknown stage '$s' (build, test, bench)" >&2; exit 2 ;; esac
done
has_stage() { case ",$STAGES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PY="${PYTHON:-python3}"
BUDGET="${SUITE_BUDGET_S:-470}"
REPEATS="${BENCH_REPEATS:-20}"
WARMUP="${BENCH_WARMUP:-5}"
T0=$(date +%s)
export PYTHONUNBUFFERED=1
unset TRITON_INTERPRET  # the Triton kernels run compiled on the GPU here

banner() { local bar; bar=$(printf '!%.0s' $(seq 1 100)); printf '\n%s\n!!! %s\n%s\n\n' "$bar" "$*" "$bar" >&2; }
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(elapsed) )); }
show() { printf '+'; printf ' %q' "$@"; printf '\n'; }
# run CMD...: print it; run it unless --dry-run.
run() { show "$@"; [ "$DRY_RUN" = 1 ] && return 0; "$@"; }
# bounded SECONDS CMD...: run with a time limit (killed 10 s after TERM); 124 when it ran out of time.
bounded() { local s="$1"; shift; if [ "$DRY_RUN" = 1 ]; then show "$@"; return 0; fi
            show "$@"; timeout -k 10 "$s" "$@"; }

SUMMARY=()
FAILED=0
record() {  # record NAME STATUS SECONDS [DETAIL]
    local st="$2"; [ "$DRY_RUN" = 1 ] && st="dry-run"
    SUMMARY+=("$(printf '%-44s %-8s %5ss %s' "$1" "$st" "$3" "${4:-}")")
    [ "$st" = ok ] || [ "$st" = dry-run ] || FAILED=1
    [ "$st" = skipped ] && SKIPPED=1
    return 0
}
SKIPPED=0

if [ "$DRY_RUN" = 0 ]; then
    mkdir -p "$OUTDIR" || exit 2
    OUTDIR="$(cd "$OUTDIR" && pwd)"
    exec > >(tee -a "$OUTDIR/suite.log") 2>&1
    TEE_PID=$!
    trap 'exec >&- 2>&-; wait "$TEE_PID" 2>/dev/null' EXIT  # the log is complete when the suite returns
fi
echo "gpu_suite.sh: $(date -u +%FT%TZ), repo $ROOT, OUTDIR $OUTDIR, stages $STAGES, budget ${BUDGET}s$([ "$DRY_RUN" = 1 ] && echo ', DRY RUN')"

# ------------------------------------------------------------------------------------------ the GPU
if [ "$DRY_RUN" = 1 ]; then
    show nvidia-smi
    show "$PY" -c "import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name())"
    ARCH="${TORCH_CUDA_ARCH_LIST:-<major.minor of torch.cuda.get_device_capability()>}"
    GPU_TAG="<gpu name>"
else
    nvidia-smi || banner "nvidia-smi failed or is missing"
    if ! GPU_INFO=$("$PY" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: torch.cuda.is_available() is False")
sys.path.insert(0, "benchmarks")
import records
major, minor = torch.cuda.get_device_capability()
name = torch.cuda.get_device_name()
print(f"{major}.{minor}")
print(records.sanitize(name))
print(f"{name}, capability {major}.{minor}, {torch.cuda.get_device_properties(0).multi_processor_count} SMs; "
      f"torch {torch.__version__}, CUDA {torch.version.cuda}", file=sys.stderr)
EOF
    ); then
        banner "NO GPU: this suite needs a CUDA GPU that torch can use (see above); nothing was run"
        exit 2
    fi
    ARCH="${TORCH_CUDA_ARCH_LIST:-$(echo "$GPU_INFO" | sed -n 1p)}"
    GPU_TAG="$(echo "$GPU_INFO" | sed -n 2p)"
    "$PY" -c "import triton; print('triton', triton.__version__)" || banner "triton does not import: the triton backend will be skipped"
    echo "python: $(command -v "$PY"), nproc $(nproc), CUDA_HOME ${CUDA_HOME:-unset}, nvcc $(command -v nvcc || echo missing)"
fi

if [ -z "${CUDA_HOME:-}" ]; then
    if [ -d /usr/local/cuda ]; then CUDA_HOME=/usr/local/cuda
    elif command -v nvcc >/dev/null; then CUDA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
    fi
fi
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export PATH="$CUDA_HOME/bin:$PATH"
JOBS="${MAX_JOBS:-$(nproc 2>/dev/null || echo 4)}"

# ------------------------------------------------------------------------------------------ build
if has_stage build; then
    echo; echo "=== build ($(elapsed)s) ==="
    t=$(date +%s)
    BUILD_LOG="${OUTDIR}/build.log"
    build_cmd=(env FORCE_CUDA=1 "CUDA_HOME=$CUDA_HOME" "TORCH_CUDA_ARCH_LIST=$ARCH" "MAX_JOBS=$JOBS"
               "$PY" setup.py build_ext --inplace)
    pip_cmd=(env FORCE_CUDA=1 "CUDA_HOME=$CUDA_HOME" "TORCH_CUDA_ARCH_LIST=$ARCH" "MAX_JOBS=$JOBS"
             "$PY" -m pip install --no-build-isolation --no-deps --no-index -e .)
    cap=$(( $(left) - 200 )); [ "$cap" -gt 300 ] && cap=300; [ "$cap" -lt 60 ] && cap=60
    if [ "$DRY_RUN" = 1 ]; then
        show "${build_cmd[@]}"; echo "  (on failure) $(show "${pip_cmd[@]}")"
        status=ok
    else
        show "${build_cmd[@]}"
        echo "build log: $BUILD_LOG (limit ${cap}s)"
        if bounded "$cap" "${build_cmd[@]}" >"$BUILD_LOG" 2>&1; then
            status=ok
        else
            rc=$?
            tail -n 40 "$BUILD_LOG"
            banner "setup.py build_ext --inplace failed (exit $rc); trying pip install --no-build-isolation -e ."
            cap=$(( $(left) - 200 )); [ "$cap" -lt 60 ] && cap=60
            if bounded "$cap" "${pip_cmd[@]}" >>"$BUILD_LOG" 2>&1; then status=ok
            else tail -n 40 "$BUILD_LOG"; banner "the build FAILED (both ways): the CUDA backend cannot be tested"; status=FAILED
            fi
        fi
        grep -iE "warning|error" "$BUILD_LOG" | grep -v "^ninja: warning" | head -n 30
    fi
    run "$PY" -c "import inpaint_fast.ops.library as e, sys; print('extension:', e.load_error() or 'loaded', '| CUDA kernels:', e.has_cuda_kernels()); sys.exit(e.load_error() is not None)" \
        || { banner "the compiled extension does not load"; status=FAILED; }
    record build "$status" $(( $(date +%s) - t )) "TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=$JOBS"
fi

echo; echo "=== python -m inpaint_fast info ==="
run "$PY" -m inpaint_fast info || banner "python -m inpaint_fast info failed"

# ------------------------------------------------------------------------------------------ tests
if has_stage test; then
    echo; echo "=== GPU tests ($(elapsed)s) ==="
    t=$(date +%s)
    sel=(-k "cuda or triton" -m "not build" --ignore=tests/test_benchmarks.py -p no:cacheprovider)
    if [ "$DRY_RUN" = 0 ]; then
        n=$("$PY" -m pytest -q --collect-only "${sel[@]}" 2>/dev/null | grep -c "::")
        echo "selected: $n GPU tests"
    else
        n=1
    fi
    cap=$(( $(left) - 240 )); [ "$cap" -gt 360 ] && cap=360; [ "$cap" -lt 90 ] && cap=90
    extra=()
    if [ "$DRY_RUN" = 0 ]; then
        help=$("$PY" -m pytest --help 2>/dev/null)
        # a graceful end (reports and JUnit XML written) before the hard `timeout` below
        grep -q -- "--session-timeout" <<<"$help" && extra+=(--session-timeout=$(( cap - 20 )))
        grep -q -- "--timeout=" <<<"$help" && extra+=(--timeout=300)
        workers="${SUITE_TEST_WORKERS:-$(( $(nproc) / 2 > 8 ? 8 : $(nproc) / 2 ))}"
        [ "$workers" -gt 1 ] && grep -q -- "--numprocesses" <<<"$help" && extra+=(-n "$workers")
    fi
    if [ "$n" = 0 ]; then
        banner "no GPU test selected by -k 'cuda or triton': nothing tested"
        record tests FAILED $(( $(date +%s) - t )) "0 selected"
    elif bounded "$cap" "$PY" -m pytest -q -rfEs "${sel[@]}" "${extra[@]}" --durations=15 \
            --junitxml="$OUTDIR/pytest.xml" tests; then
        record tests ok $(( $(date +%s) - t )) "$n selected"
    else
        rc=$?
        [ "$rc" = 124 ] && banner "the GPU tests ran out of time (${cap}s)" || banner "GPU tests FAILED (pytest exit $rc)"
        record tests FAILED $(( $(date +%s) - t )) "$n selected, exit $rc"
    fi
fi

# ------------------------------------------------------------------------------------------ benchmarks
if has_stage bench; then
    echo; echo "=== benchmarks ($(elapsed)s) ==="
    STAMP="$(mktemp)"; touch "$STAMP"
    common=(--device cuda --repeats "$REPEATS" --warmup "$WARMUP")
    benches=(  # most important first (issue 14's split, issue 4's targets), the rest after
        "bench_time_split.py --dtype float32"
        "bench_time_split.py --dtype bfloat16"
        "bench_masked_error.py --dtype float32"
        "bench_masked_tv.py --dtype float32"
        "bench_style_distance.py --dtype float32"
        "bench_masked_error.py --dtype bfloat16"
        "bench_masked_tv.py --dtype bfloat16"
        "bench_style_distance.py --dtype bfloat16"
        "bench_spectral_l1.py --dtype float32"
    )
    for b in "${benches[@]}"; do
        read -r -a argv <<<"$b"
        remaining=$(( $(left) - 15 ))
        if [ "$DRY_RUN" = 0 ] && [ "$remaining" -lt 45 ]; then
            echo "skipped (budget): $b"
            record "$b" skipped 0 "budget of ${BUDGET}s spent"
            continue
        fi
        echo; echo "--- $b ($(elapsed)s, ${remaining}s left) ---"
        t=$(date +%s)
        bounded "$remaining" "$PY" "benchmarks/${argv[0]}" "${argv[@]:1}" "${common[@]}"
        rc=$?
        case "$rc" in
            0) record "$b" ok $(( $(date +%s) - t )) ;;
            124|137) banner "$b ran out of time"; record "$b" FAILED $(( $(date +%s) - t )) "out of time: no rows written" ;;
            *) banner "$b FAILED (exit $rc: a mismatch vs eager, or an error; see above)"
               record "$b" FAILED $(( $(date +%s) - t )) "exit $rc" ;;
        esac
    done
    echo; echo "=== results ==="
    if [ "$DRY_RUN" = 1 ]; then
        show cp "benchmarks/results/$GPU_TAG.csv" "$OUTDIR/"
        show tar -czf "$OUTDIR/plots.tar.gz" -C benchmarks/plots "<the PNGs this run wrote>"
        show "$PY" benchmarks/report.py --print
    else
        if [ -f "benchmarks/results/$GPU_TAG.csv" ]; then
            cp "benchmarks/results/$GPU_TAG.csv" "$OUTDIR/"
        else
            banner "no CSV was written (benchmarks/results/$GPU_TAG.csv)"
        fi
        mapfile -t pngs < <(cd benchmarks/plots && find . -maxdepth 1 -name '*.png' -newer "$STAMP" -printf '%f\n' | sort)
        if [ "${#pngs[@]}" -gt 0 ]; then
            tar -czf "$OUTDIR/plots.tar.gz" -C benchmarks/plots "${pngs[@]}" && echo "plots.tar.gz: ${pngs[*]}"
        fi
        "$PY" benchmarks/report.py --print | tee "$OUTDIR/report.md"
    fi
    rm -f "$STAMP"
fi

# ------------------------------------------------------------------------------------------ summary
echo; echo "=== summary ($(elapsed)s of ${BUDGET}s) ==="
{
    printf '%s\n' "${SUMMARY[@]}"
    echo "total $(elapsed)s; $([ "$FAILED" = 0 ] && echo 'ALL OK' || echo 'SOMETHING FAILED OR WAS SKIPPED')"
    [ "$SKIPPED" = 0 ] || echo "benchmarks were skipped for time: run them in a second call, e.g." \
        "bash benchmarks/gpu_suite.sh --stages bench OUTDIR2 (the build and the inductor cache stay on a warm machine)"
} | if [ "$DRY_RUN" = 1 ]; then cat; else tee "$OUTDIR/summary.txt"; fi
[ "$DRY_RUN" = 0 ] && ls -la "$OUTDIR"
exit "$FAILED"

#!/usr/bin/env bash
# Cross-check ebatch's cost model against SCALE-Sim (cycles) and ZigZag (energy); regenerate
# docs/validation.md. Run from the repository root: `make validate` (or `bash validation/run.sh`).
#
# Each tool gets its own virtual environment (SCALE-Sim needs numpy<2), created once and reused:
#   validation/.venv-scalesim  scalesim==3.0.0, numpy<2
#   validation/.venv-zigzag    zigzag-dse==3.9.1, six (imported by zigzag but not declared)
# Delete a venv folder to rebuild it. Intermediate files go to validation/work/ (git-ignored).
# A tool that cannot be installed or run does not stop the others: its error is recorded in
# validation/work/status/<tool>.txt and shown in docs/validation.md.
#
# Environment: PYTHON (interpreter for the tool venvs, >= 3.11; default python3),
# EBATCH_PYTHON (ebatch's interpreter; default .venv/bin/python), SCALESIM_FULL_MAX_CYCLES
# (default 40000; "inf" runs SCALE-Sim's full memory simulation on every GEMM, ~6 min more),
# SCALESIM_TIMEOUT_S (default 900), ZIGZAG_TIMEOUT_S (default 1800), ZIGZAG_BUDGET_S (default 1200: no new
# ZigZag evaluation starts after it; those left are reported as skipped). Both tools cache their results in
# validation/work/, so a rerun only computes what changed (the first run takes ~15 min on 2 busy cores).
# `report.py --data tests/data` also writes the tables that tests/test_crosscheck_data.py checks in CI.
set -u
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
EBATCH_PYTHON=${EBATCH_PYTHON:-.venv/bin/python}
WORK=validation/work
mkdir -p "$WORK/status" "$WORK/logs"

# make_venv NAME PACKAGE... : create validation/.venv-NAME once and pip-install the packages into it.
make_venv() {
    local name=$1; shift
    local venv=validation/.venv-$name
    local stamp=$venv/.installed
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$*" ]; then
        echo "validate: $venv exists ($*)"
        return 0
    fi
    echo "validate: creating $venv with $*"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install -q --upgrade pip >"$WORK/logs/$name-install.log" 2>&1 || return 1
    "$venv/bin/python" -m pip install -q "$@" >>"$WORK/logs/$name-install.log" 2>&1 || return 1
    echo "$*" >"$stamp"
}

# record TOOL STATUS LOG : write the tool's status line (and the end of its log on failure).
record() {
    { echo "$2"; [ -n "${3:-}" ] && [ -f "$3" ] && grep -v '^WARNING: Location' "$3" | tail -n 15; } \
        >"$WORK/status/$1.txt"
}

# run_tool TOOL TIMEOUT_S RESULT_JSON PACKAGES -- COMMAND... : install, run, record the outcome.
run_tool() {
    local tool=$1 limit=$2 result=$3; shift 3
    local packages=()
    while [ "$1" != "--" ]; do packages+=("$1"); shift; done
    shift
    rm -f "$result"
    if ! make_venv "$tool" "${packages[@]}"; then
        record "$tool" "failed: pip install ${packages[*]} (log: $WORK/logs/$tool-install.log)" \
            "$WORK/logs/$tool-install.log"
        echo "validate: $tool could not be installed; see $WORK/status/$tool.txt" >&2
        return 0
    fi
    timeout "$limit" "$@" 2>&1 | tee "$WORK/logs/$tool-run.log" | grep --line-buffered -v ' - INFO - '
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ] && [ -f "$result" ]; then
        record "$tool" "ok"
    elif [ "$rc" -eq 124 ]; then
        record "$tool" "failed: timed out after $limit s (log: $WORK/logs/$tool-run.log)" "$WORK/logs/$tool-run.log"
    else
        record "$tool" "failed: exit status $rc (log: $WORK/logs/$tool-run.log)" "$WORK/logs/$tool-run.log"
    fi
}

"$EBATCH_PYTHON" validation/prepare.py --work "$WORK" || exit 1

run_tool scalesim "${SCALESIM_TIMEOUT_S:-900}" "$WORK/scalesim_cycles.json" "numpy<2" "scalesim==3.0.0" -- \
    validation/.venv-scalesim/bin/python validation/scalesim_run.py --work "$WORK" \
    --full-max-cycles "${SCALESIM_FULL_MAX_CYCLES:-40000}"

run_tool zigzag "${ZIGZAG_TIMEOUT_S:-1800}" "$WORK/zigzag_energy.json" "zigzag-dse==3.9.1" "six" -- \
    validation/.venv-zigzag/bin/python validation/zigzag_run.py --work "$WORK" --budget-s "${ZIGZAG_BUDGET_S:-1200}"

# tool versions, for the report
{
    echo "{"
    for pair in "scalesim:scalesim" "zigzag:zigzag-dse" "zigzag:numpy" "scalesim:numpy"; do
        venv=validation/.venv-${pair%%:*}; pkg=${pair#*:}
        ver=$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$pkg'))" 2>/dev/null || echo "?")
        echo "  \"$pkg (.venv-${pair%%:*})\": \"$ver\","
    done
    echo "  \"python\": \"$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')\""
    echo "}"
} >"$WORK/versions.json"

"$EBATCH_PYTHON" validation/report.py --work "$WORK" --out docs/validation.md --data tests/data

#!/usr/bin/env bash
# Run the test suite on every Python tasktypes supports (3.10 to 3.13).
#
# For each version, the newest pyenv interpreter of it gets a fresh venv in
# /tmp with the checkout installed editable (`pip install -e ".[test]"`), and
# runs `pytest -m "not apache and not browser and not once"` there: those
# run once, elsewhere (.ci/run). A missing interpreter is an error, not a skip; so
# is a skipped test under CI (tests/conftest.py turns skips into failures),
# and every failure is reported (no -x).
#
# The venvs are set up one after the other (each `pip install -e` writes the
# checkout's egg-info) and the suites run PYTHONS_JOBS at a time (default 2;
# .ci/run counts its once part as one while it runs: PYTHONS_BUSY_UNTIL). A
# suite mostly waits on its servers and tasks (about a third of a core on
# average), so two share 2 cores and each takes little longer than alone;
# with three at once, tests that time what they check (a time limit, a
# worker's grace) failed on a busy machine. Each suite starts its own Redis
# and servers on free ports and keeps its temporary files in its own
# --basetemp, so the runs share nothing. Each suite's output goes to its
# log, printed whole, in version order, once all have ended (the path is
# printed when it starts, for `tail -f`).
#
# Prints each version's log, one line per version, then, last, "N passed,
# M failed" summed over the versions (a version that could not be set up
# counts as 1 failed). Exits non-zero if any version failed.
set -u

VERSIONS="3.10 3.11 3.12 3.13"
JOBS=${PYTHONS_JOBS:-2}
CHECKOUT=$(cd "$(dirname "$0")/.." && pwd)
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
WORK=$(mktemp -d /tmp/tasktypes-pythons.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The newest pyenv interpreter of version $1 (3.12 -> .../3.12.1/bin/python3).
find_python() {
    local found
    found=$(ls -d "$PYENV_ROOT"/versions/"$1".*/bin/python3 2>/dev/null | sort -V | tail -n 1)
    [ -n "$found" ] && [ -x "$found" ] && echo "$found"
}

missing=""
for v in $VERSIONS; do
    find_python "$v" >/dev/null || missing="$missing $v"
done
if [ -n "$missing" ]; then
    echo "pythons.sh: no Python$missing under $PYENV_ROOT/versions (install with: pyenv install <version>)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
command -v redis-server >/dev/null || echo "pythons.sh: warning: redis-server is not on PATH; the Redis tests need it" >&2

total_passed=0
total_failed=0
summary=""
status=0
cd "$CHECKOUT" || exit 1

# One suite: its output to $WORK/pytest-$v.log, its exit status to .rc.
run_suite() {
    local v=$1 started=$(date +%s) rc
    "$WORK/py$v/bin/python" -m pytest -q -rfEs -p no:cacheprovider --basetemp="$WORK/tmp-$v" \
        -m "not apache and not browser and not once" tests >"$WORK/pytest-$v.log" 2>&1
    rc=$?
    echo "$rc" >"$WORK/pytest-$v.rc"
    echo "=== Python $v: pytest exit $rc after $(( $(date +%s) - started )) s"
}

# Slots taken: the suites running, and one more while PYTHONS_BUSY_UNTIL
# names a file that does not exist yet (.ci/run: its once part runs).
busy() {
    local n
    n=$(jobs -rp | wc -l)
    if [ -n "${PYTHONS_BUSY_UNTIL:-}" ] && [ ! -e "$PYTHONS_BUSY_UNTIL" ]; then
        n=$((n + 1))
    fi
    echo "$n"
}

# Each venv set up in turn (not two at once: `pip install -e` writes the
# checkout's egg-info), while the suites of those already set up run, JOBS
# at a time.
ready=""
for v in $VERSIONS; do
    python=$(find_python "$v")
    venv="$WORK/py$v"
    echo "=== Python $v ($python): setting up $venv"
    if ! "$python" -m venv "$venv" \
        || ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"; then
        summary="$summary
  Python $v: FAILED to set up the venv"
        total_failed=$((total_failed + 1))
        status=1
        continue
    fi
    ready="$ready $v"
    while [ "$(busy)" -ge "$JOBS" ]; do
        sleep 1
    done
    echo "=== Python $v: running the suite (log: $WORK/pytest-$v.log)"
    run_suite "$v" &
done
wait

for v in $ready; do
    log="$WORK/pytest-$v.log"
    rc=$(cat "$WORK/pytest-$v.rc" 2>/dev/null || echo 1)
    echo "=== Python $v ($(find_python "$v"))"
    cat "$log"
    # pytest -q ends with e.g. "2 failed, 40 passed, 3 skipped in 9.1s".
    last=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|errors|skipped|deselected|xfailed|xpassed)|no tests ran' "$log" | tail -n 1)
    passed=$(echo "$last" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
    failed=$(echo "$last" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
    errors=$(echo "$last" | grep -oE '[0-9]+ errors?' | grep -oE '[0-9]+')
    skipped=$(echo "$last" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+')
    passed=${passed:-0}
    failed=$(( ${failed:-0} + ${errors:-0} + ${skipped:-0} ))
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1  # pytest stopped without saying what failed (crash, exit 5: no tests)
    fi
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (pytest exit $rc)"; status=1; fi
    summary="$summary
  Python $v ($("$WORK/py$v/bin/python" -c 'import platform; print(platform.python_version())')): $result - ${last:-no pytest summary}"
done

echo "=== Summary$summary"
echo "$total_passed passed, $total_failed failed"
exit $status

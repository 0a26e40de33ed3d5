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
# Prints one line per version, then, last, "N passed, M failed" summed over
# the versions (a version that could not be set up counts as 1 failed).
# Exits non-zero if any version failed.
set -u

VERSIONS="3.10 3.11 3.12 3.13"
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
for v in $VERSIONS; do
    python=$(find_python "$v")
    venv="$WORK/py$v"
    log="$WORK/pytest-$v.log"
    echo "=== Python $v ($python)"
    if ! "$python" -m venv "$venv" \
        || ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"; then
        summary="$summary
  Python $v: FAILED to set up the venv"
        total_failed=$((total_failed + 1))
        status=1
        continue
    fi
    "$venv/bin/python" -m pytest -q -rfEs -m "not apache and not browser and not once" tests 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
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
  Python $v ($("$venv/bin/python" -c 'import platform; print(platform.python_version())')): $result - ${last:-no pytest summary}"
done

echo "=== Summary$summary"
echo "$total_passed passed, $total_failed failed"
exit $status

#!/usr/bin/env bash
# Installs what tests/test_apache.py runs against: Debian's Apache, and a
# Python venv with mod_wsgi and tasktypes that Apache's www-data user can read
# (and runs the worker service of apache/tasktypes-worker.service from).
#
#   sudo bash .ci/install-apache.sh        # idempotent: a second run is quick
#
# Why it looks like this:
# - Apache refuses to run its workers as root, so they run as www-data, and
#   www-data must be able to read the Python it embeds. A Python under /root
#   (pyenv) is unreadable to it; Debian's /usr/bin/python3 is not, so the venv
#   is made from that, under /opt, with umask 022.
# - mod_wsgi is compiled here against Debian's apache2-dev (apxs) and that
#   venv's Python; --no-cache-dir keeps pip from reusing a wheel built for
#   another interpreter or another Apache.
# - tasktypes is installed NON-editable: the venv then holds copies of the
#   package and its dependencies and never points back into this checkout,
#   which may sit where www-data cannot go (a CI clone under /root). The
#   tests copy the checkout's wsgi.py, tasktypes/, service/ and apache/ into
#   their own world-readable server root, so Apache always serves the code
#   under test, and nothing outside /opt/tasktypes-apache is chmod-ed.
set -euo pipefail
umask 022

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/tasktypes-apache
VENV="$PREFIX/venv"
PYTHON=/usr/bin/python3

export DEBIAN_FRONTEND=noninteractive
# systemd: for systemd-analyze, which checks apache/tasktypes-worker.service
# (the tests need no running systemd).
packages=(apache2 apache2-dev python3-venv python3-dev gcc systemd)
installed() {
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}\n' "$@" 2>/dev/null | grep -c '^ii')" -eq "$#" ]
}
if installed "${packages[@]}"; then
    echo "install-apache: ${packages[*]} already installed"
else
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
# Debian starts the packaged apache2 service on port 80 where an init system
# runs; the tests start their own servers and need nothing from it.

# A venv made by another Python (or a broken one) is made anew.
if [ -x "$VENV/bin/python" ] \
   && [ "$("$VENV/bin/python" -c 'import sys; print(sys.base_prefix)' 2>/dev/null)" \
        = "$("$PYTHON" -c 'import sys; print(sys.base_prefix)')" ]; then
    echo "install-apache: venv $VENV exists"
else
    rm -rf "$VENV"
    mkdir -p "$PREFIX"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --no-cache-dir --upgrade pip
"$VENV/bin/python" -m pip install -q --no-cache-dir mod_wsgi
# The checkout's current code even when the version number has not changed,
# then whatever its pyproject.toml asks for.
"$VENV/bin/python" -m pip install -q --no-cache-dir --force-reinstall --no-deps "$CHECKOUT"
"$VENV/bin/python" -m pip install -q --no-cache-dir "$CHECKOUT"
chmod -R go+rX "$PREFIX"

# Fail here, not in a test, if www-data cannot use what was installed.
if id www-data >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    runuser -u www-data -- "$VENV/bin/python" -c 'import mod_wsgi, spyne, lxml, redis'
    # What apache/tasktypes-worker.service runs, as its user.
    runuser -u www-data -- "$VENV/bin/tasktypes" worker --help >/dev/null
fi

echo "install-apache: $("$VENV/bin/mod_wsgi-express" module-config | grep LoadModule)"

#!/usr/bin/env bash
# Installs the third-party SOAP clients that tests/test_interop.py runs
# against the service: PHP's SoapClient (php-cli, php-soap), JAX-WS's
# wsimport (jaxws, with a Java runtime) and node-soap (npm "soap", into
# tests/interop/node_modules from the committed package-lock.json).
#
#   sudo bash .ci/install-interop.sh       # idempotent: a second run is quick
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

packages=(php-cli php-soap jaxws)
# Node.js: any that runs node-soap 1.6 (14.17+); Debian 12's nodejs and npm
# packages are enough where none is installed.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}\n' "$@" 2>/dev/null | grep -c '^ii')" -eq "$#" ]
}
if installed "${packages[@]}"; then
    echo "install-interop: ${packages[*]} already installed"
else
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

# npm ci installs exactly the lock file's versions, and does nothing new
# when they are already there.
lock=tests/interop/package-lock.json
stamp=tests/interop/node_modules/.package-lock.json
if [ -f "$stamp" ] && [ -d tests/interop/node_modules/soap ] && [ "$stamp" -nt "$lock" ]; then
    echo "install-interop: node-soap already installed"
else
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi

php -m | grep -qx soap || { echo "install-interop: PHP has no soap extension" >&2; exit 1; }
command -v wsimport >/dev/null || { echo "install-interop: no wsimport" >&2; exit 1; }
echo "install-interop: php $(php -r 'echo PHP_VERSION;'), node $(node --version)," \
     "node-soap $(node -p 'require("./tests/interop/node_modules/soap/package.json").version')"

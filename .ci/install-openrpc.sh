#!/usr/bin/env bash
# Installs the third-party OpenRPC tools that tests/test_openrpc.py checks our
# document with: the npm packages @open-rpc/meta-schema (the specification's
# meta-schema) and @open-rpc/schema-utils-js (validateOpenRPCDocument,
# parseOpenRPCDocument, MethodCallValidator), run with Node.js.
#
#   bash .ci/install-openrpc.sh          # idempotent: a second run is quick
#
# They go to /opt/tasktypes-openrpc (or $OPENRPC_TOOLS), outside the
# checkout, so that every checkout and worktree on the machine shares one
# install; the versions are pinned by .ci/openrpc/package.json and its lock.
set -euo pipefail
umask 022

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${OPENRPC_TOOLS:-/opt/tasktypes-openrpc}"
export DEBIAN_FRONTEND=noninteractive

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends nodejs npm
fi

mkdir -p "$PREFIX"
if cmp -s "$CHECKOUT/.ci/openrpc/package-lock.json" "$PREFIX/package-lock.json" \
        && [ -d "$PREFIX/node_modules/@open-rpc/schema-utils-js" ] \
        && [ -d "$PREFIX/node_modules/@open-rpc/meta-schema" ]; then
    echo "install-openrpc: already installed in $PREFIX"
    exit 0
fi
cp "$CHECKOUT/.ci/openrpc/package.json" "$CHECKOUT/.ci/openrpc/package-lock.json" "$PREFIX/"
(cd "$PREFIX" && npm ci --no-audit --no-fund --loglevel=error)
echo "install-openrpc: installed in $PREFIX"

#!/usr/bin/env bash
# Debian's chromium and its chromedriver, for the browser tests (Selenium
# drives /usr/bin/chromedriver; nothing downloads a browser of its own).
# Idempotent: does nothing when both are there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core
fi
chromium --version
chromedriver --version

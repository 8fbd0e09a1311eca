#!/usr/bin/env bash
# Run the published JavaScript SDK (@odysseyml/odyssey) in headless Chromium against
# a LocalOdyssey and print a PASS/FAIL table. Exit status: 0 all passed, 1 a step
# failed, 2 the harness failed. Bounded: the whole run stops after MAX_SECONDS.
#
#   bash interop/js_sdk/run.sh [driver options, e.g. --only connect,startStream]
#
# PYTHON   a Python with odyssey_sync installed (default: python3)
# CHROMIUM the browser binary (default: /usr/bin/chromium)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
PYTHON="${PYTHON:-python3}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
MAX_SECONDS="${MAX_SECONDS:-240}"

command -v node >/dev/null || { echo "node (>= 18) is required" >&2; exit 2; }
[ -x "$CHROMIUM" ] || { echo "no Chromium at $CHROMIUM (Debian: apt-get install -y chromium)" >&2; exit 2; }
"$PYTHON" -c "import odyssey_sync.local" 2>/dev/null || { echo "$PYTHON cannot import odyssey_sync (pip install -e .)" >&2; exit 2; }
if [ ! -d node_modules/@odysseyml/odyssey ] || [ ! -d node_modules/puppeteer-core ] || [ ! -d node_modules/esbuild ]; then
  # The registry comes from npm's own configuration; puppeteer-core downloads no browser.
  timeout 300 npm install --no-audit --no-fund --loglevel=error
fi
exec timeout --kill-after=10 "$((MAX_SECONDS + 30))" node driver.mjs --python "$PYTHON" --chromium "$CHROMIUM" --max-seconds "$MAX_SECONDS" "$@"

#!/usr/bin/env bash
# CI: the real-browser test of `fisher-flow explore` (headless Debian chromium over WebDriver).
# The default `cargo test` needs no system packages; this script installs the browser and runs
# the ignored test. It rewrites assets/explore.png (the README's screenshot).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

echo "== explore: the page in headless chromium (WebDriver)"

if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
cargo test --test explore_browser -- --ignored

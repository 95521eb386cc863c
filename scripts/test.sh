#!/usr/bin/env bash
# Tessera's test command (README; CI's .ci/run calls exactly this).
# Fetches the real models first (the encoder parity test needs all-MiniLM-L6-v2), then
# runs every test of the workspace, benches' smoke checks and doc examples included,
# under the `ci` profile (optimises only the numeric crates; ~3 minutes cold), then the
# crash test of the live index (scripts/crash-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh
# The browser test (tests/browser.rs) drives Debian's Chromium through chromedriver;
# install both the way a user would where they are missing.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium chromium-driver
fi
cargo test --profile ci --workspace --all-targets "$@"
cargo test --profile ci --workspace --doc
# The live index killed with SIGKILL at random moments (20 per command) must always
# reopen as one of its commits.
BIN=target/ci/tessera scripts/crash-test.sh 20

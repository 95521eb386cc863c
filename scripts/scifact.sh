#!/usr/bin/env bash
# Tessera's main job on its embedded default: fetch all-MiniLM-L6-v2, build the release
# binary, index the shipped SciFact corpus (cached after the first run), evaluate the
# test split with exhaustive exact MaxSim and print the table.
# Extra arguments go to `tessera eval` (for example --json, --threads 1, --rebuild).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh
cargo build --release
exec target/release/tessera eval datasets/scifact --split test "$@"

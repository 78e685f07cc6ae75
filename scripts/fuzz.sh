#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 10s), one after another, and exits non-zero on the
# first failure. A failing input is written by `go test` to PKG/testdata/fuzz/FUZZNAME/; commit it
# (with the fix) so every later `go test` replays it.
#
#   scripts/fuzz.sh          # 10s each
#   scripts/fuzz.sh 60s      # a minute each
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
go=${GO:-go}
targets=(
  "./job FuzzDecodeValidate"
  "./ffmpeg FuzzParseProgress"
  "./ffmpeg FuzzParseProbe"
)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== $name ($pkg, $fuzztime)"
  if ! "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
    echo "fuzz: $name failed; the failing input is under $pkg/testdata/fuzz/$name/" >&2
    exit 1
  fi
done
echo "fuzz: all targets passed ($fuzztime each)"

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
corpus() { ls "$1" 2>/dev/null | sort; }
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== $name ($pkg, $fuzztime)"
  dir="$pkg/testdata/fuzz/$name"
  before=$(corpus "$dir")
  log=$(mktemp)
  if ! "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
    # Go's fuzz coordinator can fail a run whose -fuzztime ran out while a worker was mid-call,
    # with "context deadline exceeded" and no input written (go.dev/issue/75804, fixed in Go
    # 1.27). Only a failure that wrote a reproducer is one of ours.
    if [ "$(corpus "$dir")" = "$before" ] && grep -q "context deadline exceeded" "$log"; then
      echo "fuzz: $name: the fuzz coordinator's deadline race (go.dev/issue/75804), no failing input: not a failure" >&2
      rm -f "$log"
      continue
    fi
    rm -f "$log"
    echo "fuzz: $name failed; the failing input is under $dir/" >&2
    exit 1
  fi
  rm -f "$log"
done
echo "fuzz: all targets passed ($fuzztime each)"

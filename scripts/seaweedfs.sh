#!/usr/bin/env bash
# seaweedfs.sh builds the SeaweedFS `weed` binary once into a cache directory and prints its path.
# The storage package's S3 tests run it as a real S3-compatible server; they skip without it.
#
#   WEED_OUT   where to put the binary (default ${TRANSCODER_CACHE:-$HOME/.cache/transcoder}/bin/weed)
#
# `go install` refuses the module (it has replace directives), so the module source is downloaded
# with `go mod download`, copied to a writable temporary directory and built there (~4 minutes).
set -euo pipefail

SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
CACHE=${TRANSCODER_CACHE:-$HOME/.cache/transcoder}
OUT=${WEED_OUT:-$CACHE/bin/weed}
GO=${GO:-go}

if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/seaweedfs-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# Outside any module, so that nothing touches this repository's go.mod or go.sum.
cd "$work"
dir=$(GO111MODULE=on "$GO" mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "seaweedfs.sh: go mod download gave no module directory" >&2
  exit 1
fi
cp -r "$dir/." "$work/src"
chmod -R u+w "$work/src"
mkdir -p "$(dirname "$OUT")"
echo "seaweedfs.sh: building weed $SEAWEEDFS_VERSION (takes a few minutes)" >&2
(cd "$work/src" && GOFLAGS=-buildvcs=false "$GO" build -o "$OUT.tmp" ./weed)
mv "$OUT.tmp" "$OUT"
echo "$OUT"

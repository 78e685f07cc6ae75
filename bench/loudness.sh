#!/bin/bash
# The cost of loudness normalisation (bench/README.md): the same `transcoder run --job` with and
# without "loudness", alternating, N pairs (default 5); prints wall and user+sys CPU seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/transcoder" ./cmd/transcoder
ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i "sine=frequency=440:sample_rate=48000,volume=-10dB" \
  -t 20 -c:v libx264 -preset veryfast -c:a aac -b:a 128k "$dir/in.mp4"
for k in plain loud; do
  extra=""
  [ "$k" = loud ] && extra=', "loudness": {"target": -16}'
  echo "{\"input\": \"file://$dir/in.mp4\", \"outputs\": [{\"url\": \"file://$dir/$k.mp4\", \"preset\": \"h264-480p\"$extra}]}" > "$dir/$k.json"
done
for _ in $(seq "$n"); do
  for k in plain loud; do
    rm -f "$dir/$k.mp4"
    /usr/bin/time -f "$k wall %e s, cpu %U+%S s" "$dir/transcoder" run --job "$dir/$k.json" >/dev/null 2>"$dir/err" || { cat "$dir/err"; exit 1; }
    tail -1 "$dir/err"
  done
done

#!/usr/bin/env bash
# The `make run` demo: a worker on the embedded NATS, one sample job with a progress bar, then the
# worker keeps serving until Ctrl-C.
set -euo pipefail
bin=$1 listen=$2 data=$3
mkdir -p "$data/out"
sample="$data/sample-10s.mp4"
if [ ! -s "$sample" ]; then
  echo "making a 10 s sample with lavfi: $sample"
  ffmpeg -hide_banner -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 10 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -movflags +faststart "$sample"
fi
# The worker runs in a session of its own, so Ctrl-C reaches it once: forwarded by this script.
setsid "$bin" worker --listen "$listen" --data "$data/nats" &
worker=$!
stop() { kill -INT "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true; }
trap 'stop; exit 0' INT TERM
trap stop EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/${listen%:*}/${listen##*:}") 2>/dev/null && break; sleep 0.1; done
out="$PWD/$data/out/sample-720p.mp4"
echo "submitting $sample (preset h264-720p)"
"$bin" submit --nats "nats://$listen" "$sample" --preset h264-720p -o "$out" --wait
echo
echo "output: $out"
ffprobe -v error -show_entries format=duration,size:stream=codec_name,width,height -of compact=p=0:nk=0 "$out" | paste -sd' ' -
echo
echo "worker still serving on nats://$listen (Ctrl-C stops it). More jobs:"
echo "  $bin submit --nats nats://$listen INPUT.mp4 --preset h264-480p -o OUT.mp4 --wait"
echo "  $bin presets    # every preset"
wait $worker

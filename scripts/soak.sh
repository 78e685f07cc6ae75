#!/usr/bin/env bash
# Soak: two worker processes against one embedded NATS, a stream of mixed jobs, a worker
# SIGKILLed every few seconds for DURATION (default 10m); prints the figures at the end and fails
# if a job was lost, succeeded twice, or left an ffmpeg behind. See TestSoak in
# worker/soak_test.go.
#
#   scripts/soak.sh          # 10 minutes
#   scripts/soak.sh 2m
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10m}
TRANSCODER_SOAK=$duration exec "${GO:-go}" test -race=false -count=1 -run '^TestSoak$' -timeout 0 -v ./worker

#!/usr/bin/env bash
# zoo serve under wrk (a load generator from the system packages: apt-get install wrk), on loopback, bounded:
# DURATION seconds at 1, 8 and 64 connections, with dynamic batching (the defaults) and without (--max-batch 1:
# one inference per request, the naive server), a fresh server each, each connection posting one real CIFAR-10
# PNG from the shipped samples back to back.
#
#   benchmarks/tools/serve_wrk.sh resnet20 cifar10 [DURATION]
#   SERVE_ARGS="--runtime openvino" benchmarks/tools/serve_wrk.sh resnet20 cifar10     # both servers on OpenVINO
set -euo pipefail
model=${1:-resnet20} dataset=${2:-cifar10} duration=${3:-10}
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=benchmarks/tools/wrk_common.sh
. "$(dirname "$0")/wrk_common.sh"
image=$(ls "$root"/weights/samples/"$dataset"/*.png | head -1)
lua=$(mktemp --suffix=.lua)
post_image_lua "$image" > "$lua"
port=$(free_port)
for setting in "batching:" "naive:--max-batch 1" ${EXTRA_SETTING:+"$EXTRA_SETTING"}; do
    label=${setting%%:*} extra=${setting#*:}
    # shellcheck disable=SC2086
    zoo serve "$model" "$dataset" --port "$port" --queue 4096 ${SERVE_ARGS:-} $extra > /dev/null 2>&1 &
    server=$!
    until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do sleep 0.2; done
    for conns in 1 8 64; do
        out=$(wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$lua" "http://127.0.0.1:$port/v1/predict")
        rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
        p50=$(awk '$1 == "50%" {print $2}' <<< "$out")
        p99=$(awk '$1 == "99%" {print $2}' <<< "$out")
        non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out")
        echo "$label connections $conns: $rps req/s, p50 $p50, p99 $p99, non-2xx ${non2xx:-0}"
    done
    rss=$(ps -o rss= -p "$server")
    calls=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^zoo_batch_images_count/ {c=$2} /^zoo_batch_images_sum/ {s=$2} END {printf "%.1f", s/c}')
    echo "$label: server RSS $((rss / 1024)) MB, $calls images per model call"
    kill -TERM "$server"; wait "$server" || true
done
rm -f "$lua"

#!/usr/bin/env bash
# zoo serve past saturation and over time, with wrk (apt-get install wrk) on loopback, bounded in count and time:
#
#   1. overload: OVER connections (default 512: twice the default queue of 256 images, one image a request)
#      for 20 s; every answer's status is counted: only 200 and 503 (with Retry-After) may appear;
#   2. soak: SOAK_S seconds (default 600) at 64 connections, the server's RSS sampled every 30 s; its growth
#      is read from the sample after the first minute (allocators and caches warmed) to the last.
#
#   benchmarks/tools/serve_soak.sh resnet20 cifar10 [SOAK_S] [OVER]
#   SERVE_ARGS="--runtime openvino" benchmarks/tools/serve_soak.sh resnet20 cifar10
set -euo pipefail
model=${1:-resnet20} dataset=${2:-cifar10} soak=${3:-600} over=${4:-512}
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=benchmarks/tools/wrk_common.sh
. "$(dirname "$0")/wrk_common.sh"
image=$(ls "$root"/weights/samples/"$dataset"/*.png | head -1)
lua=$(mktemp --suffix=.lua)
{ post_image_lua "$image"; cat <<LUA
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do io.write(string.format("status %d: %d\n", code, n)) end
  end
  io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n", summary.errors.connect,
                         summary.errors.read, summary.errors.write, summary.errors.timeout))
end
LUA
} > "$lua"
port=$(free_port)
# shellcheck disable=SC2086
zoo serve "$model" "$dataset" --port "$port" ${SERVE_ARGS:-} > /dev/null 2>&1 &
server=$!
until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do sleep 0.2; done
url="http://127.0.0.1:$port/v1/predict"
rss() { echo $(( $(ps -o rss= -p "$server") / 1024 )); }

echo "overload: $over connections, 20 s; server RSS before $(rss) MB"
wrk -t1 -c"$over" -d20s --latency -s "$lua" "$url" | grep -E "Requests/sec|status|socket errors|^ +(50|99)%"
echo "overload: server RSS after $(rss) MB, alive: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")"

sleep 5  # the overload's queue drains
echo "soak: 64 connections, $soak s"
wrk -t1 -c64 -d"${soak}s" --latency -s "$lua" "$url" > "$lua.out" &
load=$!
samples=()
for ((t = 30; t <= soak; t += 30)); do
    sleep 30
    samples+=("$(rss)")
    echo "soak: ${t} s, server RSS ${samples[-1]} MB"
done
wait "$load"
grep -E "Requests/sec|status|socket errors|^ +(50|99)%" "$lua.out"
first=${samples[1]:-${samples[0]}} last=${samples[-1]}
echo "soak: RSS ${first} MB at 60 s -> ${last} MB at the end: $(( (last - first) * 1000 / first ))/1000 growth"
kill -TERM "$server"; wait "$server" || true
rm -f "$lua" "$lua.out"

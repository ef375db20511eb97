#!/usr/bin/env bash
# How close zoo serve comes to zoo bench's batch throughput, and what bounds it: in one run on loopback,
# `zoo bench --onnx`'s throughput for the same file and runtime at the server's batch (32) and at 256; then one
# server, and wrk at 64 connections on GET /healthz (HTTP alone: no image, no model) and on POST /v1/predict (one
# real CIFAR-10 PNG per request). The server and wrk share the machine's cores, as they do on a 2-core box.
#
#   benchmarks/tools/serve_ceiling.sh resnet20 cifar10 openvino [DURATION]
set -euo pipefail
model=${1:-resnet20} dataset=${2:-cifar10} runtime=${3:-openvino} duration=${4:-10}
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=benchmarks/tools/wrk_common.sh
. "$(dirname "$0")/wrk_common.sh"
image=$(ls "$root"/weights/samples/"$dataset"/*.png | head -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
zoo export "$model" "$dataset" --pretrained --out "$work" > /dev/null
onnx=$(ls "$work"/*.onnx | head -1)
zoo bench --onnx "$onnx" --runtime "$runtime" --batch 32,256 --out "$work/bench" > /dev/null
python - "$work/bench/report.json" "$runtime" <<'PY'
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["rows"] if r["runtime"].startswith(sys.argv[2])]
for r in rows:
    by = r.get("throughput_by_batch") or {}
    print(f"zoo bench {r['runtime']} {r['precision']}: " + ", ".join(f"{float(v):.0f} img/s at batch {b}"
                                                                      for b, v in sorted(by.items(), key=lambda x: int(x[0]))))
PY
post_image_lua "$image" > "$work/post.lua"
port=$(free_port)
zoo serve "$onnx" --runtime "$runtime" --port "$port" --queue 4096 > /dev/null 2>&1 &
server=$!
until curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; do sleep 0.2; done
for route in healthz predict; do
    if [ "$route" = healthz ]; then
        out=$(wrk -t1 -c64 -d"${duration}s" --latency "http://127.0.0.1:$port/healthz")
    else
        out=$(wrk -t1 -c64 -d"${duration}s" --latency -s "$work/post.lua" "http://127.0.0.1:$port/v1/predict")
    fi
    echo "zoo serve $route at 64 connections: $(awk '/Requests\/sec/ {print $2}' <<< "$out") req/s," \
         "p50 $(awk '$1 == "50%" {print $2}' <<< "$out"), non-2xx $(awk '/Non-2xx/ {print $NF}' <<< "$out")"
done
kill -TERM "$server"; wait "$server" || true

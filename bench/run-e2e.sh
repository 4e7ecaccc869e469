#!/usr/bin/env bash
# End-to-end benchmark: rc-chat (roomcast) and the Node reference server
# (bench/ref-server.mjs on @opinionated-machine/sse-rooms-redis), side by
# side, in one run, on one redis-server, driven by bench/loadgen.
#
#   bench/run-e2e.sh            # build, run every scenario 3 times, report
#   bench/run-e2e.sh --smoke    # a ~10 s check that the harness works
#
# Scenarios (each bounded: loadgen --max-seconds 60):
#   fanout   one room, K = 100, 1,000, 5,000 streams; messages PUBLISHed
#            into Redis as fast as a window of 32 allows (saturation)
#   rate     K = 1,000, 200 messages/s for 10 s
#   rooms    10,000 rooms with one stream each; one message per room, 10
#            rounds
#   e2e      POST on node A, delivered on node B, K = 1,000
#   idle     RSS per connection with 10,000 idle streams
# For each: deliveries/s, latency p50/p99/max, the measured node's CPU
# time (user, system) per delivery and its RSS, from /proc.
#
# Writes bench/results/e2e.json (every run and the medians) and
# bench/results/e2e.png (gnuplot), and prints the Markdown tables.
# Environment: RC_CHAT, RC_LOADGEN (use these binaries instead of building),
# BENCH_RUNS (3), REDIS_SERVER (redis-server).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
smoke=0
[ "${1:-}" = --smoke ] && smoke=1
runs=${BENCH_RUNS:-3}
[ $smoke -eq 0 ] || runs=1

need=()
command -v "${REDIS_SERVER:-redis-server}" >/dev/null || need+=(redis-server)
[ $smoke -eq 1 ] || command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v node >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null
fi
[ -d "$root/tests/integration/node_ref/node_modules" ] ||
    (cd "$root/tests/integration/node_ref" && npm ci --no-audit --no-fund --silent)

if [ -z "${RC_CHAT:-}" ] || [ -z "${RC_LOADGEN:-}" ]; then
    build=$root/build-bench
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DRC_BUILD_BENCH=ON -DRC_BUILD_EXAMPLES=ON -DRC_BUILD_TESTS=OFF >&2
    cmake --build "$build" -j "$(nproc)" --target rc-chat loadgen >&2
    RC_CHAT=$build/examples/chat/rc-chat
    RC_LOADGEN=$build/bench/loadgen
fi

work=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Redis, for everything.
rport=$(free_port)
"${REDIS_SERVER:-redis-server}" --port "$rport" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break
    sleep 0.05
done
redis_url=redis://127.0.0.1:$rport

# start SYSTEM NAME: a node of SYSTEM (roomcast | reference); sets
# node_pid and node_port once it listens (and, with Redis, is linked).
start() {
    local system=$1 name=$2 log=$work/$2.log
    if [ "$system" = roomcast ]; then
        "$RC_CHAT" --port 0 --bind 127.0.0.1 --redis "$redis_url" --post-rate 0 \
            --node-id "$name" 2>"$log" &
    else
        node "$here/ref-server.mjs" --port 0 --redis "$redis_url" \
            --node-id "$name" 2>"$log" &
    fi
    node_pid=$!
    pids+=("$node_pid")
    for _ in $(seq 200); do
        if grep -q 'listening on http://127.0.0.1:' "$log" &&
            { [ "$system" != roomcast ] || grep -q 'redis up' "$log"; }; then
            node_port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" |
                sed 's/.*://')
            return 0
        fi
        kill -0 "$node_pid" 2>/dev/null || break
        sleep 0.05
    done
    cat "$log" >&2
    echo "run-e2e.sh: $system node did not start" >&2
    exit 1
}

stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# scenario SYSTEM RUN NAME loadgen-arguments...: one measurement on a
# fresh node (two for e2e), appended to results.jsonl.
scenario() {
    local system=$1 run=$2 name=$3 a_pid a_port
    shift 3
    start "$system" "$system-$name-$run-a"
    a_pid=$node_pid a_port=$node_port
    local target=(--url "http://127.0.0.1:$a_port" --pid "$a_pid")
    if [ "$name" = e2e ]; then # POST on A, streams (and measurement) on B
        start "$system" "$system-$name-$run-b"
        target=(--url "http://127.0.0.1:$node_port" --pid "$node_pid"
                --post "http://127.0.0.1:$a_port")
    fi
    echo "run-e2e.sh: run $run, $system, $name $*" >&2
    if ! timeout 90 "$RC_LOADGEN" "${target[@]}" --label "$system" \
        --scenario "$name" --room-tag "$name-$run-$RANDOM" "$@" \
        >>"$work/results.jsonl"; then
        echo "run-e2e.sh: $system $name failed" >&2
        failed=1
    fi
    stop "$a_pid"
    [ "$name" != e2e ] || stop "$node_pid"
}

failed=0
redis=(--redis-port "$rport")
for run in $(seq "$runs"); do
    for system in roomcast reference; do
        if [ $smoke -eq 1 ]; then
            scenario "$system" "$run" fanout --conns 50 --messages 200 "${redis[@]}" --max-seconds 10
            scenario "$system" "$run" rate --conns 20 --messages 100 --rate 200 "${redis[@]}" --max-seconds 10
            scenario "$system" "$run" rooms --conns 50 --rooms 50 --messages 100 "${redis[@]}" --max-seconds 10
            scenario "$system" "$run" e2e --conns 20 --messages 50 --max-seconds 10
            scenario "$system" "$run" idle --conns 100 --idle --max-seconds 10
            continue
        fi
        for k in 100 1000 5000; do
            scenario "$system" "$run" fanout --conns "$k" \
                --messages $((1000000 / k)) --window 32 "${redis[@]}"
        done
        scenario "$system" "$run" rate --conns 1000 --messages 2000 \
            --rate 200 "${redis[@]}"
        scenario "$system" "$run" rooms --conns 10000 --rooms 10000 \
            --messages 100000 --window 64 "${redis[@]}"
        scenario "$system" "$run" e2e --conns 1000 --messages 1000
        scenario "$system" "$run" idle --conns 10000 --idle
    done
done
[ $failed -eq 0 ] || { echo "run-e2e.sh: a scenario failed" >&2; exit 1; }
if [ $smoke -eq 1 ]; then
    echo "run-e2e.sh: smoke run passed ($(wc -l <"$work/results.jsonl") measurements)"
    exit 0
fi

mkdir -p "$here/results"
RC_BENCH_CPU=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
RC_BENCH_NPROC=$(nproc)
RC_BENCH_NODE=$(node --version)
RC_BENCH_REDIS=$("${REDIS_SERVER:-redis-server}" --version | head -n 1)
export RC_BENCH_CPU RC_BENCH_NPROC RC_BENCH_NODE RC_BENCH_REDIS
node "$here/report-e2e.cjs" "$work/results.jsonl" "$here/results/e2e.json" \
    "$work/plot.dat"
gnuplot -e "datafile='$work/plot.dat'; outfile='$here/results/e2e.png'" \
    "$here/e2e.gp"
echo "run-e2e.sh: wrote bench/results/e2e.json and bench/results/e2e.png" >&2

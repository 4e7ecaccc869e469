#!/usr/bin/env bash
# The demo command README names: build rc-chat and start the chat demo.
#
# With redis-server (installed here when missing, if apt-get can), it starts
# Redis on a free loopback port and two rc-chat nodes on it, on ports 8080
# and 8081 (or free ones when those are taken): open both URLs, and a
# message typed on one page shows up on the other. Without Redis (it could
# not be installed, or RC_DEMO_REDIS=0) it starts one node with local rooms.
# Ctrl-C stops everything it started.
#
# Environment: RC_DEMO_REDIS=0 (no Redis), BIND (default 127.0.0.1; 0.0.0.0
# to reach the demo from a phone on your network).
set -euo pipefail
cd "$(dirname "$0")/.."

want=(cmake pkg-config gcc make libhiredis-dev libevent-dev)
[ "${RC_DEMO_REDIS:-1}" = 0 ] || want+=(redis-server)
need=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing: ${need[*]}"
    if ! { $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            --no-install-recommends "${need[@]}" >/dev/null; }; then
        echo "demo: could not install ${need[*]}" >&2
    fi
fi

echo "building rc-chat..."
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DRC_BUILD_TESTS=OFF \
    -DRC_BUILD_BENCH=OFF >/dev/null
cmake --build build/demo -j "$(nproc)" --target rc-chat >/dev/null
chat=build/demo/examples/chat/rc-chat
bind=${BIND:-127.0.0.1}
host=$bind
[ "$host" != 0.0.0.0 ] || host=$(hostname -I 2>/dev/null | awk '{print $1}')
[ -n "$host" ] || host=127.0.0.1

pids=()
stop() {
    trap - INT TERM EXIT
    [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    echo
    echo "demo stopped"
}
trap stop EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Start a node on port $1 (taken: any free one) with the rest as flags;
# node_port says which port it listens on. Its log goes to stderr.
start_node() {
    local port=$1 log
    shift
    port_free "$port" || port=0
    log=$(mktemp)
    "$chat" --bind "$bind" --port "$port" "$@" 2>"$log" &
    pids+=($!)
    for _ in $(seq 100); do
        if grep -q "listening on" "$log"; then
            node_port=$(grep -o 'listening on http://[^ ]*' "$log" |
                sed 's,.*:,,; s,/,,')
            tail -n +1 -f "$log" --pid "${pids[-1]}" >&2 2>/dev/null &
            return 0
        fi
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    echo "demo: rc-chat did not start" >&2
    exit 1
}

if [ "${RC_DEMO_REDIS:-1}" != 0 ] && command -v redis-server >/dev/null; then
    rport=6390
    while ! port_free "$rport"; do rport=$((rport + 1)); done
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no >/dev/null &
    pids+=($!)
    for _ in $(seq 50); do
        redis-cli -p "$rport" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    url=redis://127.0.0.1:$rport
    start_node "${PORT:-8080}" --redis "$url" --node-id node-1
    p1=$node_port
    start_node "$((${PORT:-8080} + 1))" --redis "$url" --node-id node-2
    p2=$node_port
    echo
    echo "roomcast chat demo: two nodes on one Redis ($url)"
    echo "  node 1: http://$host:$p1/"
    echo "  node 2: http://$host:$p2/"
    echo "Open one URL in one window and the other in another, same room:"
    echo "what you type on one shows up on the other. Ctrl-C stops the demo."
else
    start_node "${PORT:-8080}" --node-id node-1
    p1=$node_port
    echo
    echo "roomcast chat demo: one node with local rooms (no Redis)"
    echo "  http://$host:$p1/"
    echo "Open it in two windows, same room. Ctrl-C stops the demo."
fi
wait

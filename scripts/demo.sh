#!/usr/bin/env bash
# The demo command README names. The SSE chat demo (rc-chat: two nodes, one
# Redis, a web page) is not there yet: it arrives with the example server.
# Until then this builds roomcast and shows what exists: the wire codec,
# through the rc-envelope tool.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for p in cmake pkg-config gcc make libhiredis-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi
cmake -S . -B build/demo -DRC_BUILD_TESTS=OFF -DRC_BUILD_BENCH=OFF >/dev/null
cmake --build build/demo -j "$(nproc)" --target rc-envelope >/dev/null
tool=build/demo/examples/rc-envelope

echo "The chat demo (rc-chat) is not there yet. What exists today:"
echo
echo "\$ rc-envelope encode --event chat --id 1 --data '{\"user\":\"ada\",\"text\":\"hi\"}'"
"$tool" encode --event chat --id 1 --data '{"user":"ada","text":"hi"}' | tee build/demo/envelope
echo
echo "\$ rc-envelope decode < envelope    # the SSE frame a client receives"
"$tool" decode < build/demo/envelope
echo "\$ echo '{\"v\":2}' | rc-envelope decode"
echo '{"v":2}' | "$tool" decode || true

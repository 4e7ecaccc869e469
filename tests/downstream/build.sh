#!/usr/bin/env bash
# Build and run tests/downstream/consumer.c against an installed roomcast,
# both ways a user would: pkg-config and CMake find_package.
#   tests/downstream/build.sh <install-prefix> <work-dir>
set -euo pipefail
prefix=$(cd "$1" && pwd)
work=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"

libdir=$(dirname "$(find "$prefix" -name roomcast.pc -path '*pkgconfig*' | head -n 1)")
export PKG_CONFIG_PATH="$libdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$(dirname "$libdir")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== pkg-config: $(pkg-config --cflags --libs roomcast)"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -o "$work/consumer-pc" "$here/consumer.c" \
    $(pkg-config --cflags --libs roomcast)
"$work/consumer-pc"
# The binary must have picked up the installed library, not a build tree's.
ldd "$work/consumer-pc" | grep -q "$(dirname "$libdir")/librc.so.0"

echo "== pkg-config --static, librc linked statically"
flags=$(pkg-config --static --libs roomcast)
# shellcheck disable=SC2046,SC2086
cc -std=c99 -Wall -Wextra -Werror -o "$work/consumer-pc-static" \
    "$here/consumer.c" $(pkg-config --cflags roomcast) \
    ${flags/-lrc/-Wl,-Bstatic -lrc -Wl,-Bdynamic}
"$work/consumer-pc-static"
! ldd "$work/consumer-pc-static" | grep -q librc.so

echo "== pkg-config roomcast-libevent"
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -Werror -o "$work/consumer-link-pc" \
    "$here/consumer_link.c" $(pkg-config --cflags --libs roomcast-libevent)
"$work/consumer-link-pc"

echo "== cmake find_package(roomcast)"
cmake -S "$here/cmake" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/consumer_shared"
"$work/cmake/consumer_static"
"$work/cmake/consumer_link"
echo "downstream: ok"

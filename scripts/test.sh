#!/usr/bin/env bash
# Run every roomcast test on a fresh Debian 12 machine:
#   1. install the Debian and npm packages the tests need (when missing),
#   2. build with gcc, -Wall -Wextra -Werror, and run ctest; then the C
#      Redis integration tests again on cluster-mode Redis servers, and the
#      link suites again on the glue's own connections (RC_LINK_ENGINE),
#   3. the same with clang under AddressSanitizer + UndefinedBehaviorSanitizer,
#   4. the unit tests and test_port once under valgrind,
#   5. each libFuzzer target for RC_FUZZ_SECONDS (default 45),
#   6. install into a temporary prefix and build two downstream programs
#      (pkg-config and CMake find_package) against it.
# Build trees go to build/ci/. Exit status 0 only if every stage passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${RC_BUILD_ROOT:-$root/build/ci}
fuzz_seconds=${RC_FUZZ_SECONDS:-45}
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$out"

passed=0
failed=0
stage() {
    local name=$1
    shift
    echo
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "=== $name: passed"
    else
        failed=$((failed + 1))
        echo "=== $name: FAILED"
    fi
}

install_packages() {
    local want=(cmake pkg-config gcc make clang libclang-rt-14-dev valgrind
                libhiredis-dev libevent-dev libssl-dev openssl libcmocka-dev
                redis-server redis-tools socat chromium faketime)
    local missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$p")
    done
    command -v node >/dev/null && command -v npm >/dev/null ||
        missing+=(nodejs npm)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        local sudo=
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # The Node parts of the integration tests, pinned by their locks: an
    # independent SSE parser, a real reference node, and the chat tests'
    # clients (the npm eventsource client, playwright-core for Chromium).
    local d
    for d in tests/integration/sse_parser tests/integration/node_ref \
        tests/integration/chat; do
        (cd "$d" && npm ci --no-audit --no-fund --silent) || return 1
    done
}

build_and_test() { # dir, then cmake options
    local dir=$1
    shift
    cmake -S "$root" -B "$dir" -DRC_WERROR=ON "$@" >/dev/null &&
        cmake --build "$dir" -j "$jobs" &&
        ctest --test-dir "$dir" --output-on-failure -j "$jobs"
}

# The gcc build's C tests of room state (the scripts: presence, admission,
# history, the lease, rate limits) again with every redis-server in
# cluster mode, one node owning every slot: Redis then holds each script to
# the keys of one slot (RC_TEST_REDIS_CLUSTER,
# tests/integration/redis_harness.h). The link and port suites send no
# script that a plain run does not cover; test_cluster runs a real one.
cluster_tests() {
    RC_TEST_REDIS_CLUSTER=1 ctest --test-dir "$out/gcc" --output-on-failure \
        -j "$jobs" -R '^test_(presence|admit|history|lease|rate_redis)$'
}

# The link suites again with plain redis:// links on the glue's own
# connections (the code TLS, Sentinel and Cluster links run on), where
# they otherwise run on hiredis' async contexts.
wire_tests() {
    RC_LINK_ENGINE=wire ctest --test-dir "$out/gcc" --output-on-failure \
        -j "$jobs" -R '^test_(link|link_faults|lease|presence|admit|history)$'
}

# The unit tests, and the port's integration test: ASan cannot see inside
# the system's (uninstrumented) libhiredis, where a context used after its
# free would be read; valgrind can.
valgrind_tests() {
    local t rc=0
    for t in "$out/gcc"/tests/unit/test_* "$out/gcc"/tests/integration/test_port; do
        [ -x "$t" ] || continue
        echo "valgrind $(basename "$t")"
        valgrind -q --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=all "$t" >"$out/valgrind.log" 2>&1 ||
            { rc=1; cat "$out/valgrind.log"; }
    done
    return $rc
}

fuzz() {
    CC=clang cmake -S "$root" -B "$out/fuzz" -DRC_BUILD_FUZZERS=ON \
        -DRC_BUILD_TESTS=OFF -DRC_BUILD_BENCH=OFF -DRC_BUILD_EXAMPLES=OFF \
        -DRC_WERROR=ON >/dev/null &&
        cmake --build "$out/fuzz" -j "$jobs" &&
        tests/fuzz/run.sh "$out/fuzz" "$fuzz_seconds"
}

downstream() {
    rm -rf "$out/prefix" "$out/downstream"
    cmake --install "$out/gcc" --prefix "$out/prefix" >/dev/null &&
        tests/downstream/build.sh "$out/prefix" "$out/downstream"
}

stage "packages" install_packages
stage "gcc -Werror build + ctest" build_and_test "$out/gcc" \
    -DCMAKE_C_COMPILER=gcc
stage "C Redis integration tests on cluster-mode Redis" cluster_tests
stage "link tests on the glue's own connections" wire_tests
stage "clang ASan+UBSan build + ctest" build_and_test "$out/asan" \
    -DCMAKE_C_COMPILER=clang -DRC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
stage "valgrind: unit tests and test_port" valgrind_tests
stage "fuzzers (${fuzz_seconds}s each)" fuzz
stage "install + downstream consumers" downstream

echo
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

# shellcheck shell=bash
# What bench/run-*.sh share. Sourced (after `set -euo pipefail`) by a script
# in this folder:
#
#   bench_build TARGET "$@"   # build TARGET; sets build, bin, build_type, work
#   ... run "$bin" "${bench_args[@]}" into files in "$work" ...
#   bench_report NAME FILE... <<'EOF'   # Node script: write and print
#
# or, for a benchmark against its own redis-server (run-admit.sh, ...):
#
#   bench_smoke "$@"; shift "$smoke"    # --smoke: smoke=1
#   bench_redis_setup TARGET "$@"       # bin, work, redis-server on rport
#   ... run "$bin" --port "$rport" ... >"$work/NAME.json" ...
#   bench_table NAME <<'JS'             # keep (not --smoke); Node prints
#
# Everything named here is a global of the sourcing script, here (this
# folder) and root (the source tree) included.
# shellcheck disable=SC2034 # the variables are for the sourcing script

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
bench_prog=${0##*/}

# Tunables (environment), as the benchmark's and bench_codec.mjs's options.
time_ms=${BENCH_TIME_MS:-500}
warmup_ms=${BENCH_WARMUP_MS:-200}
reps=${BENCH_REPS:-5}
max_iters=${BENCH_MAX_ITERS:-20000000}
bench_args=(--time-ms "$time_ms" --warmup-ms "$warmup_ms" --reps "$reps"
            --max-iters "$max_iters")

# bench_build TARGET [BUILD_DIR]: the script's own arguments after TARGET.
# Without BUILD_DIR, configures build-bench/ at the top of the source tree
# (RelWithDebInfo); with it, uses that configured build tree. Builds only
# TARGET, then sets build (absolute), bin (TARGET's executable), build_type
# (from CMakeCache.txt) and work (a temporary directory, removed on exit).
bench_build() {
    local target=$1
    shift
    if [[ $# -gt 1 ]]; then
        echo "usage: $0 [BUILD_DIR]" >&2
        exit 2
    fi

    if [[ $# -eq 1 ]]; then
        build=$1
        if [[ ! -f $build/CMakeCache.txt ]]; then
            echo "$bench_prog: $build is not a configured build tree" >&2
            exit 2
        fi
    else
        build=$root/build-bench
        timeout 120 cmake -S "$root" -B "$build" \
            -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRC_BUILD_BENCH=ON \
            -DRC_BUILD_TESTS=OFF -DRC_BUILD_EXAMPLES=OFF \
            -DRC_BUILD_FUZZERS=OFF >&2
    fi
    build=$(cd "$build" && pwd)
    timeout 300 cmake --build "$build" --target "$target" -j "$(nproc)" >&2

    bin=$build/bench/$target
    if [[ ! -x $bin ]]; then
        bin=$(find "$build" -type f -name "$target" -perm -u+x | head -n 1)
    fi
    if [[ -z $bin || ! -x $bin ]]; then
        echo "$bench_prog: $target not found in $build" >&2
        exit 1
    fi
    build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' \
        "$build/CMakeCache.txt")

    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
}

# bench_report NAME FILE...: runs the Node script on stdin with the
# arguments FILE... and bench/results/NAME.json, which it writes before it
# prints the Markdown table(s). The script gets bench/report.cjs's path in
# RC_BENCH_REPORT_LIB, and the machine info in RC_BENCH_NPROC, _CPU, _GCC,
# _DATE, _BUILD_TYPE and _PARAMS (the tunables); anything else (RC_BENCH_NODE,
# ...) the caller exports first.
bench_report() {
    local name=$1
    shift
    mkdir -p "$here/results"

    RC_BENCH_NPROC=$(nproc)
    RC_BENCH_CPU=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' \
        /proc/cpuinfo | head -n 1)
    RC_BENCH_GCC=$(gcc --version | head -n 1)
    RC_BENCH_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    RC_BENCH_BUILD_TYPE=$build_type
    RC_BENCH_PARAMS="$time_ms $warmup_ms $reps $max_iters"
    RC_BENCH_REPORT_LIB=$here/report.cjs
    export RC_BENCH_NPROC RC_BENCH_CPU RC_BENCH_GCC RC_BENCH_DATE \
        RC_BENCH_BUILD_TYPE RC_BENCH_PARAMS RC_BENCH_REPORT_LIB

    node - "$@" "$here/results/$name.json"
}

# bench_redis: a redis-server on a free 127.0.0.1 port, without
# persistence, logging to $work/redis.log (redis-server binds the port
# itself, so a port taken in between only costs another try). Sets rport
# and rpid, or exits after printing the log.
bench_redis() {
    rport=
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local port=$((20000 + RANDOM % 30000))
        redis-server --port "$port" --bind 127.0.0.1 --save '' \
            --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
        rpid=$!
        for _ in $(seq 50); do
            kill -0 "$rpid" 2>/dev/null || break
            if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
                rport=$port
                return 0
            fi
            sleep 0.1
        done
        kill "$rpid" 2>/dev/null || true
        wait "$rpid" 2>/dev/null || true
    done
    rpid=
    cat "$work/redis.log" >&2
    echo "$bench_prog: could not start redis-server" >&2
    exit 1
}

# bench_smoke "$@": sets smoke to 1 if the first argument is --smoke, else
# to 0; the caller then drops it with `shift "$smoke"`.
bench_smoke() {
    smoke=0
    if [[ ${1:-} == --smoke ]]; then
        smoke=1
    fi
}

# bench_redis_setup TARGET [BUILD_DIR]: for a benchmark against its own
# redis-server. Checks for redis-server and redis-cli; with BUILD_DIR, takes
# bin from BUILD_DIR/bench as it is, else bench_build TARGET; sets work
# (removed on exit, with the server: bench_cleanup), then bench_redis.
bench_redis_setup() {
    local target=$1 tool
    shift
    for tool in redis-server redis-cli; do
        if ! command -v "$tool" >/dev/null; then
            echo "$bench_prog: $tool not found (apt-get install redis-server" \
                "redis-tools)" >&2
            exit 1
        fi
    done

    if [[ $# -eq 1 ]]; then
        bin=$1/bench/$target
        work=$(mktemp -d)
        [[ -x $bin ]] || { echo "$bench_prog: no $bin" >&2; exit 1; }
    else
        bench_build "$target" "$@"
    fi

    rpid=
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM

    bench_redis
}

# bench_cleanup: the EXIT trap of bench_redis_setup.
bench_cleanup() {
    [[ -n $rpid ]] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
    rm -rf "$work"
}

# bench_table NAME: keeps $work/NAME.json (what the benchmark printed) as
# bench/results/NAME.json (not for --smoke), then runs the Node script on
# stdin with that file's path, to print the table(s).
bench_table() {
    if [[ $smoke == 0 ]]; then
        mkdir -p "$here/results"
        cp "$work/$1.json" "$here/results/$1.json"
    fi
    node - "$work/$1.json"
}

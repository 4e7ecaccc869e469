#!/usr/bin/env bash
# Run every roomcast fuzzer for a while.
#
#   tests/fuzz/run.sh <build-dir> <seconds-per-fuzzer>
#
# <build-dir> was configured with CC=clang -DRC_BUILD_FUZZERS=ON. Each fuzzer
# starts from a copy of its seed corpus in a temporary directory, so the
# repository is never modified; crashes, leaks and timeouts go to a
# temporary artifact directory and are printed (path, hex and base64).
# Exits nonzero if any fuzzer found anything. Extra libFuzzer flags may be
# given in RC_FUZZ_ARGS (e.g. RC_FUZZ_ARGS="-max_len=65536 -jobs=2").
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 <build-dir> <seconds-per-fuzzer>" >&2
    exit 2
fi
build=$1
seconds=$2
case $seconds in
'' | *[!0-9]*)
    echo "$0: seconds must be a whole number" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rc-fuzz.XXXXXX")
status=0

for name in decode sse chat_body wire; do
    bin=$build/tests/fuzz/fuzz_$name
    if [ ! -x "$bin" ]; then
        echo "$0: $bin not found (configure with -DRC_BUILD_FUZZERS=ON)" >&2
        status=1
        continue
    fi
    corpus=$work/$name/corpus
    artifacts=$work/$name/artifacts
    mkdir -p "$corpus" "$artifacts"
    cp "$here/corpus/$name/"* "$corpus/"
    dict=()
    if [ "$name" != sse ]; then
        dict=(-dict="$here/dict/json.dict")
    fi

    echo "== fuzz_$name: ${seconds}s"
    # shellcheck disable=SC2086 # RC_FUZZ_ARGS is split on purpose
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "${dict[@]}" ${RC_FUZZ_ARGS:-} "$corpus" >"$work/$name/log" 2>&1
    rc=$?
    # The last status line and the final statistics.
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::' "$work/$name/log" | tail -12

    found=$(find "$artifacts" -type f | sort)
    if [ $rc -ne 0 ] || [ -n "$found" ]; then
        status=1
        echo "!! fuzz_$name failed (exit $rc); log: $work/$name/log"
        grep -E 'property failed|ERROR: |SUMMARY: |runtime error' \
            "$work/$name/log" | head -20
        for f in $found; do
            echo "-- artifact $f ($(wc -c <"$f") bytes)"
            od -An -tx1 -v "$f" | head -40
            echo "base64: $(base64 -w0 "$f")"
        done
    else
        echo "ok: fuzz_$name ($(find "$corpus" -type f | wc -l) corpus files)"
    fi
done

if [ $status -eq 0 ]; then
    rm -rf "$work"
else
    echo "findings and logs kept in $work"
fi
exit $status

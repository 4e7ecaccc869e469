#!/usr/bin/env bash
# Fan-out benchmark: local delivery cost and memory per membership, in one
# command.
#
#   bench/run-fanout.sh [BUILD_DIR]
#
# Without BUILD_DIR: configures and builds into build-bench/ at the top of
# the source tree (RelWithDebInfo, the project's default build type). With
# BUILD_DIR: uses that (already configured) build tree and builds only the
# bench_fanout target in it.
#
# Writes bench/results/fanout.json and prints two Markdown tables.
# Tunables (environment): BENCH_TIME_MS (500), BENCH_WARMUP_MS (200),
# BENCH_REPS (5), BENCH_MAX_ITERS (20000000). With the defaults the run
# itself takes about 20 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

time_ms=${BENCH_TIME_MS:-500}
warmup_ms=${BENCH_WARMUP_MS:-200}
reps=${BENCH_REPS:-5}
max_iters=${BENCH_MAX_ITERS:-20000000}
bench_args=(--time-ms "$time_ms" --warmup-ms "$warmup_ms" --reps "$reps"
            --max-iters "$max_iters")

if [[ $# -gt 1 ]]; then
    echo "usage: $0 [BUILD_DIR]" >&2
    exit 2
fi

if [[ $# -eq 1 ]]; then
    build=$1
    if [[ ! -f $build/CMakeCache.txt ]]; then
        echo "run-fanout.sh: $build is not a configured build tree" >&2
        exit 2
    fi
else
    build=$root/build-bench
    timeout 120 cmake -S "$root" -B "$build" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRC_BUILD_BENCH=ON \
        -DRC_BUILD_TESTS=OFF -DRC_BUILD_EXAMPLES=OFF -DRC_BUILD_FUZZERS=OFF \
        >&2
fi
build=$(cd "$build" && pwd)
timeout 300 cmake --build "$build" --target bench_fanout -j "$(nproc)" >&2

bin=$build/bench/bench_fanout
if [[ ! -x $bin ]]; then
    bin=$(find "$build" -type f -name bench_fanout -perm -u+x | head -n 1)
fi
if [[ -z $bin || ! -x $bin ]]; then
    echo "run-fanout.sh: bench_fanout not found in $build" >&2
    exit 1
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "run-fanout.sh: $bin ..." >&2
timeout 120 "$bin" "${bench_args[@]}" >"$work/fanout.jsonl"

mkdir -p "$here/results"
out=$here/results/fanout.json

# Machine info, passed to the report step through the environment.
RC_BENCH_NPROC=$(nproc)
RC_BENCH_CPU=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' \
    /proc/cpuinfo | head -n 1)
RC_BENCH_GCC=$(gcc --version | head -n 1)
RC_BENCH_GLIBC=$(ldd --version 2>/dev/null | head -n 1 || true)
RC_BENCH_KERNEL=$(uname -sr)
RC_BENCH_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
RC_BENCH_BUILD_TYPE=$build_type
RC_BENCH_PARAMS="$time_ms $warmup_ms $reps $max_iters"
export RC_BENCH_NPROC RC_BENCH_CPU RC_BENCH_GCC RC_BENCH_GLIBC \
    RC_BENCH_KERNEL RC_BENCH_DATE RC_BENCH_BUILD_TYPE RC_BENCH_PARAMS

# Write fanout.json and print the tables (Node, as run-codec.sh does).
node - "$work/fanout.jsonl" "$out" <<'EOF'
const fs = require('node:fs');
const [inFile, outFile] = process.argv.slice(2);
const records = fs.readFileSync(inFile, 'utf8').split('\n')
  .filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const fan = records.filter((r) => r.case === 'room' || r.case === 'multi');
const mem = records.filter((r) => r.case === 'memory');
if (fan.length === 0 || mem.length === 0) throw new Error('missing records');

const [timeMs, warmupMs, reps, maxIters] =
  process.env.RC_BENCH_PARAMS.split(' ').map(Number);
const report = {
  benchmark: 'fanout',
  method: {
    unit: 'ns per broadcast, median of reps timed runs; ' +
      'ns per delivery = ns per broadcast / recipients',
    time_ms_per_run: timeMs, warmup_ms: warmupMs, reps,
    max_iters_per_run: maxIters,
    adapter: 'rc_adapter_new(NULL, NULL, NULL, "bench"): local only, ' +
      'libc allocator; sinks count per connection and return 0',
    message: '100-byte JSON data, event "message", id "1732500000000-42"',
    room: 'rc_broadcast_to_room(a, room, &msg, NULL, RC_LOCAL_ONLY), ' +
      'one room of K members',
    multi: 'rc_broadcast(a, rooms, R, &msg, {flags: RC_LOCAL_ONLY}), ' +
      'every connection in every room (de-dup path)',
    memory: 'bytes asked of a counting rc_alloc (rc_adapter_open, ' +
      'options.alloc), connection ids generated (UUID v4); cross-check: ' +
      'RSS (/proc/self/statm) and mallinfo2 growth with libc malloc',
    isolation: 'every case runs in its own forked child, from the same heap',
    allocs: 'allocs_per_broadcast / alloc_bytes_per_broadcast: malloc + ' +
      'realloc calls and bytes per broadcast, counting allocator, after ' +
      '10 warm-up broadcasts',
  },
  machine: {
    nproc: Number(process.env.RC_BENCH_NPROC),
    cpu: process.env.RC_BENCH_CPU,
    gcc: process.env.RC_BENCH_GCC,
    glibc: process.env.RC_BENCH_GLIBC,
    kernel: process.env.RC_BENCH_KERNEL,
    build_type: process.env.RC_BENCH_BUILD_TYPE,
    date: process.env.RC_BENCH_DATE,
  },
  records,
};
fs.writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n');

const ns = (v) => v >= 100 ? Math.round(v).toLocaleString('en-US')
  : v >= 10 ? v.toFixed(1) : v.toFixed(2);
const int = (v) => v.toLocaleString('en-US');
const kib = (v) => `${(v / 1024).toFixed(0)} KiB`;
const rows = [
  '| case | API | conns | rooms | memberships | ns / broadcast ' +
    '| ns / delivery | min-max ns / broadcast | allocs (bytes) / broadcast |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|',
];
for (const r of fan) {
  rows.push(`| ${r.case} | \`${r.api}\` | ${int(r.conns)} | ${r.rooms} ` +
    `| ${int(r.memberships)} | ${ns(r.ns_per_broadcast)} ` +
    `| ${ns(r.ns_per_delivery)} ` +
    `| ${ns(r.min_ns_per_broadcast)}-${ns(r.max_ns_per_broadcast)} ` +
    `| ${r.allocs_per_broadcast} (${r.alloc_bytes_per_broadcast} B) |`);
}
rows.push('');
rows.push('| conns | rooms | memberships | bytes counted | B / conn ' +
  '| B / membership | B / conn, all in | RSS growth | RSS / counted ' +
  '| malloc in-use / counted |');
rows.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of mem) {
  rows.push(`| ${int(r.conns)} | ${r.rooms} | ${int(r.memberships)} ` +
    `| ${kib(r.bytes)} | ${r.bytes_per_conn.toFixed(1)} ` +
    `| ${r.bytes_per_membership.toFixed(1)} ` +
    `| ${r.bytes_per_conn_all.toFixed(1)} | ${kib(r.rss_delta_bytes)} ` +
    `| ${r.rss_over_counted.toFixed(2)} | ${r.heap_over_counted.toFixed(2)} |`);
}
const m = report.machine;
console.log(rows.join('\n'));
console.log(`\n${m.cpu}, ${m.nproc} CPUs; ${m.gcc}, ${m.build_type}; ` +
  `${m.glibc}; ${m.date}. Data 100 B, frame ${fan[0].frame_bytes} B.`);
console.log(`Results: ${outFile}`);
EOF

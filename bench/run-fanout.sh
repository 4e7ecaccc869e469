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

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_build bench_fanout "$@"

echo "run-fanout.sh: $bin ..." >&2
timeout 120 "$bin" "${bench_args[@]}" >"$work/fanout.jsonl"

# Write fanout.json and print the tables (Node, as run-codec.sh does).
RC_BENCH_GLIBC=$(ldd --version 2>/dev/null | head -n 1 || true)
RC_BENCH_KERNEL=$(uname -sr)
export RC_BENCH_GLIBC RC_BENCH_KERNEL
bench_report fanout "$work/fanout.jsonl" <<'EOF'
const bench = require(process.env.RC_BENCH_REPORT_LIB);
const [inFile, outFile] = process.argv.slice(2);
const records = bench.readJsonLines(inFile);
const fan = records.filter((r) => r.case === 'room' || r.case === 'multi');
const mem = records.filter((r) => r.case === 'memory');
if (fan.length === 0 || mem.length === 0) throw new Error('missing records');

const report = {
  benchmark: 'fanout',
  method: {
    unit: 'ns per broadcast, median of reps timed runs; ' +
      'ns per delivery = ns per broadcast / recipients',
    ...bench.timingMethod(),
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
  machine: bench.machine(['nproc', 'cpu', 'gcc', 'glibc', 'kernel',
    'build_type', 'date']),
  records,
};
bench.writeReport(outFile, report);

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
bench.printTables(rows, m,
  `${m.glibc}; ${m.date}. Data 100 B, frame ${fan[0].frame_bytes} B.`, outFile);
EOF

#!/usr/bin/env bash
# Codec benchmark, roomcast and Node side by side, in one command.
#
#   bench/run-codec.sh [BUILD_DIR]
#
# Without BUILD_DIR: configures and builds into build-bench/ at the top of
# the source tree (RelWithDebInfo, the project's default build type). With
# BUILD_DIR: uses that (already configured) build tree and builds only the
# bench_codec target in it.
#
# Writes bench/results/codec.json and prints a Markdown table.
# Tunables (environment): BENCH_TIME_MS (500), BENCH_WARMUP_MS (200),
# BENCH_REPS (5), BENCH_MAX_ITERS (20000000). With the defaults the whole run
# takes well under 2 minutes.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_build bench_codec "$@"

echo "run-codec.sh: roomcast ($bin) ..." >&2
timeout 120 "$bin" --dump "$work/envelopes" "${bench_args[@]}" \
    >"$work/roomcast.jsonl"
echo "run-codec.sh: node ..." >&2
timeout 120 node "$here/bench_codec.mjs" "$work/envelopes" "${bench_args[@]}" \
    >"$work/node.jsonl"

# Combine, write codec.json, print the table (node is needed anyway).
RC_BENCH_NODE=$(node --version)
export RC_BENCH_NODE
bench_report codec "$work/roomcast.jsonl" "$work/node.jsonl" <<'EOF'
const bench = require(process.env.RC_BENCH_REPORT_LIB);
const [cFile, nFile, outFile] = process.argv.slice(2);
const records = [...bench.readJsonLines(cFile), ...bench.readJsonLines(nFile)];
const find = (impl, op, size) =>
  records.find((r) => r.impl === impl && r.op === op && r.size === size);

const sizes = [...new Set(records.map((r) => r.size))].sort((a, b) => a - b);
const ratios = [];
for (const size of sizes) {
  for (const op of ['encode', 'decode']) {
    const c = find('roomcast', op, size), n = find('node', op, size);
    if (!c || !n) throw new Error(`missing ${op} ${size}`);
    ratios.push({
      op, size,
      roomcast_ns: c.ns_per_op, node_ns: n.ns_per_op,
      node_over_roomcast: Math.round((n.ns_per_op / c.ns_per_op) * 100) / 100,
    });
  }
}
const report = {
  benchmark: 'codec',
  method: {
    unit: 'ns per envelope, median of reps timed runs',
    ...bench.timingMethod(),
    roomcast: 'rc_envelope_encode / rc_envelope_decode, default limits',
    node: 'JSON.stringify(envelope object) / JSON.parse(envelope text)',
  },
  machine: bench.machine(['nproc', 'cpu', 'node', 'gcc', 'build_type', 'date']),
  records,
  ratios,
};
bench.writeReport(outFile, report);

const label = (s) => s % 1024 === 0 ? `${s / 1024} KiB` : `${s} B`;
const ns = (v) => v >= 100 ? v.toFixed(0) : v.toFixed(1);
const x = (v) => `${v.toFixed(2)}x`;
const get = (op, size) => ratios.find((r) => r.op === op && r.size === size);
const rows = [
  '| data | envelope | encode roomcast ns | encode Node ns | speed-up ' +
    '| decode roomcast ns | decode Node ns | speed-up |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|',
];
for (const size of sizes) {
  const e = get('encode', size), d = get('decode', size);
  rows.push(`| ${label(size)} | ${find('roomcast', 'encode', size).envelope_bytes} B ` +
    `| ${ns(e.roomcast_ns)} | ${ns(e.node_ns)} | ${x(e.node_over_roomcast)} ` +
    `| ${ns(d.roomcast_ns)} | ${ns(d.node_ns)} | ${x(d.node_over_roomcast)} |`);
}
const m = report.machine;
bench.printTables(rows, m,
  `Node ${m.node}; ${m.date}. speed-up = Node ns / roomcast ns.`, outFile);
EOF

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
        echo "run-codec.sh: $build is not a configured build tree" >&2
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
timeout 300 cmake --build "$build" --target bench_codec -j "$(nproc)" >&2

bin=$build/bench/bench_codec
if [[ ! -x $bin ]]; then
    bin=$(find "$build" -type f -name bench_codec -perm -u+x | head -n 1)
fi
if [[ -z $bin || ! -x $bin ]]; then
    echo "run-codec.sh: bench_codec not found in $build" >&2
    exit 1
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "run-codec.sh: roomcast ($bin) ..." >&2
timeout 120 "$bin" --dump "$work/envelopes" "${bench_args[@]}" \
    >"$work/roomcast.jsonl"
echo "run-codec.sh: node ..." >&2
timeout 120 node "$here/bench_codec.mjs" "$work/envelopes" "${bench_args[@]}" \
    >"$work/node.jsonl"

mkdir -p "$here/results"
out=$here/results/codec.json

# Machine info, passed to the report step through the environment.
RC_BENCH_NPROC=$(nproc)
RC_BENCH_CPU=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' \
    /proc/cpuinfo | head -n 1)
RC_BENCH_NODE=$(node --version)
RC_BENCH_GCC=$(gcc --version | head -n 1)
RC_BENCH_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
RC_BENCH_BUILD_TYPE=$build_type
RC_BENCH_PARAMS="$time_ms $warmup_ms $reps $max_iters"
export RC_BENCH_NPROC RC_BENCH_CPU RC_BENCH_NODE RC_BENCH_GCC RC_BENCH_DATE \
    RC_BENCH_BUILD_TYPE RC_BENCH_PARAMS

# Combine, write codec.json, print the table (node is needed anyway).
node - "$work/roomcast.jsonl" "$work/node.jsonl" "$out" <<'EOF'
const fs = require('node:fs');
const [cFile, nFile, outFile] = process.argv.slice(2);
const lines = (f) => fs.readFileSync(f, 'utf8').split('\n')
  .filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const records = [...lines(cFile), ...lines(nFile)];
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
const [timeMs, warmupMs, reps, maxIters] =
  process.env.RC_BENCH_PARAMS.split(' ').map(Number);
const report = {
  benchmark: 'codec',
  method: {
    unit: 'ns per envelope, median of reps timed runs',
    time_ms_per_run: timeMs, warmup_ms: warmupMs, reps,
    max_iters_per_run: maxIters,
    roomcast: 'rc_envelope_encode / rc_envelope_decode, default limits',
    node: 'JSON.stringify(envelope object) / JSON.parse(envelope text)',
  },
  machine: {
    nproc: Number(process.env.RC_BENCH_NPROC),
    cpu: process.env.RC_BENCH_CPU,
    node: process.env.RC_BENCH_NODE,
    gcc: process.env.RC_BENCH_GCC,
    build_type: process.env.RC_BENCH_BUILD_TYPE,
    date: process.env.RC_BENCH_DATE,
  },
  records,
  ratios,
};
fs.writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n');

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
console.log(rows.join('\n'));
console.log(`\n${m.cpu}, ${m.nproc} CPUs; ${m.gcc}, ${m.build_type}; ` +
  `Node ${m.node}; ${m.date}. speed-up = Node ns / roomcast ns.`);
console.log(`Results: ${outFile}`);
EOF

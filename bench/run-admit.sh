#!/usr/bin/env bash
# Admission and rate-limit benchmark: what admits, sessions, the limiter
# and a limited publish cost on a real redis-server, in one command
# (bench_admit.c says what is measured).
#
#   bench/run-admit.sh [BUILD_DIR]          # the full run (about 30 s)
#   bench/run-admit.sh --smoke [BUILD_DIR]  # a small one, for CI
#
# Starts its own redis-server on a free 127.0.0.1 port (no persistence),
# runs bench_admit against it (3 nodes in one process), writes
# bench/results/admit.json (not for --smoke) and prints a Markdown table.
# Sizes (environment): BENCH_ADMIT_ROOMS (1000 cap-2 rooms per admit row,
# 50 admits each), BENCH_ADMIT_SESSIONS (20000), BENCH_ADMIT_CHECKS
# (100000), BENCH_ADMIT_MSGS (100000), BENCH_ADMIT_WINDOW (512 in flight),
# BENCH_ADMIT_GCRA (20000000 local checks).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_smoke "$@"
shift "$smoke"
rooms=${BENCH_ADMIT_ROOMS:-1000}
sessions=${BENCH_ADMIT_SESSIONS:-20000}
checks=${BENCH_ADMIT_CHECKS:-100000}
msgs=${BENCH_ADMIT_MSGS:-100000}
window=${BENCH_ADMIT_WINDOW:-512}
gcra=${BENCH_ADMIT_GCRA:-20000000}
if [[ $smoke == 1 ]]; then
    rooms=40 sessions=500 checks=2000 msgs=2000 gcra=1000000
fi

bench_redis_setup bench_admit "$@"

timeout 600 "$bin" --port "$rport" --rooms "$rooms" --sessions "$sessions" \
    --checks "$checks" --msgs "$msgs" --window "$window" --gcra "$gcra" \
    >"$work/admit.json"
bench_table admit <<'JS'
const r = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const n = (x, d = 0) => x.toLocaleString('en-US', {minimumFractionDigits: d, maximumFractionDigits: d});
console.log(`${r.nodes} nodes (one process, one loop), one redis-server; ${r.rooms} cap-2 rooms per admit row, ${r.per_room} admits each.\n`);
console.log('| operation | in flight | ops/s | µs/op (wall) | Redis calls (round trips) /op | Redis µs/op, commandstats | Redis CPU µs/op | node CPU µs/op |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const x of r.rows) {
  const local = x.redis_calls_per_op < 0;
  const wall = local ? `${n(x.us_per_op * 1000, 1)} ns` : n(x.us_per_op, 2);
  const redis = local ? ['0', '–', '–'] : [n(x.redis_calls_per_op, 2), n(x.redis_cmd_us_per_op, 2), n(x.redis_cpu_us_per_op, 2)];
  const node = local ? '–' : n(x.node_cpu_us_per_op, 2);
  console.log(`| ${x.name} | ${local ? '–' : n(x.in_flight)} | ${n(x.per_s)} | ${wall} | ${redis.join(' | ')} | ${node} |`);
}
JS

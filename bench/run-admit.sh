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

smoke=0
if [[ ${1:-} == --smoke ]]; then
    smoke=1
    shift
fi
rooms=${BENCH_ADMIT_ROOMS:-1000}
sessions=${BENCH_ADMIT_SESSIONS:-20000}
checks=${BENCH_ADMIT_CHECKS:-100000}
msgs=${BENCH_ADMIT_MSGS:-100000}
window=${BENCH_ADMIT_WINDOW:-512}
gcra=${BENCH_ADMIT_GCRA:-20000000}
if [[ $smoke == 1 ]]; then
    rooms=40 sessions=500 checks=2000 msgs=2000 gcra=1000000
fi

for tool in redis-server redis-cli; do
    if ! command -v "$tool" >/dev/null; then
        echo "$bench_prog: $tool not found (apt-get install redis-server" \
            "redis-tools)" >&2
        exit 1
    fi
done

if [[ $# -eq 1 ]]; then
    bin=$1/bench/bench_admit
    work=$(mktemp -d)
    [[ -x $bin ]] || { echo "$bench_prog: no $bin" >&2; exit 1; }
else
    bench_build bench_admit "$@"
fi

rpid=
cleanup() {
    [[ -n $rpid ]] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_redis

timeout 600 "$bin" --port "$rport" --rooms "$rooms" --sessions "$sessions" \
    --checks "$checks" --msgs "$msgs" --window "$window" --gcra "$gcra" \
    >"$work/admit.json"
if [[ $smoke == 0 ]]; then
    mkdir -p "$here/results"
    cp "$work/admit.json" "$here/results/admit.json"
fi
node - "$work/admit.json" <<'JS'
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

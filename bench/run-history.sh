#!/usr/bin/env bash
# History and resume benchmark: what a history room costs against a plain
# one, and what a storm of resumes costs, on a real redis-server, in one
# command (bench_history.c says what is measured).
#
#   bench/run-history.sh [BUILD_DIR]          # the full run (a few seconds)
#   bench/run-history.sh --smoke [BUILD_DIR]  # a small one, for CI
#
# Starts its own redis-server on a free 127.0.0.1 port (no persistence),
# runs bench_history against it (3 nodes in one process), writes
# bench/results/history.json (not for --smoke) and prints two Markdown
# tables and the ratios. Sizes (environment): BENCH_HISTORY_MSGS (100000
# per publish row), BENCH_HISTORY_WINDOW (512 in flight),
# BENCH_HISTORY_RESUMES (1000 clients), BENCH_HISTORY_BEHIND (100 missed
# messages each).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_smoke "$@"
shift "$smoke"
msgs=${BENCH_HISTORY_MSGS:-100000}
window=${BENCH_HISTORY_WINDOW:-512}
resumes=${BENCH_HISTORY_RESUMES:-1000}
behind=${BENCH_HISTORY_BEHIND:-100}
if [[ $smoke == 1 ]]; then
    msgs=2000 resumes=100
fi

bench_redis_setup bench_history "$@"

timeout 600 "$bin" --port "$rport" --msgs "$msgs" --window "$window" \
    --resumes "$resumes" --behind "$behind" >"$work/history.json"
bench_table history <<'JS'
const r = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const n = (x, d = 0) => x.toLocaleString('en-US', {minimumFractionDigits: d, maximumFractionDigits: d});
console.log(`${r.nodes} nodes (one process, one loop), one redis-server; one room with a member on each node, ${r.bytes}-byte messages, message k from node k mod ${r.nodes}; done when every member has it.\n`);
console.log('| publish | in flight | messages/s | µs/message (wall) | Redis calls/message | Redis µs/message, commandstats | of which PUBLISH | Redis CPU µs/message | node CPU µs/message |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const x of r.publish) {
  const pub = x.history ? n(x.redis_publish_us_per_op, 2) : n(x.redis_cmd_us_per_op, 2);
  console.log(`| ${x.name} | ${n(x.in_flight)} | ${n(x.per_s)} | ${n(x.us_per_op, 2)} | ${n(x.redis_calls_per_op, 2)} | ${n(x.redis_cmd_us_per_op, 2)} | ${pub} | ${n(x.redis_cpu_us_per_op, 2)} | ${n(x.node_cpu_us_per_op, 2)} |`);
}
const pair = w => [r.publish.find(x => !x.history && x.in_flight === w), r.publish.find(x => x.history && x.in_flight === w)];
const [off, on] = pair(r.window), [off1, on1] = pair(1);
const ratio = (a, b) => n(a / b, 2);
console.log(`\nHistory on / off, ${n(r.window)} in flight: Redis CPU ×${ratio(on.redis_cpu_us_per_op, off.redis_cpu_us_per_op)} (goal ≤ 2: ${on.redis_cpu_us_per_op <= 2 * off.redis_cpu_us_per_op ? 'met' : 'missed'}), Redis µs (commandstats) ×${ratio(on.redis_cmd_us_per_op, off.redis_cmd_us_per_op)}, node CPU ×${ratio(on.node_cpu_us_per_op, off.node_cpu_us_per_op)}, messages/s ${n(100 * on.per_s / off.per_s)} % of off (goal ≥ 80 %: ${on.per_s >= 0.8 * off.per_s ? 'met' : 'missed'}).`);
console.log(`History on / off, 1 in flight: latency ×${ratio(on1.us_per_op, off1.us_per_op)} (${n(on1.us_per_op)} µs against ${n(off1.us_per_op)}), Redis CPU ×${ratio(on1.redis_cpu_us_per_op, off1.redis_cpu_us_per_op)}.\n`);
const x = r.resume;
console.log('| resume | clients | missed each | total ms | resumes/s | messages/s | Redis calls/resume | Redis µs/resume, commandstats | Redis CPU ms (total) | Redis CPU µs/resume | node CPU µs/resume |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
console.log(`| rc_conn_resume, all at once | ${n(x.n)} | ${n(r.behind)} | ${n(x.ms, 1)} | ${n(x.per_s)} | ${n(x.per_s * r.behind)} | ${n(x.redis_calls_per_op, 2)} | ${n(x.redis_cmd_us_per_op, 2)} | ${n(x.redis_cpu_ms, 1)} | ${n(x.redis_cpu_us_per_op, 2)} | ${n(x.node_cpu_us_per_op, 2)} |`);
JS

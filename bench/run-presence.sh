#!/usr/bin/env bash
# Presence benchmark: what presence costs on a real redis-server, in one
# command (bench_presence.c says what is measured).
#
#   bench/run-presence.sh [BUILD_DIR]          # the full run (about 15 s)
#   bench/run-presence.sh --smoke [BUILD_DIR]  # a small one, for CI
#
# Starts its own redis-server on a free 127.0.0.1 port (no persistence),
# runs bench_presence against it, writes bench/results/presence.json (not
# for --smoke) and prints a Markdown table. Sizes (environment):
# BENCH_PRESENCE_USERS (10000 per node, 3 nodes), BENCH_PRESENCE_ROOMS
# (1000), BENCH_PRESENCE_WINDOW_S (10), BENCH_PRESENCE_OPS (200),
# BENCH_PRESENCE_SNAPSHOT (10000).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_smoke "$@"
shift "$smoke"
users=${BENCH_PRESENCE_USERS:-10000}
rooms=${BENCH_PRESENCE_ROOMS:-1000}
window=${BENCH_PRESENCE_WINDOW_S:-10}
ops=${BENCH_PRESENCE_OPS:-200}
snapshot=${BENCH_PRESENCE_SNAPSHOT:-10000}
if [[ $smoke == 1 ]]; then
    users=300 rooms=30 window=2 ops=20 snapshot=500
fi

bench_redis_setup bench_presence "$@"

timeout 600 "$bin" --port "$rport" --users "$users" --rooms "$rooms" \
    --window-s "$window" --ops "$ops" --snapshot-users "$snapshot" \
    >"$work/presence.json"
bench_table presence <<'JS'
const r = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const rows = [
  ['users joined (all nodes)', `${r.nodes} x ${r.users_per_node} in ${r.rooms} rooms: ${r.join_all_ms} ms (${r.joins_per_s}/s)`],
  ['steady state, script calls/s', `${r.steady_scripts_per_s} (Redis commands incl. inside scripts: ${r.steady_commands_per_s}); per-connection refresh every 25 s would be ${r.refresh_scheme_per_s} (x${(r.refresh_scheme_per_s / r.steady_scripts_per_s).toFixed(0)})`],
  ['join to observer, p50 / p99', `${r.join_p50_ms} / ${r.join_p99_ms} ms`],
  ['leave (no grace) to observer, p50 / p99', `${r.leave_p50_ms} / ${r.leave_p99_ms} ms`],
  ['per join or leave', `${r.redis_scripts_per_op} script call, ${r.redis_script_us_per_call} us of Redis CPU; ${r.node_cpu_us_per_op} us of node CPU (both nodes)`],
  [`snapshot of ${r.snapshot_users} users`, `${r.snapshot_ms} ms to the first rc:presence, ${r.snapshot_bytes} bytes, ${r.snapshot_redis_us} us of Redis CPU`],
];
console.log('| presence | measured |\n|---|---|');
for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
JS

#!/usr/bin/env bash
# Publish-rate benchmark: roomcast's publishes per second through a real
# redis-server, against redis-benchmark's PUBLISH as the ceiling, in one
# command.
#
#   bench/run-publish.sh [BUILD_DIR]
#
# Without BUILD_DIR: configures and builds into build-bench/ at the top of
# the source tree (RelWithDebInfo). With BUILD_DIR: uses that (already
# configured) build tree and builds only the bench_publish target in it
# (it needs libevent).
#
# Starts its own redis-server on a free 127.0.0.1 port (no persistence)
# and one external subscriber (redis-cli SUBSCRIBE sse:room:bench, to
# /dev/null), then alternates, BENCH_PUBLISH_RUNS times: redis-benchmark
# -P W (50 clients, its default), redis-benchmark -c 1 -P W, bench_publish
# --window W, and bench_publish --window 50*W (as many in flight as
# redis-benchmark's 50 x W). All of them publish the same bytes: one
# envelope as the library writes it (bench_publish --print-envelope, same
# node id). Writes bench/results/publish.json and prints a Markdown table of
# the medians. Everything it started is stopped on exit.
#
# Tunables (environment): BENCH_PUBLISH_N (1000000 publishes per run),
# BENCH_PUBLISH_SIZE (100 bytes of data JSON), BENCH_PUBLISH_WINDOW (16:
# bench_publish --window and redis-benchmark -P), BENCH_PUBLISH_WARMUP
# (20000), BENCH_PUBLISH_RUNS (3), BENCH_PUBLISH_MAX_SECONDS (20, per
# bench_publish run). With the defaults the runs take about 35 s.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

n=${BENCH_PUBLISH_N:-1000000}
size=${BENCH_PUBLISH_SIZE:-100}
window=${BENCH_PUBLISH_WINDOW:-16}
warmup=${BENCH_PUBLISH_WARMUP:-20000}
runs=${BENCH_PUBLISH_RUNS:-3}
max_seconds=${BENCH_PUBLISH_MAX_SECONDS:-20}
channel=sse:room:bench

for tool in redis-server redis-cli redis-benchmark; do
    if ! command -v "$tool" >/dev/null; then
        echo "$bench_prog: $tool not found (apt-get install redis-server" \
            "redis-tools)" >&2
        exit 1
    fi
done

bench_build bench_publish "$@"

# Everything started here is stopped on exit, by its pid (bench_build's
# trap only removed $work).
pids=()
cleanup() {
    local status=$? pid
    if [[ $status -ne 0 && -s $work/redis.log ]]; then
        echo "$bench_prog: failed; redis-server's log ends with:" >&2
        tail -n 5 "$work/redis.log" >&2
    fi
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_redis
pids+=("$rpid")
rcli=(redis-cli -h 127.0.0.1 -p "$rport")

numsub() {
    "${rcli[@]}" pubsub numsub "$channel" | tail -n 1
}

# The external subscriber: every PUBLISH also goes out to it.
"${rcli[@]}" SUBSCRIBE "$channel" >/dev/null &
pids+=($!)
for _ in $(seq 50); do
    [[ $(numsub) == 1 ]] && break
    sleep 0.1
done
if [[ $(numsub) != 1 ]]; then
    echo "$bench_prog: the subscriber did not subscribe" >&2
    exit 1
fi

# The payload: the exact bytes bench_publish's adapter publishes.
node_id=$(cat /proc/sys/kernel/random/uuid)
payload=$("$bin" --print-envelope --node-id "$node_id" --size "$size")
payload_bytes=$(printf '%s' "$payload" | wc -c)

# redis-server's CPU time so far, in clock ticks (utime + stime).
redis_ticks() {
    awk '{ print $14 + $15 }' "/proc/$rpid/stat"
}
hz=$(getconf CLK_TCK)

# One record (JSON line) per run; REDIS_CPU_S and the run number added.
# $1: the record without its closing brace, $2: ticks before the run.
emit() {
    local t1 secs
    t1=$(redis_ticks)
    secs=$(awk -v a="$2" -v b="$t1" -v hz="$hz" \
        'BEGIN { printf "%.2f", (b - a) / hz }')
    printf '%s,"run":%d,"redis_cpu_s":%s}\n' "$1" "$run" "$secs" \
        >>"$work/publish.jsonl"
    if [[ $(numsub) != 1 ]]; then
        echo "$bench_prog: the external subscriber is gone" \
            "(numsub $(numsub))" >&2
        exit 1
    fi
}

# redis-benchmark --csv: "test","rps",... with the payload unescaped in
# test, so rps is the seventh field from the end.
redis_benchmark() {
    local clients=$1 t0 out rps fmt
    t0=$(redis_ticks)
    out=$(timeout 120 redis-benchmark -h 127.0.0.1 -p "$rport" \
        -c "$clients" -P "$window" -n "$n" -q --csv \
        PUBLISH "$channel" "$payload")
    rps=$(tail -n 1 <<<"$out" | awk -F'","' '{ print $(NF - 6) }')
    if ! [[ $rps =~ ^[0-9.]+$ ]]; then
        echo "$bench_prog: cannot read redis-benchmark's output:" >&2
        echo "$out" >&2
        exit 1
    fi
    fmt='{"impl":"redis-benchmark","clients":%d,"pipeline":%d,"n":%d,'
    fmt+='"envelope_bytes":%d,"publishes_per_sec":%s'
    # shellcheck disable=SC2059 # the format is ours
    emit "$(printf "$fmt" "$clients" "$window" "$n" "$payload_bytes" "$rps")" \
        "$t0"
}

bench_publish() {
    local w=$1 t0 out
    t0=$(redis_ticks)
    out=$(timeout $((max_seconds + 30)) "$bin" \
        --redis "redis://127.0.0.1:$rport" --n "$n" --size "$size" \
        --window "$w" --warmup "$warmup" \
        --max-seconds "$max_seconds" --node-id "$node_id")
    emit "${out%\}}" "$t0"
}

for run in $(seq "$runs"); do
    echo "$bench_prog: run $run of $runs (redis-benchmark -P $window," \
        "-c 1 -P $window, bench_publish --window $window and" \
        "$((50 * window)); $n publishes each) ..." >&2
    redis_benchmark 50
    redis_benchmark 1
    bench_publish "$window"
    bench_publish $((50 * window))
done

RC_BENCH_REDIS=$(redis-server --version)
RC_BENCH_KERNEL=$(uname -sr)
RC_BENCH_PUBLISH_PARAMS="$n $size $window $warmup $runs $max_seconds"
RC_BENCH_PAYLOAD=$payload
export RC_BENCH_REDIS RC_BENCH_KERNEL RC_BENCH_PUBLISH_PARAMS RC_BENCH_PAYLOAD
bench_report publish "$work/publish.jsonl" <<'EOF'
const bench = require(process.env.RC_BENCH_REPORT_LIB);
const [inFile, outFile] = process.argv.slice(2);
const records = bench.readJsonLines(inFile);
const [n, size, window, warmup, runs, maxSeconds] =
  process.env.RC_BENCH_PUBLISH_PARAMS.split(' ').map(Number);
const payload = process.env.RC_BENCH_PAYLOAD;
const envelopeBytes = Buffer.byteLength(payload);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]
    : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rb = (c) => (r) => r.impl === 'redis-benchmark' && r.clients === c;
const lib = (w) => (r) => r.impl === 'roomcast' && r.window === w;
const groups = [
  ['redis_benchmark', `redis-benchmark -P ${window}`, 50, window, rb(50)],
  ['redis_benchmark_c1', `redis-benchmark -c 1 -P ${window}`, 1, window,
    rb(1)],
  ['roomcast', `roomcast, bench_publish --window ${window}`, 1, window,
    lib(window)],
  ['roomcast_wide', `roomcast, bench_publish --window ${50 * window}`, 1,
    50 * window, lib(50 * window)],
];
if (records.some((r) => r.envelope_bytes !== envelopeBytes))
  throw new Error('bench_publish and redis-benchmark sent different sizes');

const summary = {};
for (const [key, label, conns, inFlight, pick] of groups) {
  const g = records.filter(pick);
  if (g.length === 0) throw new Error(`no ${key} records`);
  const rates = g.map((r) => r.publishes_per_sec);
  const s = {
    label, connections: conns, in_flight: inFlight, runs: g.length,
    publishes_per_sec: median(rates),
    min_publishes_per_sec: Math.min(...rates),
    max_publishes_per_sec: Math.max(...rates),
    // redis-server's CPU time per publish, from /proc/PID/stat (10 ms
    // ticks) over the whole run (bench_publish's warm-up included).
    redis_cpu_us_per_publish: median(g.map((r) => r.redis_cpu_s * 1e6 /
      (r.impl === 'roomcast' ? r.completed + r.warmup : r.n))),
  };
  if (g[0].impl === 'roomcast') {
    // user and sys of the run with the median CPU time, so that they add
    // up (the lower middle one for an even number of runs)
    const byCpu = [...g].sort((a, b) =>
      a.cpu_us_per_publish - b.cpu_us_per_publish);
    const mid = byCpu[Math.floor((byCpu.length - 1) / 2)];
    s.cpu_us_per_publish = mid.cpu_us_per_publish;
    s.user_us_per_publish = mid.user_us_per_publish;
    s.sys_us_per_publish = mid.sys_us_per_publish;
    s.timed_out_runs = g.filter((r) => r.timed_out).length;
  }
  summary[key] = s;
}
const over = (a, b) => summary[a].publishes_per_sec /
  summary[b].publishes_per_sec;
const ratios = {
  roomcast_over_redis_benchmark: over('roomcast', 'redis_benchmark'),
  roomcast_over_redis_benchmark_c1: over('roomcast', 'redis_benchmark_c1'),
  roomcast_wide_over_redis_benchmark: over('roomcast_wide',
    'redis_benchmark'),
};

const report = {
  benchmark: 'publish',
  method: {
    unit: 'publishes per second (wall clock), median of runs; ' +
      'CPU µs per publish = getrusage user + sys of bench_publish / ' +
      'publishes (timed part only), from the run with the median CPU',
    publishes_per_run: n, data_bytes: size, window, warmup, runs,
    max_seconds: maxSeconds, envelope_bytes: envelopeBytes, payload,
    redis: 'own redis-server on 127.0.0.1, --save "" --appendonly no; ' +
      'one external subscriber (redis-cli SUBSCRIBE sse:room:bench > ' +
      '/dev/null) throughout',
    roomcast: 'bench_publish: rc_adapter_open + rc_link_open (libevent), ' +
      'one local connection in room "bench" (so the adapter\'s sub ' +
      'context receives every publish back as an echo: two subscribers ' +
      'in all), rc_broadcast_to_room with at most --window publishes in ' +
      'flight on one connection',
    'redis-benchmark': `redis-benchmark -P ${window} -n ${n} (50 clients, ` +
      `its default) and -c 1 -P ${window}, PUBLISH sse:room:bench ` +
      '<the same envelope bytes>; one subscriber',
    order: 'each run: redis-benchmark -c 50, redis-benchmark -c 1, ' +
      `bench_publish --window ${window}, bench_publish --window ` +
      `${50 * window}`,
  },
  machine: bench.machine(['nproc', 'cpu', 'gcc', 'redis', 'kernel',
    'build_type', 'date']),
  summary,
  ratios,
  records,
};
bench.writeReport(outFile, report);

const int = (v) => Math.round(v).toLocaleString('en-US');
const us = (v) => v.toFixed(2);
const pct = (v) => `${(v * 100).toFixed(0)} %`;
const rows = [
  '| publisher | connections x in flight | publishes/s | min-max ' +
    `| / redis-benchmark -P ${window} ` +
    '| client CPU µs / publish (user + sys) ' +
    '| redis-server CPU µs / publish |',
  '|---|---|---:|---:|---:|---:|---:|',
];
for (const [key] of groups) {
  const s = summary[key];
  const cpu = s.cpu_us_per_publish === undefined ? '-'
    : `${us(s.cpu_us_per_publish)} (${us(s.user_us_per_publish)} + ` +
      `${us(s.sys_us_per_publish)})`;
  const ratio = pct(over(key, 'redis_benchmark'));
  rows.push(`| ${s.label} | ${s.connections} x ${s.in_flight} ` +
    `| ${int(s.publishes_per_sec)} | ${int(s.min_publishes_per_sec)}-` +
    `${int(s.max_publishes_per_sec)} | ${ratio} | ${cpu} ` +
    `| ${us(s.redis_cpu_us_per_publish)} |`);
}
rows.push('', `roomcast / redis-benchmark -P ${window}: ` +
  `${pct(ratios.roomcast_over_redis_benchmark)} at --window ${window} ` +
  `(${pct(ratios.roomcast_over_redis_benchmark_c1)} of -c 1 -P ${window}), ` +
  `${pct(ratios.roomcast_wide_over_redis_benchmark)} at --window ` +
  `${50 * window} (as many in flight as redis-benchmark's 50 clients).`);
const timedOut = summary.roomcast.timed_out_runs +
  summary.roomcast_wide.timed_out_runs;
if (timedOut > 0)
  rows.push('', `${timedOut} bench_publish run(s) stopped at ` +
    `--max-seconds ${maxSeconds}: their rate is over fewer publishes.`);
const m = report.machine;
bench.printTables(rows, m, `${m.redis.replace(/ sha=.*/, '')}; ` +
  `${m.kernel}; ${m.date}. Median of ${runs} runs of ${int(n)} ` +
  `publishes; data ${size} B, envelope ${envelopeBytes} B.`, outFile);
EOF

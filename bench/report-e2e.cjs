// Report of bench/run-e2e.sh: medians over runs per system, scenario and
// K; the ratio roomcast / reference pair by pair; a Markdown table on
// stdout; bench/results/e2e.json; and the data for bench/e2e.gp.
//
//   node report-e2e.cjs results.jsonl e2e.json plot.dat
'use strict';
const fs = require('node:fs');

const [inFile, outFile, plotFile] = process.argv.slice(2);
const records = fs.readFileSync(inFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const FIELDS = ['deliveries_per_s', 'lat_p50_us', 'lat_p99_us', 'lat_max_us', 'cpu_user_us_per_delivery',
  'cpu_sys_us_per_delivery', 'cpu_us_per_delivery', 'rss_kib', 'rss_per_conn_bytes', 'hello_s'];

const groups = new Map();
for (const r of records) {
  const key = `${r.label}|${r.scenario}|${r.conns}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push(r);
}
const medians = [];
for (const [key, rs] of groups) {
  const [label, scenario, conns] = key.split('|');
  const m = { label, scenario, conns: Number(conns), runs: rs.length, all_ok: rs.every((r) => r.ok !== false) };
  for (const f of FIELDS) if (rs.every((r) => typeof r[f] === 'number')) m[f] = median(rs.map((r) => r[f]));
  medians.push(m);
}
const get = (label, scenario, conns) => medians.find((m) => m.label === label && m.scenario === scenario && m.conns === conns);

const rows = [];
const row = (what, scenario, conns, field, unit, digits) => {
  const a = get('roomcast', scenario, conns);
  const b = get('reference', scenario, conns);
  if (!a || !b || a[field] === undefined || b[field] === undefined) return;
  const fmt = (v) => v.toFixed(digits);
  rows.push({ what, field, unit, roomcast: a[field], reference: b[field], ratio: b[field] ? a[field] / b[field] : null,
    line: `| ${what} | ${unit} | ${fmt(a[field])} | ${fmt(b[field])} | ${b[field] ? (a[field] / b[field]).toFixed(3) : '–'} |` });
};
for (const k of [100, 1000, 5000]) {
  row(`1. fan-out, K=${k}`, 'fanout', k, 'cpu_us_per_delivery', 'CPU µs / delivery', 3);
  row(`1. fan-out, K=${k}`, 'fanout', k, 'deliveries_per_s', 'deliveries / s', 0);
}
row('2. 200 msg/s, K=1000', 'rate', 1000, 'cpu_us_per_delivery', 'CPU µs / delivery', 3);
row('2. 200 msg/s, K=1000', 'rate', 1000, 'cpu_user_us_per_delivery', 'user µs / delivery', 3);
row('2. 200 msg/s, K=1000', 'rate', 1000, 'cpu_sys_us_per_delivery', 'system µs / delivery', 3);
row('2. 200 msg/s, K=1000', 'rate', 1000, 'lat_p50_us', 'latency p50, µs', 0);
row('2. 200 msg/s, K=1000', 'rate', 1000, 'lat_p99_us', 'latency p99, µs', 0);
row('3. 10,000 rooms × 1', 'rooms', 10000, 'cpu_us_per_delivery', 'CPU µs / delivery', 3);
row('3. 10,000 rooms × 1', 'rooms', 10000, 'deliveries_per_s', 'deliveries / s', 0);
row('4. POST on A → B, K=1000', 'e2e', 1000, 'deliveries_per_s', 'deliveries / s', 0);
row('4. POST on A → B, K=1000', 'e2e', 1000, 'cpu_us_per_delivery', 'CPU µs / delivery (B)', 3);
row('4. POST on A → B, K=1000', 'e2e', 1000, 'lat_p50_us', 'latency p50, µs', 0);
row('4. POST on A → B, K=1000', 'e2e', 1000, 'lat_p99_us', 'latency p99, µs', 0);
row('5. 10,000 idle streams', 'idle', 10000, 'rss_per_conn_bytes', 'RSS bytes / stream', 0);

const machine = {
  cpu: process.env.RC_BENCH_CPU, nproc: Number(process.env.RC_BENCH_NPROC), node: process.env.RC_BENCH_NODE,
  redis: process.env.RC_BENCH_REDIS, date: new Date().toISOString(),
};
fs.writeFileSync(outFile, `${JSON.stringify({ benchmark: 'e2e', machine, medians, table: rows.map(({ line, ...r }) => r), runs: records }, null, 1)}\n`);

const plot = [100, 1000, 5000].map((k) => {
  const a = get('roomcast', 'fanout', k) || {};
  const b = get('reference', 'fanout', k) || {};
  return [k, a.cpu_us_per_delivery, b.cpu_us_per_delivery, a.deliveries_per_s, b.deliveries_per_s].map((v) => v ?? 'NaN').join(' ');
});
fs.writeFileSync(plotFile, `# K rc_cpu ref_cpu rc_dps ref_dps\n${plot.join('\n')}\n`);

console.log(`Medians of ${Math.max(...medians.map((m) => m.runs))} runs; ${machine.nproc} cores (${machine.cpu}), Node ${machine.node}, ${machine.redis}.`);
console.log('Ratio = roomcast / reference (below 1: roomcast uses less, or is lower).\n');
console.log('| scenario | metric | roomcast | reference | ratio |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(r.line);
const bad = medians.filter((m) => !m.all_ok);
if (bad.length) console.log(`\nWARNING: runs with missed, duplicated or reordered deliveries: ${bad.map((m) => `${m.label}/${m.scenario}/${m.conns}`).join(', ')}`);

// Node side of the codec benchmark: times what the Node reference does per
// envelope, on the envelopes bench_codec wrote with --dump.
//
//   node bench/bench_codec.mjs DIR [--time-ms N] [--warmup-ms N] [--reps N]
//                                  [--max-iters N]
//
// For each DIR/envelope-SIZE.json:
//   decode = JSON.parse(envelopeText)
//   encode = JSON.stringify(envelopeObject)  (the reference builds the
//            envelope object and stringifies it)
// Same method as bench_codec.c: warm-up, then the median of --reps runs of
// --time-ms each (or --max-iters iterations, whichever comes first). One JSON
// line per (op, size) on stdout, with "impl":"node".
//
// Before timing, it checks that JSON.stringify(JSON.parse(x)) === x, i.e.
// that the C encoder's bytes are exactly the ones Node would send.
// No npm dependencies.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

function usage(code) {
  const out = code ? process.stderr : process.stdout;
  out.write('usage: node bench_codec.mjs DIR [--time-ms N] [--warmup-ms N] ' +
            '[--reps N] [--max-iters N]\n');
  process.exit(code);
}

const opts = { dir: null, timeMs: 500, warmupMs: 200, reps: 5, maxIters: 20e6 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const num = () => {
    const v = Number(argv[++i]);
    if (!Number.isSafeInteger(v) || v <= 0) {
      process.stderr.write(`bench_codec.mjs: ${a} wants a positive integer\n`);
      process.exit(2);
    }
    return v;
  };
  if (a === '--time-ms') opts.timeMs = num();
  else if (a === '--warmup-ms') opts.warmupMs = num();
  else if (a === '--reps') opts.reps = num();
  else if (a === '--max-iters') opts.maxIters = num();
  else if (a === '-h' || a === '--help') usage(0);
  else if (!a.startsWith('-') && opts.dir === null) opts.dir = a;
  else usage(2);
}
if (opts.dir === null) usage(2);

// Whatever the loops compute ends up here, so nothing is dead code.
let sink = 0;

function runBatch(c, op, n) {
  let acc = 0;
  if (op === 'encode') {
    const obj = c.obj;
    for (let i = 0; i < n; i++) acc += JSON.stringify(obj).length;
  } else {
    const text = c.text;
    for (let i = 0; i < n; i++) acc += JSON.parse(text).v;
  }
  sink = (sink + acc) % 1e15;
  return acc;
}

function measure(c, op) {
  const now = process.hrtime.bigint;
  // Grow the batch until one takes >= 100 us (as bench_codec.c does).
  let batch = 1;
  for (;;) {
    const t0 = now();
    runBatch(c, op, batch);
    const t1 = now();
    if (t1 - t0 >= 100000n || batch >= 2 ** 30) break;
    batch *= 2;
  }
  // Warm-up: lets V8 tier up the loop before anything is timed.
  const warmEnd = now() + BigInt(opts.warmupMs) * 1000000n;
  while (now() < warmEnd) runBatch(c, op, batch);

  const budget = BigInt(opts.timeMs) * 1000000n;
  const runs = [];
  for (let rep = 0; rep < opts.reps; rep++) {
    let n = 0;
    let t1;
    const t0 = now();
    do {
      runBatch(c, op, batch);
      n += batch;
      t1 = now();
    } while (t1 - t0 < budget && n < opts.maxIters);
    runs.push({ ns: Number(t1 - t0) / n, iters: n });
  }
  const sorted = runs.slice().sort((x, y) => x.ns - y.ns);
  const med = sorted[Math.floor(opts.reps / 2)];
  return {
    median: med.ns,
    iters: med.iters,
    min: sorted[0].ns,
    max: sorted[sorted.length - 1].ns,
  };
}

function firstDiff(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

const files = readdirSync(opts.dir)
  .map((f) => /^envelope-(\d+)\.json$/.exec(f))
  .filter(Boolean)
  .map((m) => ({ file: m[0], size: Number(m[1]) }))
  .sort((x, y) => x.size - y.size);
if (files.length === 0) {
  process.stderr.write(`bench_codec.mjs: no envelope-*.json in ${opts.dir}\n`);
  process.exit(1);
}

const cases = files.map(({ file, size }) => {
  const bytes = readFileSync(join(opts.dir, file));
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) {
    process.stderr.write(`bench_codec.mjs: ${file} is not valid UTF-8\n`);
    process.exit(1);
  }
  const obj = JSON.parse(text);
  const again = JSON.stringify(obj);
  if (again !== text) {
    const at = firstDiff(again, text);
    process.stderr.write(
      `bench_codec.mjs: ${file}: JSON.stringify(JSON.parse(x)) !== x ` +
      `at UTF-16 offset ${at}\n` +
      `  roomcast: ${JSON.stringify(text.slice(Math.max(0, at - 20), at + 20))}\n` +
      `  node:     ${JSON.stringify(again.slice(Math.max(0, at - 20), at + 20))}\n`);
    process.exit(1);
  }
  if (obj === null || typeof obj !== 'object' || obj.v !== 1 ||
      typeof obj.m !== 'object' || obj.m === null || !('data' in obj.m) ||
      JSON.stringify(obj.m.data).length === 0) {
    process.stderr.write(`bench_codec.mjs: ${file} is not an envelope\n`);
    process.exit(1);
  }
  return { size, text, obj, envelopeBytes: bytes.length };
});

for (const c of cases) {
  for (const op of ['encode', 'decode']) {
    const r = measure(c, op);
    process.stdout.write(JSON.stringify({
      impl: 'node',
      op,
      size: c.size,
      ns_per_op: Math.round(r.median * 10) / 10,
      iters: r.iters,
      reps: opts.reps,
      min_ns: Math.round(r.min * 10) / 10,
      max_ns: Math.round(r.max * 10) / 10,
      envelope_bytes: c.envelopeBytes,
    }) + '\n');
  }
}
if (sink === -1) process.stderr.write('unreachable\n');

// What the report steps of bench/run-*.sh share. Each script's report is a
// Node script on stdin, run by bench_report (bench/lib.sh), which passes
// this file's path in RC_BENCH_REPORT_LIB:
//
//   const bench = require(process.env.RC_BENCH_REPORT_LIB);
'use strict';

const fs = require('node:fs');

// The records of a JSON-lines file (one object a line, blank lines skipped).
const readJsonLines = (file) => fs.readFileSync(file, 'utf8').split('\n')
  .filter((l) => l.trim() !== '').map((l) => JSON.parse(l));

// The tunables (RC_BENCH_PARAMS) as fields of the report's method.
const timingMethod = () => {
  const [timeMs, warmupMs, reps, maxIters] =
    process.env.RC_BENCH_PARAMS.split(' ').map(Number);
  return {
    time_ms_per_run: timeMs, warmup_ms: warmupMs, reps,
    max_iters_per_run: maxIters,
  };
};

// The report's machine: for each key, in this order, RC_BENCH_<KEY> (nproc
// as a number).
const machine = (keys) => Object.fromEntries(keys.map((k) => {
  const v = process.env[`RC_BENCH_${k.toUpperCase()}`];
  return [k, k === 'nproc' ? Number(v) : v];
}));

const writeReport = (outFile, report) =>
  fs.writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n');

// The table rows, the machine line (ending in `about`) and the report's path.
const printTables = (rows, m, about, outFile) => {
  console.log(rows.join('\n'));
  console.log(`\n${m.cpu}, ${m.nproc} CPUs; ${m.gcc}, ${m.build_type}; ` +
    about);
  console.log(`Results: ${outFile}`);
};

module.exports = {
  readJsonLines, timingMethod, machine, writeReport, printTables,
};

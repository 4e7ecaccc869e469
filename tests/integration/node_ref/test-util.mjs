// Shared by the Node integration tests (node_ref's self-test,
// ../interop.test.mjs and ../chat/): a free loopback port, bounded waits,
// children killed when the tests end, a redis-server of their own, and a
// node driven by JSON lines.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// promise, or a rejection naming `what` after ms.
export function bounded(promise, ms, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

function pingRedis(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setTimeout(500);
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      sock.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    sock.on('error', () => resolve(false));
    sock.on('timeout', () => {
      sock.destroy();
      resolve(false);
    });
  });
}

// A just-spawned server says nothing when it is ready: ask every 50 ms.
export async function waitForRedis(port, ms) {
  const deadline = Date.now() + ms;
  while (!(await pingRedis(port))) {
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} not answering PING within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Every child still running when the test process exits is SIGKILLed, so a
// failed `before` or a crashed test never leaves servers behind. A signal
// (the runner's timeout, ^C) would skip 'exit' handlers: kill them first,
// then die of the same signal.
const children = new Set();
function killChildren() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', killChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killChildren();
    process.kill(process.pid, sig);
  });
}

// Spawn a child, track it, and expose an `exited` promise ({code, signal}).
export function spawnTracked(cmd, argv, opts) {
  const proc = spawn(cmd, argv, opts);
  children.add(proc);
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      children.delete(proc);
      resolve({ code, signal });
    });
    // spawn failure (ENOENT...): 'exit' may never come.
    proc.on('error', (err) => {
      children.delete(proc);
      resolve({ code: null, signal: null, error: err });
    });
  });
  return { proc, exited };
}

// SIGKILL and wait (bounded: a SIGKILLed process always goes).
export async function killAndWait(proc, exited) {
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  return bounded(exited, 10000, `pid ${proc.pid} to exit after SIGKILL`);
}

// Cluster mode (opt-in, RC_TEST_REDIS_CLUSTER=1, as the C harness): each
// redis-server runs with --cluster-enabled yes and owns all 16384 slots.
// One node owning every slot never answers MOVED, so clients work
// unchanged, but Redis holds scripts to the keys of one slot.
export const REDIS_CLUSTER = process.env.RC_TEST_REDIS_CLUSTER === '1';

// The extra redis-server arguments of cluster mode ([] otherwise): its
// nodes.conf in dir (a fresh temporary directory when not given; kept by
// a restart in the same dir) and a bus port of its own (the default,
// port + 10000, does not exist above 55535).
export async function clusterArgs(dir) {
  if (!REDIS_CLUSTER) return { args: [], dir: undefined };
  const d = dir ?? mkdtempSync(join(tmpdir(), 'rc-cluster-'));
  const args = ['--cluster-enabled', 'yes', '--cluster-config-file', join(d, 'nodes.conf')];
  args.push('--cluster-port', String(await freePort()));
  return { args, dir: dir ? undefined : d };
}

// Cluster mode: the server on port gets every slot (CLUSTER ADDSLOTSRANGE
// through redis-cli, unless its nodes.conf kept them) and says
// cluster_state:ok, within ms. Nothing to do otherwise.
export async function clusterUp(port, ms = 10000) {
  if (!REDIS_CLUSTER) return;
  const cli = process.env.REDIS_CLI || 'redis-cli';
  const run = (...a) => spawnSync(cli, ['-h', '127.0.0.1', '-p', String(port), ...a], { encoding: 'utf8' });
  const deadline = Date.now() + ms;
  for (;;) {
    const info = run('CLUSTER', 'INFO').stdout || '';
    if (/cluster_state:ok/.test(info)) return;
    if (!/cluster_slots_assigned:16384/.test(info)) run('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    if (Date.now() > deadline) {
      throw new Error(`redis-server on ${port}: no cluster_state:ok within ${ms} ms (${info.split('\n')[0] || `${cli} failed`})`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

// A redis-server of its own on a free loopback port, without persistence,
// answering PING (and, in cluster mode, owning every slot): { port, url,
// proc, log(), stop() }. Its output is shown only if it fails to start.
export async function startRedis(server = process.env.REDIS_SERVER || 'redis-server', port = undefined) {
  port ??= await freePort();
  const cluster = await clusterArgs();
  const { proc, exited } = spawnTracked(
    server,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...cluster.args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const cleanup = () => cluster.dir && rmSync(cluster.dir, { recursive: true, force: true });
  exited.then(cleanup);
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  try {
    await Promise.race([
      waitForRedis(port, 10000),
      exited.then((e) => {
        throw new Error(`redis-server exited early (${JSON.stringify(e)})`);
      }),
    ]);
    await clusterUp(port);
  } catch (err) {
    await killAndWait(proc, exited).catch(() => {});
    throw new Error(`${err.message}\n--- redis-server output ---\n${log}`);
  }
  return { port, url: `redis://127.0.0.1:${port}`, proc, log: () => log, stop: () => killAndWait(proc, exited) };
}

// A node (ref-node.mjs or c_node) as a child process speaking the JSON-lines
// protocol of node_ref/README.md: commands on stdin, stdout lines parsed as
// JSON into `lines` (a line that is not JSON becomes {unparsed: line}).
// Waits are bounded by waitMs and name the node's stderr on failure.
export class JsonLinesNode {
  constructor(name, cmd, args, waitMs) {
    this.name = name;
    this.waitMs = waitMs;
    this.lines = [];
    this.stderr = '';
    this.waiters = new Set();
    const { proc, exited } = spawnTracked(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = proc;
    this.exited = exited.then((e) => {
      if (e.error) this.stderr += `spawn error: ${e.error.message}\n`;
      return { code: e.code, signal: e.signal };
    });
    this.child.stderr.on('data', (d) => {
      this.stderr += d;
    });
    this.child.stdin.on('error', () => {});
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      let obj;
      try {
        obj = JSON.parse(line);
      } catch {
        obj = { unparsed: line };
      }
      this.lines.push(obj);
      for (const w of [...this.waiters]) w();
    });
  }

  send(cmd) {
    this.child.stdin.write(typeof cmd === 'string' ? `${cmd}\n` : `${JSON.stringify(cmd)}\n`);
  }

  // The first line from index `from` on that matches.
  waitFor(pred, what, from = 0) {
    const find = () => this.lines.slice(from).find(pred);
    const hit = find();
    if (hit) return Promise.resolve(hit);
    let waiter;
    const p = new Promise((resolve) => {
      waiter = () => {
        const h = find();
        if (h) resolve(h);
      };
      this.waiters.add(waiter);
    });
    return bounded(p, this.waitMs, `${this.name}: ${what} (stderr: ${this.stderr.trim() || 'empty'})`).finally(() =>
      this.waiters.delete(waiter),
    );
  }

  // Sends a command and returns its answer (the next ok/error line).
  async answer(cmd) {
    const from = this.lines.length;
    this.send(cmd);
    return this.waitFor((l) => 'ok' in l || 'error' in l, `answer to ${JSON.stringify(cmd)}`, from);
  }

  // The same, and the answer must not be an error.
  async command(cmd) {
    const a = await this.answer(cmd);
    assert.ok(!('error' in a), `${this.name}: ${JSON.stringify(cmd)} failed: ${a.error}`);
    return a;
  }

  messages(pred = () => true) {
    return this.lines.filter((l) => l.event === 'message' && pred(l));
  }

  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

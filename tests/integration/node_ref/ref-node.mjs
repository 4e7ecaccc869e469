#!/usr/bin/env node
// A reference node: the real RedisAdapter of @opinionated-machine/sse-rooms-redis
// on two ioredis connections, driven by newline-delimited JSON on stdin and
// reporting newline-delimited JSON on stdout. Diagnostics go to stderr.
// Protocol: README.md in this folder.
//
//   node ref-node.mjs --redis redis://127.0.0.1:PORT --node-id ID [--prefix P]

import { createRequire } from 'node:module';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parseArgs as utilParseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { redisReady } from './redis-ready.mjs';
import { sseFrame } from './sse-frame.mjs';

const CONNECT_LIMIT_MS = 5000;
const QUIT_LIMIT_MS = 1500;

function usage(text) {
  process.stderr.write(`ref-node: ${text}\n`);
  process.stderr.write('usage: node ref-node.mjs --redis redis://HOST:PORT --node-id ID [--prefix P]\n');
  process.exit(2);
}

function parseArgs(argv) {
  let opts;
  try {
    const { values } = utilParseArgs({
      args: argv,
      options: { redis: { type: 'string' }, 'node-id': { type: 'string' }, prefix: { type: 'string' } },
    });
    opts = { redis: values.redis, nodeId: values['node-id'], prefix: values.prefix };
  } catch (err) {
    usage(err.message);
  }
  if (!opts.redis) usage('--redis is required');
  if (!opts.nodeId) usage('--node-id is required');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function diag(text) {
  process.stderr.write(`ref-node[${opts.nodeId}]: ${text}\n`);
}

// One JSON object per line on stdout. If the reader has gone away, exit.
process.stdout.on('error', () => process.exit(1));
function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// The package's index also loads eventIdSequence.js, which needs a peer
// (opinionated-machine >= 10.1.0) that is not installed, and its "exports"
// map forbids importing dist/RedisAdapter.js by specifier: load it by path.
const require = createRequire(import.meta.url);
const pkgDir = path.dirname(require.resolve('@opinionated-machine/sse-rooms-redis/package.json'));
const { RedisAdapter } = await import(pathToFileURL(path.join(pkgDir, 'dist', 'RedisAdapter.js')).href);

// Until both connections are ready, retry only within the connect limit;
// afterwards, reconnect like ioredis normally does.
const startedAt = Date.now();
let connected = false;
function retryStrategy(times) {
  if (connected) return Math.min(times * 50, 1000);
  return Date.now() - startedAt < CONNECT_LIMIT_MS ? 100 : null;
}
const clientOpts = {
  retryStrategy,
  connectTimeout: CONNECT_LIMIT_MS,
  maxRetriesPerRequest: 1,
  lazyConnect: true,
};
const pub = new Redis(opts.redis, { ...clientOpts, connectionName: `ref-node-${opts.nodeId}-pub` });
const sub = new Redis(opts.redis, { ...clientOpts, connectionName: `ref-node-${opts.nodeId}-sub` });
for (const [name, client] of [['pub', pub], ['sub', sub]]) {
  // Reconnect attempts repeat the same error: report it once until it changes.
  let last = '';
  client.on('error', (err) => {
    if (err.message !== last) diag(`${name}: ${err.message}`);
    last = err.message;
  });
  client.on('ready', () => {
    last = '';
  });
}

// RedisAdapter.publish() resolves to nothing. The pub client handed to it is
// a thin wrapper that forwards PUBLISH unchanged and keeps Redis's reply (the
// number of subscribed connections that got it), so the answer can carry it.
// Commands run one at a time, so the kept count belongs to the current one.
let lastReceivers = null;
const pubForAdapter = {
  async publish(channel, text) {
    lastReceivers = await pub.publish(channel, text);
    return lastReceivers;
  },
};

const adapter = new RedisAdapter({
  pubClient: pubForAdapter,
  subClient: sub,
  nodeId: opts.nodeId,
  ...(opts.prefix !== undefined ? { channelPrefix: opts.prefix } : {}),
});

adapter.onMessage((room, message, node, meta) => {
  let sse = null;
  try {
    sse = sseFrame(message);
  } catch (err) {
    diag(`cannot frame message for room ${room}: ${err.message}`);
  }
  // Keys whose value is undefined (no meta in the envelope) are left out.
  emit({ event: 'message', room, message, node, meta, sse });
});

let quitting = false;
async function shutdown(code) {
  if (quitting) return;
  quitting = true;
  // Whatever happens below, do not outlive this.
  setTimeout(() => process.exit(code), QUIT_LIMIT_MS * 2).unref();
  const bounded = (p) =>
    Promise.race([p, new Promise((resolve) => setTimeout(resolve, QUIT_LIMIT_MS).unref())]).catch((err) =>
      diag(`while quitting: ${err.message}`),
    );
  if (connected) {
    await bounded(adapter.disconnect());
    await bounded(Promise.all([pub.quit(), sub.quit()]));
  }
  pub.disconnect();
  sub.disconnect();
  process.exit(code);
}

try {
  await redisReady([pub, sub], CONNECT_LIMIT_MS);
  await adapter.connect();
  connected = true;
} catch (err) {
  diag(`cannot reach Redis at ${opts.redis}: ${err.message}`);
  pub.disconnect();
  sub.disconnect();
  process.exit(1);
}

function requireRoom(cmd) {
  if (typeof cmd.room !== 'string') throw new Error('"room" must be a string');
  return cmd.room;
}

async function run(cmd) {
  switch (cmd.op) {
    case 'subscribe': {
      const room = requireRoom(cmd);
      await adapter.subscribe(room);
      return { ok: 'subscribe', room };
    }
    case 'unsubscribe': {
      const room = requireRoom(cmd);
      await adapter.unsubscribe(room);
      return { ok: 'unsubscribe', room };
    }
    case 'publish': {
      const room = requireRoom(cmd);
      if (cmd.message === undefined) throw new Error('"message" is required');
      lastReceivers = null;
      await adapter.publish(room, cmd.message, cmd.meta);
      return { ok: 'publish', room, receivers: lastReceivers };
    }
    case 'ping':
      return { ok: 'ping' };
    default:
      throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
  }
}

async function handleLine(line) {
  if (quitting || line.trim() === '') return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    diag(`bad command line: ${err.message}`);
    emit({ error: `bad JSON: ${err.message}` });
    return;
  }
  if (cmd === null || typeof cmd !== 'object') {
    emit({ error: 'command must be a JSON object' });
    return;
  }
  if (cmd.op === 'quit') {
    emit({ ok: 'quit' });
    await shutdown(0);
    return;
  }
  try {
    emit(await run(cmd));
  } catch (err) {
    diag(`${cmd.op}: ${err.message}`);
    emit({ error: err.message, op: cmd.op ?? null });
  }
}

emit({ ready: true, node: opts.nodeId });

// Commands run strictly in order; answers come in the same order.
let queue = Promise.resolve();
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  queue = queue.then(() => handleLine(line));
});
// End of input means quit (after the commands already read).
lines.on('close', () => {
  queue = queue.then(() => shutdown(0));
});
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));

#!/usr/bin/env node
// ref-server: the subset of rc-chat's HTTP contract (examples/chat/README.md) that the benchmarks use:
// GET /rooms/{room}/events, POST /rooms/{room}/messages, GET /health. It runs on node:http and the real
// Node reference: RedisAdapter of @opinionated-machine/sse-rooms-redis@2.0.0 (dist/RedisAdapter.js,
// loaded by path) on two ioredis@6.0.0 connections, both from tests/integration/node_ref/node_modules.
// The package ships only the adapter. Its room manager, broadcaster and SSE writer are in
// opinionated-machine and @fastify/sse, which are not installed, so RoomManager, Broadcaster and
// sendEvent below restate SSERoomManager, SSERoomBroadcaster and AbstractSSEController.sendEvent
// (which calls SSEContext.send). They drop the node's own echoes by node id, de-duplicate remote
// messages per stream by id, format the frame per recipient (../tests/integration/node_ref/sse-frame.mjs),
// and res.write() it, waiting for 'drain' when that returns false.
//   node bench/ref-server.mjs --port N --redis redis://127.0.0.1:P --node-id ID [--prefix sse:room:] [--heartbeat-ms 15000]

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs as utilParseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const refDir = path.join(here, '..', 'tests', 'integration', 'node_ref');
const require = createRequire(path.join(refDir, 'package.json'));
const { Redis } = require('ioredis');
// The package's "exports" map allows only its index, which also loads eventIdSequence.js and so the
// missing peer opinionated-machine: load the adapter by path (as ref-node.mjs does).
const pkgDir = path.dirname(require.resolve('@opinionated-machine/sse-rooms-redis/package.json'));
const { RedisAdapter } = await import(pathToFileURL(path.join(pkgDir, 'dist', 'RedisAdapter.js')).href);
const { sseFrame } = await import(pathToFileURL(path.join(refDir, 'sse-frame.mjs')).href);
const { redisReady } = await import(pathToFileURL(path.join(refDir, 'redis-ready.mjs')).href);

const CONNECT_LIMIT_MS = 5000;
const QUIT_LIMIT_MS = 1500;
const BODY_MAX = 1024 * 1024 + 64 * 1024;
const ROOM_MAX = 200;
const MAX_DEDUP_CACHE_SIZE = 1000; // SSERoomBroadcaster's

// ---- arguments -------------------------------------------------------------------------------

function usage(text) {
  process.stderr.write(`ref-server: ${text}\n`);
  process.stderr.write(
    'usage: node bench/ref-server.mjs --port N --redis redis://HOST:PORT [--node-id ID] [--prefix P] [--heartbeat-ms MS]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  let opts;
  try {
    const { values: v } = utilParseArgs({
      args: argv,
      options: {
        port: { type: 'string', default: '8080' },
        redis: { type: 'string' },
        'node-id': { type: 'string' },
        prefix: { type: 'string', default: 'sse:room:' },
        'heartbeat-ms': { type: 'string', default: '15000' },
      },
    });
    opts = { port: v.port, redis: v.redis, nodeId: v['node-id'], prefix: v.prefix, heartbeatMs: v['heartbeat-ms'] };
  } catch (err) {
    usage(err.message);
  }
  if (!opts.redis) usage('--redis is required');
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`bad --port ${JSON.stringify(opts.port)}`);
  const heartbeatMs = Number(opts.heartbeatMs);
  if (!Number.isInteger(heartbeatMs) || heartbeatMs <= 0) usage(`bad --heartbeat-ms ${JSON.stringify(opts.heartbeatMs)}`);
  return { ...opts, port, heartbeatMs, nodeId: opts.nodeId || randomUUID() };
}

const opts = parseArgs(process.argv.slice(2));

function diag(text) {
  process.stderr.write(`ref-server: ${text}\n`);
}

// ---- Redis and the reference adapter ---------------------------------------------------------

const startedAt = Date.now();
let connected = false;
function retryStrategy(times) {
  if (connected) return Math.min(times * 50, 1000);
  return Date.now() - startedAt < CONNECT_LIMIT_MS ? 100 : null;
}
const clientOpts = { retryStrategy, connectTimeout: CONNECT_LIMIT_MS, lazyConnect: true };
// pub: a failed PUBLISH fails the POST's publish quickly. sub: SUBSCRIBE waits for the link, so a
// stream's hello comes when Redis is back (as in rc-chat).
const pub = new Redis(opts.redis, { ...clientOpts, maxRetriesPerRequest: 1, connectionName: `ref-server-${opts.nodeId}-pub` });
const sub = new Redis(opts.redis, { ...clientOpts, maxRetriesPerRequest: null, connectionName: `ref-server-${opts.nodeId}-sub` });
for (const [name, client] of [['pub', pub], ['sub', sub]]) {
  let last = '';
  client.on('error', (err) => {
    if (err.message !== last) diag(`redis ${name}: ${err.message}`);
    last = err.message;
  });
  client.on('ready', () => {
    last = '';
  });
}

const adapter = new RedisAdapter({ pubClient: pub, subClient: sub, nodeId: opts.nodeId, channelPrefix: opts.prefix });

// ---- SSERoomManager (opinionated-machine lib/sse/rooms/SSERoomManager.ts) -------------------------
// Local room map; SUBSCRIBE on the first member, UNSUBSCRIBE after the last; drops its own node's
// messages coming back from Redis (the adapter itself does not). Unlike the reference, join() returns
// a promise of the room's confirmed SUBSCRIBE (the reference fires it and forgets), and a room's
// SUBSCRIBE/UNSUBSCRIBE calls are chained: the adapter keeps a channel in its set until UNSUBSCRIBE
// is confirmed, so a join during that window would otherwise find the room "subscribed" and then lose it.

class RoomManager {
  constructor(roomAdapter, nodeId) {
    this.adapter = roomAdapter;
    this.nodeId = nodeId;
    this.rooms = new Map(); // room -> { conns: Set<conn>, chain: Promise }
    this.messageHandler = undefined;
    this.adapter.onMessage((room, message, sourceNodeId, metadata) => {
      if (sourceNodeId === this.nodeId) return undefined; // our own publish: handled locally
      return this.messageHandler?.(room, message, sourceNodeId, metadata);
    });
  }

  connect() {
    return this.adapter.connect();
  }

  disconnect() {
    return this.adapter.disconnect();
  }

  onRemoteMessage(handler) {
    this.messageHandler = handler;
  }

  join(conn, room) {
    let r = this.rooms.get(room);
    if (!r) {
      r = { conns: new Set(), chain: Promise.resolve() };
      this.rooms.set(room, r);
    }
    const wasEmpty = r.conns.size === 0;
    r.conns.add(conn);
    if (wasEmpty) r.chain = r.chain.catch(() => {}).then(() => this.adapter.subscribe(room));
    return r.chain;
  }

  leave(conn, room) {
    const r = this.rooms.get(room);
    if (!r || !r.conns.delete(conn) || r.conns.size > 0) return;
    const p = r.chain
      .catch(() => {})
      .then(() => this.adapter.unsubscribe(room))
      .catch((err) => diag(`unsubscribe ${room}: ${err.message}`))
      .then(() => {
        if (r.chain === p && r.conns.size === 0 && this.rooms.get(room) === r) this.rooms.delete(room);
      });
    r.chain = p;
  }

  getConnectionsInRoom(room) {
    const r = this.rooms.get(room);
    return r ? Array.from(r.conns) : [];
  }

  publish(room, message, metadata) {
    return this.adapter.publish(room, message, metadata);
  }
}

// ---- AbstractSSEController.sendEvent + @fastify/sse SSEContext.send/writeToStream ---------------
// Formats the message for this one connection (formatSSEMessage with JSON.stringify) and writes it;
// when res.write() says the buffer is full, waits for 'drain' (or 'close'/'error') before resolving.

function writeToStream(conn, data) {
  return new Promise((resolve, reject) => {
    if (conn.closed) {
      reject(new Error('SSE connection is closed'));
      return;
    }
    const res = conn.res;
    if (res.write(data)) {
      resolve();
      return;
    }
    const done = () => {
      res.off('drain', done);
      res.off('error', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('error', done);
    res.once('close', done);
  });
}

async function sendEvent(conn, message) {
  if (conn.closed) return false;
  try {
    const frame = sseFrame({ data: message.data, event: message.event, id: message.id, retry: message.retry });
    if (frame === null) throw new TypeError('message cannot be framed');
    await writeToStream(conn, frame);
    return true;
  } catch {
    return false;
  }
}

// ---- SSERoomBroadcaster (opinionated-machine lib/sse/rooms/SSERoomBroadcaster.ts) ---------------
// Local delivery first, one awaited send per connection, then PUBLISH; remote messages go to the
// room's local connections, de-duplicated per connection by message id. The pre-delivery filter is
// where this server's rules go: nothing before a stream's hello, nothing to the "except" connection
// (carried to other nodes in the adapter's metadata as {"except":CONN}).

function allowed(conn, metadata) {
  return conn.ready && (metadata === undefined || metadata.except !== conn.id);
}

class Broadcaster {
  constructor(roomManager) {
    this.roomManager = roomManager;
    this.dedupCache = new Map(); // connection id -> Set of message ids
    roomManager.onRemoteMessage((room, message, _sourceNodeId, metadata) =>
      this.handleRemoteBroadcast(room, message, metadata),
    );
  }

  async broadcastMessage(room, message, metadata) {
    let delivered = 0;
    for (const conn of this.roomManager.getConnectionsInRoom(room)) {
      if (!allowed(conn, metadata)) continue;
      if (await sendEvent(conn, message)) delivered++;
    }
    try {
      await this.roomManager.publish(room, message, metadata);
    } catch (err) {
      diag(`publish to ${room}: ${err.message}`);
    }
    return delivered;
  }

  cleanupConnection(id) {
    this.dedupCache.delete(id);
  }

  async handleRemoteBroadcast(room, message, metadata) {
    if (message === null || typeof message !== 'object') return;
    for (const conn of this.roomManager.getConnectionsInRoom(room)) {
      if (this.isDuplicateMessage(conn.id, message.id)) continue;
      if (!allowed(conn, metadata)) continue;
      await sendEvent(conn, message);
    }
  }

  isDuplicateMessage(connectionId, messageId) {
    if (!messageId) return false;
    let cache = this.dedupCache.get(connectionId);
    if (!cache) {
      cache = new Set();
      this.dedupCache.set(connectionId, cache);
    }
    if (cache.has(messageId)) return true;
    if (cache.size >= MAX_DEDUP_CACHE_SIZE) cache.delete(cache.values().next().value);
    cache.add(messageId);
    return false;
  }
}

const rooms = new RoomManager(adapter, opts.nodeId);
const broadcaster = new Broadcaster(rooms);

// ---- HTTP ------------------------------------------------------------------------------------

const streams = new Set();
let stopping = false;

function reply(req, res, code, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function replyError(req, res, code, text, headers) {
  reply(req, res, code, { error: text }, headers);
}

// The room from its percent-encoded path segment, or null: 1 to 200 bytes of UTF-8 without
// control characters.
function decodeRoom(seg) {
  let room;
  try {
    room = decodeURIComponent(seg);
  } catch {
    return null;
  }
  const n = Buffer.byteLength(room);
  if (n < 1 || n > ROOM_MAX || /[\u0000-\u001f\u007f]/.test(room)) return null;
  return room;
}

function openStream(req, res, room) {
  const conn = { id: randomUUID(), room, res, ready: false, closed: false, heartbeat: null };
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  // @fastify/sse: one interval per stream, from the moment the headers are out.
  conn.heartbeat = setInterval(() => {
    if (!conn.closed) res.write(': ping\n\n');
  }, opts.heartbeatMs);
  conn.heartbeat.unref();
  streams.add(conn);
  const end = () => {
    if (conn.closed) return;
    conn.closed = true;
    clearInterval(conn.heartbeat);
    streams.delete(conn);
    broadcaster.cleanupConnection(conn.id);
    if (!stopping) rooms.leave(conn, room);
  };
  res.on('close', end);
  res.on('error', end);
  rooms.join(conn, room).then(
    () => {
      if (conn.closed) return;
      conn.ready = true;
      sendEvent(conn, { event: 'rc:hello', data: { connection: conn.id, node: opts.nodeId, room } });
    },
    (err) => {
      diag(`cannot join room ${room}: ${err.message}`);
      res.end();
      end();
    },
  );
}

function postMessage(req, res, room) {
  const chunks = [];
  let size = 0;
  let over = false;
  req.on('data', (chunk) => {
    if (over) return;
    size += chunk.length;
    if (size > BODY_MAX) {
      over = true;
      chunks.length = 0;
      replyError(req, res, 413, `body over ${BODY_MAX} bytes`, { Connection: 'close' }); // node closes after it
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (over) return;
    handleBody(req, res, room, Buffer.concat(chunks, size).toString('utf8')).catch((err) => {
      diag(`POST ${room}: ${err.message}`);
      if (!res.headersSent) replyError(req, res, 500, err.message);
    });
  });
}

const badText = (s, re) => s !== undefined && (typeof s !== 'string' || re.test(s));

async function handleBody(req, res, room, text) {
  if (text.length === 0) return replyError(req, res, 400, 'empty body: expected a JSON object');
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return replyError(req, res, 400, 'body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return replyError(req, res, 400, 'body is not a JSON object');
  }
  const { event, data, id, except } = body;
  if (data === undefined) return replyError(req, res, 400, '"data" is required');
  if (badText(event, /[\r\n\0]/)) return replyError(req, res, 400, '"event" must be a string without CR, LF or NUL');
  if (badText(id, /[\r\n\0]/)) return replyError(req, res, 400, '"id" must be a string without CR, LF or NUL');
  if (badText(except, /\0/)) return replyError(req, res, 400, '"except" must be a string without NUL');
  // Key order as rc-chat publishes it: {"event":E,"data":D,"id":I} (absent keys left out).
  const message = {};
  if (event !== undefined) message.event = event;
  message.data = data;
  if (id !== undefined) message.id = id;
  const delivered = await broadcaster.broadcastMessage(room, message, except !== undefined ? { except } : undefined);
  return reply(req, res, 202, { delivered });
}

function onRequest(req, res) {
  if (stopping) return replyError(req, res, 503, 'shutting down');
  const url = req.url ?? '';
  const n = url.search(/[?#]/);
  const p = n < 0 ? url : url.slice(0, n);
  const get = req.method === 'GET' || req.method === 'HEAD';
  if (p === '/health') {
    if (!get) return replyError(req, res, 405, 'method not allowed (allowed: GET, HEAD)', { Allow: 'GET, HEAD' });
    const up = pub.status === 'ready' && sub.status === 'ready';
    return reply(req, res, 200, { status: 'ok', redis: up ? 'up' : 'down' });
  }
  const m = /^\/rooms\/([^/]*)\/(events|messages)$/.exec(p);
  if (!m) return replyError(req, res, 404, 'not found');
  if (m[2] === 'events' && req.method !== 'GET') {
    return replyError(req, res, 405, 'method not allowed (allowed: GET)', { Allow: 'GET' });
  }
  if (m[2] === 'messages' && req.method !== 'POST') {
    return replyError(req, res, 405, 'method not allowed (allowed: POST)', { Allow: 'POST' });
  }
  const room = decodeRoom(m[1]);
  if (room === null) {
    return replyError(
      req,
      res,
      400,
      `bad room name: 1 to ${ROOM_MAX} bytes of UTF-8 without control characters, percent-encoded`,
    );
  }
  if (m[2] === 'events') return openStream(req, res, room);
  return postMessage(req, res, room);
}

const server = http.createServer(onRequest);
server.on('clientError', (err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  else socket.destroy();
});

// ---- start and stop --------------------------------------------------------------------------

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(code), QUIT_LIMIT_MS * 2).unref();
  const bounded = (p) =>
    Promise.race([p, new Promise((resolve) => setTimeout(resolve, QUIT_LIMIT_MS).unref())]).catch((err) =>
      diag(`while stopping: ${err.message}`),
    );
  server.close();
  for (const conn of Array.from(streams)) conn.res.end();
  server.closeAllConnections();
  if (connected) {
    await bounded(rooms.disconnect()); // UNSUBSCRIBE from every room
    await bounded(Promise.all([pub.quit(), sub.quit()]));
  }
  pub.disconnect();
  sub.disconnect();
  process.exit(code);
}
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));

try {
  await redisReady([pub, sub], CONNECT_LIMIT_MS);
  await rooms.connect();
  connected = true;
} catch (err) {
  diag(`cannot reach Redis at ${opts.redis}: ${err.message}`);
  pub.disconnect();
  sub.disconnect();
  process.exit(1);
}

server.on('error', (err) => {
  diag(`cannot listen on 127.0.0.1:${opts.port}: ${err.message}`);
  pub.disconnect();
  sub.disconnect();
  process.exit(1);
});
server.listen(opts.port, '127.0.0.1', () => {
  const { port } = server.address();
  diag(`node ${opts.nodeId} listening on http://127.0.0.1:${port}/ (redis: ${opts.redis})`);
});

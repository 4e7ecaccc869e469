// Shared harness of the rc-chat integration tests: a redis-server of the
// test's own, rc-chat nodes as child processes, a raw SSE reader (bytes, not
// EventSource), one-shot HTTP requests, a minimal RESP client and /proc
// probes. Every wait is bounded and names what it waited for.
//
//   RC_CHAT=/abs/path/rc-chat node --test
//
// Interface (used by several test files; keep it stable):
//   startRedis() -> { port, stop() }
//   startNode({ redisPort, redisUrl, nodeId, args, env, ulimitNofile })
//     -> { port, url, proc, nodeId, stderr, waitForLog(re, ms), dump(), stop(signal), kill() }
//   openStream(url, { headers }) -> SSE reader (see below)
//   request(base, method, path, { body, headers, raw }) -> { status, headers, text, json, body }
//   redisCmd(port, ...args) -> reply
//   rssKiB(pid), cpuTicks(pid)
// Extras: metrics(base), roomUrl(base, room, suffix), uniqueRoom(tag),
//   postMessage(base, room, msg), until(fn, ms, what), RC_CHAT, REDIS_SERVER.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { bounded, freePort, killAndWait, spawnTracked, startRedis, waitForRedis } from '../node_ref/test-util.mjs';

export { bounded, freePort, startRedis, waitForRedis };

export const RC_CHAT = process.env.RC_CHAT;
export const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';

// ---------------------------------------------------------------- rc-chat nodes

export async function startNode({ redisPort, redisUrl, nodeId, args = [], env = {}, ulimitNofile } = {}) {
  if (!RC_CHAT) throw new Error('RC_CHAT (absolute path of the rc-chat binary) is not set');
  const argv = ['--port', '0', '--bind', '127.0.0.1'];
  if (redisUrl) argv.push('--redis', redisUrl);
  else if (redisPort) argv.push('--redis', `redis://127.0.0.1:${redisPort}`);
  if (nodeId) argv.push('--node-id', nodeId);
  // The suites post faster than a client may: no POST limit unless a
  // test asks for one.
  if (!args.includes('--post-rate')) argv.push('--post-rate', '0');
  // History (on by default in rc-chat) changes ids and POSTed ids: the
  // suites written before it run without it; history.test.mjs (and any
  // test passing --history) turns it on.
  if (!args.some((a) => a === '--history' || a.startsWith('--history='))) argv.push('--history', '0');
  argv.push(...args);
  // Clear the environment variables the server reads so the parent's never leak in.
  const childEnv = { ...process.env, PORT: '', BIND: '', REDIS_URL: '', NODE_ID: '', ...env };
  for (const k of ['PORT', 'BIND', 'REDIS_URL', 'NODE_ID']) if (childEnv[k] === '') delete childEnv[k];
  const [cmd, cmdArgs] = ulimitNofile
    ? ['sh', ['-c', `ulimit -n ${Number(ulimitNofile)} && exec "$0" "$@"`, RC_CHAT, ...argv]]
    : [RC_CHAT, argv];
  const { proc, exited } = spawnTracked(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });

  // stderr (and stdout, prefixed) as lines; log waiters see every new line.
  const stderr = [];
  const waiters = new Set();
  const onLine = (line) => {
    stderr.push(line);
    for (const w of waiters) w(line);
  };
  createInterface({ input: proc.stderr }).on('line', onLine);
  createInterface({ input: proc.stdout }).on('line', (l) => onLine(`[stdout] ${l}`));
  const dump = () => stderr.join('\n');

  // Resolves with the match of the first line (already logged, from index
  // `since`, or to come) matching re; rejects after ms or if the node exits.
  function waitForLog(re, ms = 5000, { since = 0 } = {}) {
    for (let i = since; i < stderr.length; i++) {
      const m = stderr[i].match(re);
      if (m) return Promise.resolve(m);
    }
    let w;
    const found = new Promise((resolve, reject) => {
      w = (line) => {
        const m = line.match(re);
        if (m) resolve(m);
      };
      waiters.add(w);
      exited.then((e) => reject(new Error(`node exited (${JSON.stringify(e)}) before logging ${re}\n--- stderr ---\n${dump()}`)));
    });
    return bounded(found, ms, `log line ${re}\n--- stderr so far ---\n${dump()}`).finally(() => waiters.delete(w));
  }

  let m;
  try {
    m = await waitForLog(/(?:node (\S+) )?listening on http:\/\/(.+):(\d+)\//, 10000);
  } catch (err) {
    await killAndWait(proc, exited).catch(() => {});
    throw new Error(`rc-chat did not start (${cmd} ${cmdArgs.join(' ')}): ${err.message}\n--- stderr ---\n${dump()}`);
  }
  const host = m[2];
  const port = Number(m[3]);
  return {
    port,
    url: `http://${host}:${port}`,
    proc,
    pid: proc.pid,
    nodeId: nodeId ?? m[1], // the given id, else the one the log line names
    stderr,
    exited,
    waitForLog,
    dump,
    // Signal, then wait for the exit (bounded; SIGKILL and reject after ms).
    async stop(signal = 'SIGTERM', ms = 10000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      try {
        return await bounded(exited, ms, `rc-chat pid ${proc.pid} to exit after ${signal}`);
      } catch (err) {
        await killAndWait(proc, exited).catch(() => {});
        throw new Error(`${err.message}\n--- stderr ---\n${dump()}`);
      }
    },
    // SIGKILL and wait; never rejects on an already-dead process.
    kill: () => killAndWait(proc, exited),
  };
}

// ---------------------------------------------------------------- SSE reader

// Parse one frame's text (without the blank line ending it).
function parseFrame(text) {
  const frame = { raw: `${text}\n\n`, event: undefined, id: undefined, data: undefined, retry: undefined, comment: false };
  const lines = text.split('\n');
  const data = [];
  let fields = 0;
  for (const line of lines) {
    if (line.startsWith(':')) continue;
    fields++;
    const i = line.indexOf(':');
    const name = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'data') data.push(value);
    else if (name === 'event') frame.event = value;
    else if (name === 'id') frame.id = value;
    else if (name === 'retry') frame.retry = value;
  }
  if (data.length) frame.data = data.join('\n');
  // Only comment lines (": ping"): a heartbeat.
  frame.comment = fields === 0;
  return frame;
}

// A raw reader of one event stream over node:http (no keep-alive agent, so
// a thousand of them can be open at once). Fields:
//   status, headers      after the response head (await s.ready)
//   raw                  everything received so far (string)
//   frames               parsed frames, in order: {raw, event, id, data, retry, comment}
//   ready                resolves with the stream once the head is in (rejects on connect error)
//   closed               resolves (never rejects) when the response/socket is gone
//   waitFor(pred, ms, what)  first frame (from index `from`, default 0) with pred(frame)
//   next(ms, what, {comments})  next frame after the last one next() returned
//   hello(ms)            rc:hello's data, parsed
//   close(), reset()     FIN / RST the connection
// rc:presence, rc:join, rc:leave: the frames of the library's presence.
export const isPresence = (f) => f.event === 'rc:presence' || f.event === 'rc:join' || f.event === 'rc:leave';

export function openStream(url, { headers = {} } = {}) {
  const s = {
    status: undefined,
    headers: undefined,
    raw: '',
    frames: [],
    error: undefined,
    isClosed: false,
    cursor: 0,
  };
  const waiters = new Set();
  let pending = '';
  let resolveClosed;
  s.closed = new Promise((r) => (resolveClosed = r));
  const markClosed = (why) => {
    if (s.isClosed) return;
    s.isClosed = true;
    s.closeReason = why;
    resolveClosed(why);
    for (const w of waiters) w.onClose(why);
  };

  const req = http.get(url, { agent: false, headers: { Accept: 'text/event-stream', ...headers } });
  s.req = req;
  s.ready = new Promise((resolve, reject) => {
    req.on('response', (res) => {
      s.res = res;
      s.status = res.statusCode;
      s.headers = res.headers;
      res.setEncoding('utf8'); // decodes multi-byte characters split across chunks
      res.on('data', (chunk) => {
        s.raw += chunk;
        pending += chunk;
        let i;
        while ((i = pending.indexOf('\n\n')) >= 0) {
          const f = parseFrame(pending.slice(0, i));
          pending = pending.slice(i + 2);
          s.frames.push(f);
          for (const w of waiters) w.onFrame(f);
        }
      });
      res.on('end', () => markClosed('end'));
      res.on('close', () => markClosed('close'));
      res.on('error', () => {});
      resolve(s);
    });
    req.on('error', (err) => {
      s.error = err;
      markClosed(`error: ${err.message}`);
      reject(err);
    });
    req.on('close', () => markClosed('close'));
  });
  s.ready.catch(() => {}); // callers that never await ready must not crash the process

  const show = () => {
    const last = s.frames.slice(-5).map((f) => JSON.stringify(f.raw));
    return `${s.frames.length} frames, last: [${last.join(', ')}]${s.isClosed ? `, stream closed (${s.closeReason})` : ''}; pending ${JSON.stringify(pending.slice(0, 200))}`;
  };

  s.waitFor = (pred, ms = 5000, what = 'a matching frame', { from = 0 } = {}) => {
    for (let i = from; i < s.frames.length; i++) if (pred(s.frames[i])) return Promise.resolve(s.frames[i]);
    let w;
    const p = new Promise((resolve, reject) => {
      w = {
        onFrame: (f) => pred(f) && resolve(f),
        onClose: (why) => reject(new Error(`stream ${url} closed (${why}) while waiting for ${what}; ${show()}`)),
      };
      if (s.isClosed) w.onClose(s.closeReason);
      waiters.add(w);
    });
    return bounded(p, ms, `${what} on ${url}`)
      .catch((err) => {
        throw new Error(`${err.message}; ${show()}`);
      })
      .finally(() => waiters.delete(w));
  };

  // The next frame after the previous next() (comments, and the presence
  // frames every stream gets, skipped unless asked).
  s.next = async (ms = 5000, what = 'the next frame', { comments = false, presence = false } = {}) => {
    const start = s.cursor;
    const f = await s.waitFor((f) => (comments || !f.comment) && (presence || !isPresence(f)), ms, what, { from: start });
    s.cursor = s.frames.indexOf(f, start) + 1;
    return f;
  };

  s.hello = async (ms = 5000) => {
    await s.ready;
    const f = await s.waitFor((f) => f.event === 'rc:hello', ms, 'rc:hello');
    return JSON.parse(f.data);
  };
  s.close = () => {
    req.destroy();
    return s.closed;
  };
  s.reset = () => {
    // A socket already closed is not reset: Node 20 then never exits.
    if (req.socket && !req.socket.destroyed) req.socket.resetAndDestroy();
    else req.destroy();
    return s.closed;
  };
  return s;
}

// ---------------------------------------------------------------- one-shot requests

// A request on a fresh connection. body: string or Buffer. Returns status,
// headers, text (UTF-8), body (Buffer), json (when the content type says so).
// A header `Expect: 100-continue` holds the body back until the server asks.
// raw: true writes the request line with the path byte for byte over a plain
// socket (for targets node:http refuses to send); the answer is read to EOF.
export async function request(base, method, path, { body, headers = {}, raw = false, timeoutMs = 10000 } = {}) {
  const res = raw ? rawRequest(base, method, path, body, headers) : httpRequest(base, method, path, body, headers);
  const r = await bounded(res, timeoutMs, `${method} ${path} on ${base}`);
  r.text = r.body.toString('utf8');
  const ct = r.headers['content-type'] || '';
  if (ct.startsWith('application/json') && method !== 'HEAD') {
    try {
      r.json = JSON.parse(r.text);
    } catch (err) {
      throw new Error(`${method} ${path}: content-type ${ct} but body is not JSON: ${JSON.stringify(r.text.slice(0, 200))}`);
    }
  }
  return r;
}

function httpRequest(base, method, path, body, headers) {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const h = { ...headers };
    if (body !== undefined) h['Content-Length'] = Buffer.byteLength(body);
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // With `Expect: 100-continue` the body waits for the server's go-ahead
    // (a server refusing it answers first, e.g. 413, and never reads it).
    const expect = Object.entries(h).some(([k, v]) => k.toLowerCase() === 'expect' && /100-continue/i.test(v));
    if (body !== undefined && expect) req.on('continue', () => req.end(body));
    else {
      if (body !== undefined) req.write(body);
      req.end();
    }
  });
}

function rawRequest(base, method, path, body, headers) {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const sock = net.connect(Number(u.port), u.hostname);
    const chunks = [];
    sock.on('connect', () => {
      let head = `${method} ${path} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      if (body !== undefined) head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
      sock.write(Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), body === undefined ? Buffer.alloc(0) : Buffer.from(body)]));
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', reject);
    sock.on('close', () => {
      try {
        resolve(parseRawResponse(Buffer.concat(chunks)));
      } catch (err) {
        reject(err);
      }
    });
  });
}

// status line, headers (lower-cased), body (Content-Length, chunked, or to EOF).
function parseRawResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no HTTP response head in ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
  const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(statusLine.split(' ')[1]);
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = buf.subarray(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const parts = [];
    let p = 0;
    for (;;) {
      const nl = body.indexOf('\r\n', p);
      const size = parseInt(body.subarray(p, nl).toString('latin1'), 16);
      if (!size) break;
      parts.push(body.subarray(nl + 2, nl + 2 + size));
      p = nl + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    body = body.subarray(0, Number(headers['content-length']));
  }
  return { status, headers, body };
}

// ---------------------------------------------------------------- Redis client

// One command, one reply, on a fresh connection. Errors (-ERR) reject.
export function redisCmd(port, ...args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.from(String(a));
    parts.push(`$${b.length}\r\n`, b, '\r\n');
  }
  const out = Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
  const reply = new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    sock.on('connect', () => sock.write(out));
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`redis connection closed before a full reply to ${args[0]}`)));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResp(buf, 0);
      if (!r) return; // incomplete
      sock.destroy();
      if (r.value instanceof Error) reject(r.value);
      else resolve(r.value);
    });
  });
  return bounded(reply, 5000, `redis reply to ${args.join(' ').slice(0, 100)}`);
}

// RESP2: returns { value, end } or null when buf holds no complete reply yet.
function parseResp(buf, pos) {
  const nl = buf.indexOf('\r\n', pos);
  if (nl < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.subarray(pos + 1, nl).toString('utf8');
  const next = nl + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new Error(`redis: ${line}`), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { value: buf.subarray(next, next + n).toString('utf8'), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      const arr = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p);
        if (!r) return null;
        arr.push(r.value);
        p = r.end;
      }
      return { value: arr, end: p };
    }
    default:
      throw new Error(`bad RESP type ${JSON.stringify(type)}`);
  }
}

// ---------------------------------------------------------------- /proc probes

export function rssKiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

// utime + stime, in clock ticks.
export function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)"; comm may contain spaces. utime/stime are fields 14/15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

// ---------------------------------------------------------------- small helpers

// Poll fn (every intervalMs) until it returns something truthy; that value is
// the result. For state only visible by asking (metrics, member lists), not
// a substitute for awaiting an event. what: text, or (lastValue) => text.
export async function until(fn, ms, what, intervalMs = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what(v) : what}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// /metrics parsed: text, samples (Map 'name{labels}' -> number), get(name, labels).
export async function metrics(base) {
  const r = await request(base, 'GET', '/metrics');
  if (r.status !== 200) throw new Error(`GET /metrics: ${r.status} ${r.text}`);
  const samples = new Map();
  for (const line of r.text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)(?:\s+\d+)?$/);
    if (m) samples.set(m[1], Number(m[2]));
  }
  return {
    ...r,
    samples,
    // get('rc_chat_streams') or get('rc_chat_streams_closed_total', 'reason="slow"')
    get: (name, labels) => samples.get(labels ? `${name}{${labels}}` : name),
  };
}

let roomSeq = 0;
// A room name no other test (or run) uses.
export function uniqueRoom(tag = 'r') {
  return `${tag}-${process.pid}-${Date.now().toString(36)}-${++roomSeq}`;
}

// URL of a room route: suffix '' (room info), '/events' or '/messages'.
export function roomUrl(base, room, suffix = '') {
  return `${base}/rooms/${encodeURIComponent(room)}${suffix}`;
}

// POST a message object (or a raw string/Buffer body) to a room.
export function postMessage(base, room, msg) {
  const body = typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg);
  return request(base, 'POST', `/rooms/${encodeURIComponent(room)}/messages`, {
    body,
    headers: { 'Content-Type': 'application/json' },
  });
}

// What a test file starts, ended together from its after() whatever
// happened: first the clients (functions that close a stream, socket or
// timer), then the processes (kept by node, redis and keep).
export function tracker() {
  const procs = [];
  const clients = [];
  const keep = (p) => {
    procs.push(p);
    return p;
  };
  return {
    procs,
    clients,
    keep,
    node: async (opts) => keep(await startNode(opts)),
    redis: async () => keep(await startRedis()),
    stream(url, opts) {
      const s = openStream(url, opts);
      clients.push(() => s.reset());
      return s;
    },
    async end() {
      for (const end of clients.splice(0)) {
        try {
          await bounded(Promise.resolve(end()), 2000, 'a client to close');
        } catch {
          /* already gone */
        }
      }
      await Promise.all(procs.splice(0).map((p) => (p.kill ?? p.stop)().catch(() => {})));
    },
  };
}

// Hardening of rc-chat (issue 11): what a hostile client or an unlucky
// operator did to it, one test per attack. Loopback only; every wait is
// bounded and names what it waited for; every process and socket is ended
// in after().
//
//   RC_CHAT=/abs/path/rc-chat node --test hardening.test.mjs

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import { RC_CHAT, bounded, metrics, redisCmd, request, roomUrl, rssKiB, startRedis, tracker, uniqueRoom, until } from './harness.mjs';

const skip = !RC_CHAT ? 'RC_CHAT is not set' : !existsSync(RC_CHAT) ? `RC_CHAT=${RC_CHAT} does not exist` : false;

const track = tracker();
const { clients, node, stream } = track;
after(() => track.end());

const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;

// The IPv4 socket localPort -> remotePort in /proc/net/tcp: its state
// (hex, 04 FIN-WAIT-1) and send queue, or undefined.
function tcpEntry(localPort, remotePort) {
  const hex = (p) => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    if (f[1].endsWith(`:${hex(localPort)}`) && f[2].endsWith(`:${hex(remotePort)}`)) {
      return { st: f[3], tx: parseInt(f[4].split(':')[0], 16) };
    }
  }
  return undefined;
}

// A raw connection that sends `head` and collects what comes back; `ended`
// resolves when the server closes its side (or the socket fails).
function rawConn(port, head) {
  const sock = net.connect(port, '127.0.0.1');
  const c = { sock, data: '', error: undefined };
  sock.setEncoding('latin1');
  sock.on('data', (d) => (c.data += d));
  sock.on('error', (e) => (c.error = e));
  c.connected = new Promise((resolve) => {
    sock.on('connect', resolve);
    sock.on('error', resolve);
  });
  c.ended = new Promise((resolve) => {
    sock.on('end', () => resolve('end'));
    sock.on('close', () => resolve('close'));
  });
  if (head !== undefined) sock.on('connect', () => sock.write(head));
  clients.push(() => sock.destroy());
  return c;
}

// GET /health on a fresh connection: its status and the time it took.
async function timedHealth(base, ms = 3000) {
  const t0 = performance.now();
  const r = await request(base, 'GET', '/health', { timeoutMs: ms });
  return { status: r.status, ms: performance.now() - t0 };
}

describe('rc-chat hardening', { skip }, () => {
  test('refusals close: 503 at --max-streams has Connection: close and the socket ends; /health keeps answering', async (t) => {
    const n = await node({ ulimitNofile: 128, args: ['--max-streams', '2', '--timeout-ms', '30000'] });
    const room = uniqueRoom('cap');
    const held = [stream(roomUrl(n.url, room, '/events')), stream(roomUrl(n.url, room, '/events'))];
    await Promise.all(held.map((s) => s.hello()));
    const path = `/rooms/${encodeURIComponent(room)}/events`;
    const head = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`;
    // 150 refused clients that keep their end open: more than the fds the
    // node has beside its streams, were the refusals kept alive.
    const refused = [];
    for (let i = 0; i < 150; i += 10) {
      const batch = Array.from({ length: 10 }, () => rawConn(n.port, head));
      const outs = await Promise.all(batch.map((c) => bounded(c.ended, 3000, `refused client ${i}: the server to close its socket`).then((why) => ({ why, data: c.data }))));
      refused.push(...outs);
    }
    for (const o of refused) {
      assert.match(o.data, /^HTTP\/1\.1 503 /, o.data.slice(0, 200));
      assert.match(o.data, /\r\nConnection: close\r\n/i, o.data.slice(0, 400));
      assert.match(o.data, /\r\nRetry-After: \d+\r\n/i);
    }
    const h = await timedHealth(n.url);
    t.diagnostic(`150 refusals closed; /health ${h.status} in ${h.ms.toFixed(0)} ms; fds ${fdCount(n.pid)}; RSS ${rssKiB(n.pid)} KiB`);
    assert.equal(h.status, 200);
    const m = await metrics(n.url);
    assert.equal(m.get('rc_chat_streams_refused_total'), 150);
  });

  test('a request must be whole within --timeout-ms of its first byte (not an inactivity timer)', async (t) => {
    const n = await node({ args: ['--timeout-ms', '1500'] });
    const c = rawConn(n.port, 'GET /health HTTP/1.1\r\n');
    await c.connected;
    const t0 = performance.now();
    const drip = setInterval(() => c.sock.write('X'), 200); // a header that never ends
    clients.push(() => clearInterval(drip));
    try {
      await bounded(c.ended, 5000, 'the server to close a request trickled for over --timeout-ms');
    } finally {
      clearInterval(drip);
    }
    const ms = performance.now() - t0;
    t.diagnostic(`trickled request closed after ${ms.toFixed(0)} ms (--timeout-ms 1500)`);
    assert.ok(ms >= 1000 && ms < 4000, `closed after ${ms.toFixed(0)} ms`);
    assert.equal((await metrics(n.url)).get('rc_chat_request_timeouts_total'), 1);
  });

  test('slowloris: 300 trickling connections under ulimit -n 256 with the streams at their cap, /health keeps answering', async (t) => {
    const n = await node({ ulimitNofile: 256, args: ['--timeout-ms', '30000'] });
    const rss0 = rssKiB(n.pid);
    // The default stream cap is 256 - 64 = 192: fill it.
    const room = uniqueRoom('full');
    for (let i = 0; i < 192; i += 32) {
      const batch = Array.from({ length: 32 }, () => stream(roomUrl(n.url, room, '/events')));
      await Promise.all(batch.map((s) => s.hello(10000)));
    }
    const conns = [];
    const drips = [];
    for (let i = 0; i < 300; i++) {
      const c = rawConn(n.port, 'GET /health HTTP/1.1\r\nHost: x\r\n');
      conns.push(c);
      if (i % 50 === 49) await sleep(50);
    }
    await bounded(Promise.all(conns.map((c) => c.connected)), 5000, '300 TCP connects');
    const drip = setInterval(() => {
      for (const c of conns) if (!c.sock.destroyed) c.sock.write('X-a: b\r\n');
    }, 500);
    drips.push(drip);
    clients.push(() => clearInterval(drip));
    try {
      await sleep(1000);
      const times = [];
      for (let i = 0; i < 5; i++) {
        const h = await timedHealth(n.url, 3000);
        assert.equal(h.status, 200);
        times.push(h.ms);
        await sleep(200);
      }
      const m = await metrics(n.url);
      const open = conns.filter((c) => !c.sock.destroyed).length;
      t.diagnostic(
        `300 trickling: /health ${times.map((x) => x.toFixed(0)).join(', ')} ms; rc_chat_connections ${m.get('rc_chat_connections')}, evicted ${m.get('rc_chat_connections_evicted_total')}; fds ${fdCount(n.pid)}; RSS ${rss0} -> ${rssKiB(n.pid)} KiB; ${open} attackers still open`,
      );
      assert.ok(times.every((x) => x < 1500), `/health took ${times.join(', ')} ms`);
      assert.ok(m.get('rc_chat_connections') <= 40, `rc_chat_connections ${m.get('rc_chat_connections')}`);
      assert.equal(m.get('rc_chat_streams'), 192);
    } finally {
      clearInterval(drip);
      for (const c of conns) c.sock.destroy();
    }
  });
});

describe('rc-chat hardening: slow streams', { skip }, () => {
  test('a stream that does not read is closed as slow with a reset: nothing left queued in the kernel', async (t) => {
    const n = await node({ args: ['--max-buffer', '262144'] });
    const room = uniqueRoom('slow');
    const path = `/rooms/${encodeURIComponent(room)}/events`;
    const c = rawConn(n.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await c.connected;
    await bounded(
      (async () => {
        while (!c.data.includes('rc:hello')) await sleep(20);
      })(),
      5000,
      'rc:hello on the raw stream',
    );
    c.sock.pause(); // reads nothing more
    const data = 'x'.repeat(100 * 1024);
    let slow = 0;
    let posts = 0;
    for (; posts < 400 && slow === 0; posts++) {
      const r = await request(n.url, 'POST', `${path.slice(0, -'/events'.length)}/messages`, {
        body: JSON.stringify({ event: 'big', data }),
        headers: { 'Content-Type': 'application/json' },
      });
      assert.equal(r.status, 202, r.text);
      if (posts % 10 === 9) slow = (await metrics(n.url)).get('rc_chat_streams_closed_total', 'reason="slow"');
    }
    slow = (await metrics(n.url)).get('rc_chat_streams_closed_total', 'reason="slow"');
    assert.equal(slow, 1, `not closed as slow after ${posts} posts of 100 KiB`);
    // The server's end of this connection in the kernel: with a plain close
    // it stays (FIN-WAIT-1) holding what was queued while the client holds
    // its end; reset, it is gone at once.
    const serverSide = () => tcpEntry(n.port, c.sock.localPort);
    let left;
    try {
      await until(() => !serverSide(), 3000, 'the server end of the slow stream to go');
    } catch {
      left = serverSide();
    }
    const before = c.data.length;
    c.sock.resume();
    const why = await bounded(c.ended, 10000, 'the slow stream to end on the client');
    t.diagnostic(
      `closed as slow after ${posts} posts of 100 KiB; server end ${left ? `still there: state ${left.st}, ${left.tx} bytes queued` : 'gone'}; client read ${c.data.length - before} more bytes, then ${why} (${c.error ? c.error.code : 'no error'})`,
    );
    assert.equal(left, undefined, `server end left: state ${left?.st}, ${left?.tx} bytes queued`);
  });
});

describe('rc-chat hardening: half-closed clients', { skip }, () => {
  test('a client that half-closes after its request (shutdown(SHUT_WR)) keeps its stream; one that closes is still noticed', async (t) => {
    const n = await node();
    const room = uniqueRoom('half');
    const path = `/rooms/${encodeURIComponent(room)}/events`;
    const c = rawConn(n.port, undefined);
    await c.connected;
    c.sock.end(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`); // request, then FIN
    const seen = (re, what) =>
      bounded(
        (async () => {
          while (!re.test(c.data)) {
            if (c.sock.destroyed || c.sock.readableEnded) throw new Error(`stream ended (${JSON.stringify(c.data.slice(0, 300))})`);
            await sleep(20);
          }
        })(),
        5000,
        `${what} on the half-closed stream`,
      );
    await seen(/event: rc:hello/, 'rc:hello');
    await sleep(600); // past the server's probe of a closed peer
    const r = await request(n.url, 'POST', `/rooms/${encodeURIComponent(room)}/messages`, {
      body: JSON.stringify({ event: 'after-fin', data: 'still here' }),
      headers: { 'Content-Type': 'application/json' },
    });
    assert.deepEqual(r.json, { delivered: 1 });
    await seen(/event: after-fin\ndata: "still here"\n\n/, 'a broadcast after the FIN');

    // A client that closes both ways right after its request: its stream ends promptly.
    const gone = rawConn(n.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await bounded(
      (async () => {
        while (!gone.data.includes('rc:hello')) await sleep(20);
      })(),
      5000,
      'rc:hello on the second stream',
    );
    gone.sock.destroy();
    const t0 = performance.now();
    await until(async () => (await metrics(n.url)).get('rc_chat_streams') === 1, 5000, 'the closed stream to end');
    t.diagnostic(`half-closed stream got rc:hello and a broadcast; a closed one ended after ${(performance.now() - t0).toFixed(0)} ms`);
  });
});

describe('rc-chat hardening: integrity', { skip }, () => {
  test('a POSTed event starting with "rc:" is 400; no stream gets a spoofed rc:hello', async () => {
    const n = await node();
    const room = uniqueRoom('spoof');
    const s = stream(roomUrl(n.url, room, '/events'));
    const hello = await s.hello();
    for (const event of ['rc:hello', 'rc:', 'rc:presence']) {
      const r = await request(n.url, 'POST', `/rooms/${encodeURIComponent(room)}/messages`, {
        body: JSON.stringify({ event, data: { connection: 'mallory', node: 'x', room } }),
        headers: { 'Content-Type': 'application/json' },
      });
      assert.equal(r.status, 400, `${event}: ${r.status} ${r.text}`);
      assert.match(r.json.error, /rc:/);
    }
    // Escaped, it is the same name once unescaped.
    const esc = await request(n.url, 'POST', `/rooms/${encodeURIComponent(room)}/messages`, {
      body: '{"event":"r\\u0063:hello","data":1}',
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(esc.status, 400, esc.text);
    const ok = await request(n.url, 'POST', `/rooms/${encodeURIComponent(room)}/messages`, {
      body: JSON.stringify({ event: 'RC:hello-not-reserved', data: 2 }),
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(ok.status, 202, ok.text);
    await s.waitFor((f) => f.event === 'RC:hello-not-reserved', 5000, 'the ordinary event');
    const hellos = s.frames.filter((f) => f.event === 'rc:hello');
    assert.equal(hellos.length, 1, JSON.stringify(hellos));
    assert.equal(JSON.parse(hellos[0].data).connection, hello.connection);
  });
});

describe('rc-chat hardening: operations', { skip }, () => {
  test('the Redis password never shows: logs, /health, /metrics, the command line', async (t) => {
    const r = await startRedis();
    track.keep(r);
    await redisCmd(r.port, 'CONFIG', 'SET', 'requirepass', 'sekret-pw-1');
    // Right password by flag, wrong one by environment (its AUTH fails and is logged).
    const good = await node({ redisUrl: `redis://:sekret-pw-1@127.0.0.1:${r.port}/0` });
    const bad = await node({ env: { REDIS_URL: `redis://default:sekret-pw-2@127.0.0.1:${r.port}` } });
    await good.waitForLog(/redis up/, 10000);
    await bad.waitForLog(/redis down/, 10000);
    for (const [name, n] of [['good', good], ['bad', bad]]) {
      const seen = [n.dump()];
      for (const path of ['/health', '/metrics', '/ready']) seen.push((await request(n.url, 'GET', path)).text);
      seen.push(readFileSync(`/proc/${n.pid}/cmdline`, 'latin1'), readFileSync(`/proc/${n.pid}/environ`, 'latin1'));
      const all = seen.join('\n');
      assert.ok(!/sekret-pw/.test(all), `${name}: the password shows: ${JSON.stringify(all.slice(Math.max(0, all.indexOf('sekret-pw') - 200), all.indexOf('sekret-pw') + 50))}`);
    }
    assert.match(good.dump(), /\(redis: redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0\)/);
    assert.match(bad.dump(), /\(redis: redis:\/\/default:\*\*\*@127\.0\.0\.1:\d+\)/);
    t.diagnostic(good.stderr[0]);
  });
});

describe('rc-chat hardening: readiness', { skip }, () => {
  test('GET /ready: 200 with Redis up or without Redis, 503 with the reason while Redis is down; /health stays 200', async (t) => {
    const alone = await node();
    const a = await request(alone.url, 'GET', '/ready');
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.json, { status: 'ready' });
    const r = await startRedis();
    track.keep(r);
    const n = await node({ redisPort: r.port });
    await n.waitForLog(/redis up/, 10000);
    const up = await request(n.url, 'GET', '/ready');
    assert.equal(up.status, 200, up.text);
    assert.deepEqual(up.json, { status: 'ready' });
    await r.stop();
    const t0 = performance.now();
    const down = await until(
      async () => {
        const x = await request(n.url, 'GET', '/ready');
        return x.status === 503 && x;
      },
      10000,
      '/ready to answer 503 after Redis went',
    );
    t.diagnostic(`/ready 503 ${down.text} ${(performance.now() - t0).toFixed(0)} ms after Redis was killed`);
    assert.deepEqual(down.json, { status: 'not ready', reason: 'redis down' });
    const h = await request(n.url, 'GET', '/health');
    assert.equal(h.status, 200);
    assert.equal(h.json.redis, 'down');
    assert.equal((await request(n.url, 'POST', '/ready', { body: '' })).status, 405);
  });
});

describe('rc-chat hardening: one node id, one node', { skip }, () => {
  test('a second node given a live node\'s id is refused: /ready 503 "node id in use", logged, and it publishes nothing; it takes the id once the first stops', async (t) => {
    const r = await startRedis();
    track.keep(r);
    const id = `twin-${process.pid}`;
    const args = ['--lease-ms', '3000'];
    const first = await node({ redisPort: r.port, nodeId: id, args });
    await first.waitForLog(/lease held/, 10000);
    const other = await node({ redisPort: r.port, nodeId: `other-${process.pid}`, args });
    await other.waitForLog(/lease held/, 10000);
    const twin = await node({ redisPort: r.port, nodeId: id, args });
    await twin.waitForLog(/node id twin-\d+ is in use by another live node/, 10000);
    const ready = await request(twin.url, 'GET', '/ready');
    assert.equal(ready.status, 503, ready.text);
    assert.deepEqual(ready.json, { status: 'not ready', reason: 'node id in use' });
    assert.equal((await request(first.url, 'GET', '/ready')).status, 200);
    // Both nodes' streams still hear the third node; the first hears no
    // one under its own id, and the twin's post goes nowhere.
    const room = uniqueRoom('twin');
    const [s1, s2, s3] = [first, twin, other].map((n) => stream(roomUrl(n.url, room, '/events')));
    await Promise.all([s1, s2, s3].map((s) => s.hello(10000)));
    const post = (n, data) => request(n.url, 'POST', `/rooms/${encodeURIComponent(room)}/messages`, { body: JSON.stringify({ event: 'm', data }) });
    assert.equal((await post(twin, 'from-twin')).status, 202);
    assert.equal((await post(first, 'from-first')).status, 202);
    assert.equal((await post(other, 'from-other')).status, 202);
    const want = (s, d) => s.waitFor((f) => f.event === 'm' && f.data === JSON.stringify(d), 10000, `${d} on a stream`);
    // A last message from the first, published after the twin's POST was
    // answered: whatever the twin published would be in before it.
    assert.equal((await post(first, 'last')).status, 202);
    await Promise.all([want(s1, 'from-other'), want(s2, 'from-other'), want(s3, 'from-first'), want(s1, 'from-first'), want(s3, 'from-other'), want(s3, 'last')]);
    const seen3 = s3.frames.filter((f) => f.event === 'm').map((f) => JSON.parse(f.data));
    assert.deepEqual(seen3.sort(), ['from-first', 'from-other', 'last'], 'the twin reached no other node');
    assert.equal((await metrics(twin.url)).get('rc_publish_errors_total'), 1);
    // The first stops cleanly and lets go of the id: the twin takes it
    // at its next beat (a third of the lease).
    const t0 = performance.now();
    await first.stop();
    await twin.waitForLog(/lease held/, 5000);
    await until(async () => (await request(twin.url, 'GET', '/ready')).status === 200, 5000, 'the twin to be ready');
    t.diagnostic(`twin ready ${(performance.now() - t0).toFixed(0)} ms after the first stopped`);
  });
});

describe('rc-chat hardening: POST rate per client address', { skip }, () => {
  test('--post-rate across two nodes: the burst goes through, the rest is 429 with Retry-After and delivers nothing', async (t) => {
    const r = await startRedis();
    track.keep(r);
    const args = ['--post-rate', '2', '--post-burst', '3'];
    const [a, b] = await Promise.all(['ra', 'rb'].map((id) => node({ redisPort: r.port, nodeId: `${id}-${process.pid}`, args })));
    await Promise.all([a, b].map((n) => n.waitForLog(/lease held/, 10000)));
    const room = uniqueRoom('rate');
    const s = stream(roomUrl(b.url, room, '/events'));
    await s.hello(10000);
    const answers = [];
    for (let i = 0; i < 10; i++) {
      const n = i % 2 ? b : a; // one client, both nodes: one bucket
      answers.push(await request(n.url, 'POST', `/rooms/${encodeURIComponent(room)}/messages`, { body: JSON.stringify({ event: 'm', data: i }) }));
    }
    const ok = answers.filter((x) => x.status === 202).length;
    const limited = answers.filter((x) => x.status === 429);
    t.diagnostic(`10 POSTs at once, rate 2/s burst 3: ${ok} accepted, ${limited.length} refused; Retry-After ${limited.map((x) => x.headers['retry-after']).join(',')}`);
    assert.ok(ok >= 3 && ok <= 4, `${ok} accepted`); // the burst, and one more if 500 ms went by
    assert.equal(ok + limited.length, 10);
    for (const x of limited) {
      assert.ok(Number(x.headers['retry-after']) >= 1, x.headers['retry-after']);
      assert.match(x.json.error, /too many/);
    }
    // Only the accepted ones reach the stream.
    await until(() => s.frames.filter((f) => f.event === 'm').length === ok, 5000, `${ok} messages on the stream`);
    const m = await metrics(a.url);
    assert.ok(m.get('rc_chat_requests_total', 'code="429"') >= 1);
  });
});

describe('rc-chat hardening: lost subscriptions', { skip }, () => {
  test('a room whose subscription was lost and is back: each stream gets one rc:gap {"room":R}, no id line', async (t) => {
    const r = await startRedis();
    track.keep(r);
    const n = await node({ redisPort: r.port, nodeId: `gap-${process.pid}` });
    await n.waitForLog(/redis up/, 10000);
    const rooms = [uniqueRoom('gap'), uniqueRoom('gap')];
    const streams = rooms.map((room) => stream(roomUrl(n.url, room, '/events')));
    await Promise.all(streams.map((s) => s.hello(10000)));
    const list = await redisCmd(r.port, 'CLIENT', 'LIST');
    const sub = list.split('\n').find((l) => l.includes(`name=roomcast:${n.nodeId}:sub`));
    assert.ok(sub, `no client named roomcast:${n.nodeId}:sub in\n${list}`);
    const id = sub.match(/\bid=(\d+)/)[1];
    const t0 = performance.now();
    assert.equal(await redisCmd(r.port, 'CLIENT', 'KILL', 'ID', id), 1);
    const gaps = await Promise.all(streams.map((s) => s.waitFor((f) => f.event === 'rc:gap', 15000, 'rc:gap')));
    t.diagnostic(`rc:gap on both streams ${(performance.now() - t0).toFixed(0)} ms after CLIENT KILL of the sub connection`);
    gaps.forEach((f, i) => {
      assert.deepEqual(JSON.parse(f.data), { room: rooms[i] });
      assert.equal(f.id, undefined);
      assert.equal(f.raw, `event: rc:gap\ndata: ${JSON.stringify({ room: rooms[i] })}\n\n`);
    });
    // Messages flow again, and nothing else was sent twice.
    const p = await request(n.url, 'POST', `/rooms/${encodeURIComponent(rooms[0])}/messages`, {
      body: JSON.stringify({ event: 'after-gap', data: 1 }),
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(p.status, 202, p.text);
    await streams[0].waitFor((f) => f.event === 'after-gap', 5000, 'a broadcast after the gap');
    for (const s of streams) {
      assert.equal(s.frames.filter((f) => f.event === 'rc:gap').length, 1);
      assert.equal(s.frames.filter((f) => f.event === 'rc:hello').length, 1);
    }
  });
});

describe('rc-chat hardening: request framing', { skip }, () => {
  // Each sends a request whose framing is ambiguous, followed by a smuggled
  // GET /metrics; the answer must be one 400 (rc-chat's, or evhttp's own
  // for Transfer-Encoding with Content-Length), then the server's close.
  const smuggled = 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n';
  const body = '{"data":1}';
  const cases = {
    'two Content-Length': `POST /rooms/f/messages HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nContent-Length: ${body.length + smuggled.length}\r\n\r\n${body}${smuggled}`,
    'Transfer-Encoding with a space before the colon': `POST /rooms/f/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n${smuggled}`,
    'Transfer-Encoding and Content-Length': `POST /rooms/f/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n${smuggled}`,
    'no Host in HTTP/1.1': `GET /health HTTP/1.1\r\n\r\n${smuggled}`,
    'two Host headers': `GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n${smuggled}`,
  };
  test('ambiguous framing is 400 and closes; nothing smuggled is answered', async (t) => {
    const n = await node();
    for (const [name, raw] of Object.entries(cases)) {
      const c = rawConn(n.port, raw);
      const why = await bounded(c.ended, 5000, `${name}: the server to close`).catch((err) => `not closed (${err.message.slice(0, 60)})`);
      const answers = c.data.match(/^HTTP\/1\.[01] \d{3}/gm) || [];
      assert.deepEqual(answers, ['HTTP/1.1 400'], `${name}: answers ${JSON.stringify(answers)}, ${why}; ${JSON.stringify(c.data.slice(0, 300))}`);
      assert.match(why, /end|close/, `${name}: ${why}`);
      assert.doesNotMatch(c.data, /rc_published_total/, `${name}: the smuggled request was answered`);
    }
    // Plain requests still work, HTTP/1.0 without Host too.
    const ok = rawConn(n.port, 'GET /health HTTP/1.0\r\n\r\n');
    await bounded(ok.ended, 5000, 'HTTP/1.0 /health');
    assert.match(ok.data, /^HTTP\/1\.[01] 200/);
    const chunked = rawConn(n.port, `POST /rooms/f/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
    await bounded(chunked.ended, 5000, 'a chunked POST');
    assert.match(chunked.data, /^HTTP\/1\.1 202/, chunked.data.slice(0, 200));
    t.diagnostic(`${Object.keys(cases).length} framings refused`);
  });
});

describe('rc-chat hardening: bodies in flight', { skip }, () => {
  test('slow bodies: the memory of requests being read is bounded in total', async (t) => {
    const n = await node({ args: ['--timeout-ms', '20000'] });
    const rss0 = rssKiB(n.pid);
    const size = 1024 * 1024 + 32 * 1024; // under the per-request cap
    const part = Buffer.alloc(size - 10, 'x');
    const conns = [];
    for (let i = 0; i < 160; i++) {
      const c = rawConn(n.port);
      conns.push(c);
      c.sock.on('connect', () => {
        c.sock.write(`POST /rooms/b/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`);
        c.sock.write(part); // all but the last 10 bytes, which never come
      });
      if (i % 20 === 19) await sleep(100);
    }
    await bounded(Promise.all(conns.map((c) => c.connected)), 10000, '160 connects');
    let m;
    let rss;
    await until(
      async () => {
        m = await metrics(n.url);
        rss = rssKiB(n.pid);
        return (m.get('rc_chat_connections_evicted_total') ?? 0) >= 60;
      },
      20000,
      () => `connections closed over the byte budget (rc_chat_request_bytes ${m?.get('rc_chat_request_bytes')}, evicted ${m?.get('rc_chat_connections_evicted_total')}, RSS ${rss} KiB)`,
    ).catch((err) => {
      throw new Error(`${err.message}; RSS ${rss0} -> ${rssKiB(n.pid)} KiB`);
    });
    const h = await timedHealth(n.url);
    t.diagnostic(
      `160 slow bodies of ${size} bytes: rc_chat_request_bytes ${m.get('rc_chat_request_bytes')}, evicted ${m.get('rc_chat_connections_evicted_total')}; RSS ${rss0} -> ${rss} KiB; /health ${h.status} in ${h.ms.toFixed(0)} ms`,
    );
    assert.ok(m.get('rc_chat_request_bytes') <= 64 * 1024 * 1024);
    // 64 MiB of bodies, and slack (ASan: ~96 MiB); without the budget: 170 MiB.
    assert.ok(rss - rss0 < 140 * 1024, `RSS ${rss0} -> ${rss} KiB`);
    assert.equal(h.status, 200);
    for (const c of conns) c.sock.destroy();
  });
});

describe('rc-chat hardening: member lists', { skip }, () => {
  test('GET /rooms/{room} grows as n log n in its members, not n²', async (t) => {
    const r = await startRedis();
    track.keep(r);
    const n = await node({ redisPort: r.port, args: ['--heartbeat-ms', '600000'] });
    await n.waitForLog(/redis up/, 10000);
    const room = uniqueRoom('members');
    let opened = 0;
    const open = async (count) => {
      for (let i = 0; i < count; i += 250) {
        const batch = Array.from({ length: Math.min(250, count - i) }, () => stream(roomUrl(n.url, room, `/events?user=u${opened++}`)));
        await Promise.all(batch.map((s) => s.hello(20000)));
      }
    };
    // The fastest of 7 answers (the least disturbed by the other processes).
    const fastest = async (want) => {
      let best = Infinity;
      for (let k = 0; k < 7; k++) {
        const t0 = performance.now();
        const x = await request(n.url, 'GET', `/rooms/${encodeURIComponent(room)}`, { timeoutMs: 20000 });
        best = Math.min(best, performance.now() - t0);
        assert.equal(x.json.members.length, want);
      }
      return best;
    };
    await open(2500);
    const small = await fastest(2500);
    await open(7500);
    const big = await fastest(10000);
    t.diagnostic(`GET /rooms/{room}: ${small.toFixed(1)} ms with 2500 members, ${big.toFixed(1)} ms with 10000 (x${(big / small).toFixed(1)}; linear x4, n log n ~x4.7, n² x16)`);
    // Below x12: n log n measures x4.7 on a quiet machine and up to x10.6
    // on a loaded one (two busy cores: caches shared with other suites);
    // n² would be x16.
    assert.ok(big / small < 12, `x${(big / small).toFixed(1)} for 4 times the members`);
  });
});

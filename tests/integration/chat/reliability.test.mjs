// Reliability tests of rc-chat, items S2–S8 of the catalogue
// (/work/shared/research/reliability.md, "2. SSE / HTTP side"): heartbeats,
// Last-Event-ID, field injection through the HTTP API, slow clients, input
// floods, abrupt disconnects and the fd limit. Loopback only; every wait is
// bounded and names what it waited for; every process is killed in after().
//
//   RC_CHAT=/abs/path/rc-chat node --test reliability.test.mjs
//
// Without $RC_CHAT the suite is skipped. S7 needs redis-server on PATH (or
// $REDIS_SERVER).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import {
  RC_CHAT,
  REDIS_SERVER,
  bounded,
  cpuTicks,
  freePort,
  metrics,
  postMessage,
  redisCmd,
  request,
  roomUrl,
  rssKiB,
  tracker,
  uniqueRoom,
} from './harness.mjs';

const CLK_TCK = 100; // getconf CLK_TCK on Linux
const PREFIX = 'sse:room:';
const haveRedis = spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).status === 0;
const skip = !RC_CHAT ? 'RC_CHAT is not set' : !existsSync(RC_CHAT) ? `RC_CHAT=${RC_CHAT} does not exist` : false;

// ---------------------------------------------------------------- cleanup

// Processes (nodes, redis) and clients (streams, EventSources, sockets,
// servers) to end in after(), whatever happened.
const track = tracker();
const { clients, node, redis, stream } = track;
after(() => track.end());

// ---------------------------------------------------------------- small helpers

// Poll check() (true, or a string saying what is still missing) every
// `every` ms until true; reject after ms with the last reason. Only for state
// no event announces (Redis, /metrics). Resolves with the elapsed ms.
async function waitUntil(check, ms, what, every = 20) {
  const t0 = performance.now();
  for (;;) {
    const r = await check();
    if (r === true) return performance.now() - t0;
    if (performance.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${r}`);
    await sleep(every);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// An npm `eventsource` client (the independent spec parser) that records
// every event it dispatches, whatever its type: MessageEvents as
// {type, data, lastEventId, t}, plus opens and errors.
function watchEventSource(url) {
  const es = new EventSource(url);
  clients.push(() => es.close());
  const rec = { es, events: [], errors: [], opens: 0 };
  const waiters = new Set();
  const dispatch = es.dispatchEvent.bind(es);
  es.dispatchEvent = (ev) => {
    const t = performance.now();
    if (ev.type === 'open' && !(ev instanceof MessageEvent)) rec.opens++;
    else if (ev instanceof MessageEvent) rec.events.push({ type: ev.type, data: ev.data, lastEventId: ev.lastEventId, t });
    else if (ev.type === 'error') rec.errors.push({ message: ev.message, code: ev.code, t });
    for (const w of waiters) w();
    return dispatch(ev);
  };
  const show = () =>
    `${rec.events.length} events (last: ${JSON.stringify(rec.events.slice(-3).map((e) => [e.type.slice(0, 40), e.data.slice(0, 80)]))}), ` +
    `${rec.opens} opens, errors: ${JSON.stringify(rec.errors)}, readyState ${es.readyState}`;
  // Resolves when cond() holds (checked now and after every dispatch).
  rec.until = (cond, ms, what) => {
    let w;
    const p = new Promise((resolve) => {
      w = () => cond() && resolve();
      waiters.add(w);
      w();
    });
    return bounded(p, ms, `${what} (eventsource client on ${url})`)
      .catch((err) => {
        throw new Error(`${err.message}; ${show()}`);
      })
      .finally(() => waiters.delete(w));
  };
  rec.event = async (pred, ms, what) => {
    await rec.until(() => rec.events.some(pred), ms, what);
    return rec.events.find(pred);
  };
  rec.hello = () => rec.event((e) => e.type === 'rc:hello', 5000, 'rc:hello');
  rec.show = show;
  return rec;
}

// A request whose answer may be a refusal: {status, text, headers} or
// {closed: reason} when the connection ended without an HTTP answer.
async function answerOrClosed(promise) {
  try {
    const r = await promise;
    return { status: r.status, headers: r.headers, text: r.text };
  } catch (err) {
    if (/timed out/.test(err.message)) throw err;
    return { closed: err.code || err.message };
  }
}

const describeAnswer = (a) =>
  a.closed ? `closed (${a.closed})` : `${a.status} ${a.headers['content-type']} ${a.text.replace(/\s+/g, ' ').slice(0, 160)}`;

// The node is alive and answers GET /health 200 within 2 s.
async function expectHealthy(n, what) {
  assertAlive(n, what);
  let r;
  try {
    r = await request(n.url, 'GET', '/health', { timeoutMs: 2000 });
  } catch (err) {
    await Promise.race([n.exited, sleep(500)]); // a crash is reported a little later
    assertAlive(n, what);
    throw new Error(`${what}: GET /health failed: ${err.message}`);
  }
  assert.equal(r.status, 200, `${what}: GET /health answered ${r.status} ${r.text}`);
}

function assertAlive(n, what) {
  const { exitCode, signalCode } = n.proc;
  if (exitCode !== null || signalCode !== null)
    assert.fail(`${what}: rc-chat pid ${n.pid} died (exit code ${exitCode}, signal ${signalCode})\n--- stderr ---\n${n.dump()}`);
}

// ================================================================ tests

describe('rc-chat reliability (S2–S8)', { skip }, () => {
  // -------------------------------------------------------------- S2
  describe('S2 heartbeats', () => {
    test('an idle stream stays open on 500 ms pings below a 1500 ms timeout', async (t) => {
      const n = await node({ args: ['--heartbeat-ms', '500', '--timeout-ms', '1500'] });
      const url = roomUrl(n.url, uniqueRoom('s2'), '/events');
      const rec = watchEventSource(url);
      const s = stream(url);
      await s.ready;
      assert.equal(s.status, 200);
      // Arrival time of every frame, stamped by a listener that runs right
      // after the harness's own (which appends to s.frames).
      const stamps = s.frames.map(() => NaN);
      s.res.on('data', () => {
        while (stamps.length < s.frames.length) stamps.push(performance.now());
      });
      await s.hello();
      await rec.hello();

      const pings = () => s.frames.filter((f) => f.comment);
      await s.waitFor(() => pings().length >= 7, 7 * 500 * 1.2 + 2000, '7 ping comments');

      for (const f of pings()) assert.equal(f.raw, ': ping\n\n', 'a heartbeat is exactly ": ping\\n\\n"');
      const times = s.frames.map((f, i) => (f.comment ? stamps[i] : NaN)).filter((x) => !Number.isNaN(x));
      const gaps = times.slice(1).map((x, i) => x - times[i]);
      const med = median(gaps);
      t.diagnostic(`S2 ping gaps (ms): ${gaps.map((g) => g.toFixed(0)).join(' ')}; median ${med.toFixed(1)}`);
      assert.ok(med >= 400 && med <= 600, `median ping spacing ${med.toFixed(1)} ms is not 500 ms ±20 %`);

      // Still the first connection on both clients: no close, no reconnect.
      assert.equal(s.isClosed, false, `raw stream closed: ${s.closeReason}`);
      assert.equal(s.frames.filter((f) => f.event === 'rc:hello').length, 1);
      assert.equal(rec.es.readyState, EventSource.OPEN, rec.show());
      assert.equal(rec.opens, 1, `eventsource opened ${rec.opens} times; ${rec.show()}`);
      assert.deepEqual(rec.errors, [], 'eventsource client reported errors');
      assert.equal(rec.events.filter((e) => e.type === 'rc:hello').length, 1, rec.show());
      assert.equal(rec.events.filter((e) => e.type === 'message').length, 0, 'pings must be invisible to EventSource');
      // The hello and the room's presence snapshot, nothing else.
      assert.deepEqual(rec.events.map((e) => e.type), ['rc:hello', 'rc:presence'], rec.show());
    });

    test('an idle stream is not cut by --timeout-ms (it covers request reading and stalled writes only)', async () => {
      const n = await node({ args: ['--heartbeat-ms', '60000', '--timeout-ms', '800'] });
      const s = stream(roomUrl(n.url, uniqueRoom('s2b'), '/events'));
      await s.hello();
      // Measuring an idle period: nothing is sent, so wait out 3 timeouts.
      const closed = await Promise.race([s.closed.then((why) => `closed (${why})`), sleep(2400).then(() => null)]);
      assert.equal(closed, null, `an idle stream (no heartbeat due) was ${closed} within 3 × --timeout-ms`);
    });

    test('a request whose head never completes is closed after --timeout-ms', async (t) => {
      const n = await node({ args: ['--timeout-ms', '800'] });
      const sock = net.connect(n.port, '127.0.0.1');
      clients.push(() => sock.destroy());
      sock.on('error', () => {});
      await bounded(once(sock, 'connect'), 2000, 'connect');
      const t0 = performance.now();
      sock.write('GET /health HTTP/1.1\r\nHost: x\r\n'); // no blank line: the head never ends
      sock.resume();
      await bounded(once(sock, 'close'), 800 * 3 + 1000, 'the server to close a request stuck in its head');
      const ms = performance.now() - t0;
      t.diagnostic(`S2 stuck request head closed after ${ms.toFixed(0)} ms (timeout 800)`);
      assert.ok(ms >= 800 * 0.8, `closed after ${ms.toFixed(0)} ms, before --timeout-ms 800`);
      await expectHealthy(n, 'after the stuck request');
    });
  });

  // -------------------------------------------------------------- S3
  describe('S3 Last-Event-ID', () => {
    const marker = () => `LEID${Math.random().toString(36).slice(2, 10)}`;
    const eventsPath = (room) => `/rooms/${encodeURIComponent(room)}/events`;

    test('a 16 KiB Last-Event-ID is refused by the header cap and the node serves others', async (t) => {
      const n = await node();
      const room = uniqueRoom('s3a');
      const m = marker();
      const value = (m + 'x'.repeat(16384)).slice(0, 16384);
      const a = await answerOrClosed(
        request(n.url, 'GET', eventsPath(room), { raw: true, headers: { 'Last-Event-ID': value }, timeoutMs: 3000 }),
      );
      t.diagnostic(`S3 16 KiB Last-Event-ID: ${describeAnswer(a)}`);
      assert.ok(a.closed || [400, 413, 431].includes(a.status), `expected 400/413/431 or a closed connection, got ${describeAnswer(a)}`);
      if (!a.closed) assert.ok(!a.text.includes(m) && !JSON.stringify(a.headers).includes(m), 'the Last-Event-ID value was echoed');
      await expectHealthy(n, 'after the 16 KiB header');
      const s = stream(roomUrl(n.url, room, '/events'));
      await s.hello();
    });

    test('Last-Event-ID over 256 bytes → 400; exactly 256 bytes → a fresh hello, never echoed', async () => {
      const n = await node();
      const room = uniqueRoom('s3l');
      const m = marker();
      const long = (m + 'y'.repeat(300)).slice(0, 257);
      const a = await answerOrClosed(
        request(n.url, 'GET', eventsPath(room), { raw: true, headers: { 'Last-Event-ID': long }, timeoutMs: 3000 }),
      );
      assert.equal(a.status, 400, `257-byte Last-Event-ID: expected 400, got ${describeAnswer(a)}`);
      assert.ok(!a.text.includes(m), 'the Last-Event-ID value was echoed');

      const ok = (m + 'z'.repeat(300)).slice(0, 256);
      const s = stream(roomUrl(n.url, room, '/events'), { headers: { 'Last-Event-ID': ok } });
      await s.hello();
      const r = await postMessage(n.url, room, { event: 'after', data: 1 });
      assert.equal(r.status, 202);
      await s.waitFor((f) => f.event === 'after', 5000, 'a broadcast after the hello');
      assert.ok(!s.raw.includes(m), `the Last-Event-ID value was echoed on the stream: ${JSON.stringify(s.raw.slice(0, 300))}`);
      assert.ok(!JSON.stringify(s.headers).includes(m), 'the Last-Event-ID value was echoed in a header');
    });

    for (const [name, ch] of [
      ['TAB', '\t'],
      ['U+0001', '\x01'],
      ['DEL', '\x7f'],
      ['raw CR', '\r'],
    ]) {
      test(`Last-Event-ID with ${name} inside → 400 (or refused), never echoed`, async (t) => {
        const n = await node();
        const m = marker();
        const a = await answerOrClosed(
          request(n.url, 'GET', eventsPath(uniqueRoom('s3c')), {
            raw: true,
            headers: { 'Last-Event-ID': `${m}${ch}event: evil` },
            timeoutMs: 3000,
          }),
        );
        t.diagnostic(`S3 Last-Event-ID with ${name}: ${describeAnswer(a)}`);
        assert.ok(a.closed || a.status === 400, `expected 400 or a refusal, got ${describeAnswer(a)}`);
        if (!a.closed) {
          assert.ok(!a.text.includes(m) && !JSON.stringify(a.headers).includes(m), 'the Last-Event-ID value was echoed');
          // A raw CR breaks the header syntax: evhttp itself answers (HTML).
          if (ch !== '\r') assert.match(a.headers['content-type'] || '', /^application\/json/);
        }
        await expectHealthy(n, `after a Last-Event-ID with ${name}`);
      });
    }

    test('the npm eventsource client reconnects after the server ends the stream and sends Last-Event-ID: e-7', async (t) => {
      const P = await freePort();
      const n = await node({ args: ['--port', String(P)] });
      assert.equal(n.port, P, `a later --port ${P} must win over the harness's --port 0 (node listens on ${n.port})`);
      const room = uniqueRoom('s3r');
      const url = roomUrl(`http://127.0.0.1:${P}`, room, '/events');
      const rec = watchEventSource(url);
      const raw = stream(url);
      await rec.hello();
      await raw.hello();

      const r = await postMessage(n.url, room, { event: 'chat', id: 'e-7', data: { n: 7 } });
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(r.json, { delivered: 2 });
      const ev = await rec.event((e) => e.type === 'chat', 5000, 'the chat event with id e-7');
      assert.equal(ev.lastEventId, 'e-7');
      assert.equal(ev.data, '{"n":7}');
      await raw.waitFor((f) => f.event === 'chat', 5000, 'the chat frame');
      const retryField = raw.frames.find((f) => f.retry !== undefined)?.retry;

      // SIGTERM: the node ends every stream and exits 0.
      const errorsBefore = rec.errors.length;
      const exit = await n.stop('SIGTERM');
      assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM\n${n.dump()}`);
      await bounded(raw.closed, 3000, 'the raw stream to end after SIGTERM');

      // The "second server" on the same port records the reconnect request.
      const got = [];
      const fake = http.createServer((req, res) => {
        got.push({ t: performance.now(), url: req.url, lastEventId: req.headers['last-event-id'] });
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        res.write('event: rc:hello\ndata: {"fake":true}\n\n');
      });
      clients.push(() => {
        fake.closeAllConnections();
        fake.close();
      });
      fake.listen(P, '127.0.0.1');
      await bounded(once(fake, 'listening'), 2000, `a fake server listening on port ${P}`);

      await rec.until(() => rec.errors.length > errorsBefore, 3000, 'the client to notice the end of the stream');
      const tLost = rec.errors[errorsBefore].t;
      await rec.until(() => got.length > 0 && rec.opens >= 2, 8000, 'the reconnect request');
      const delay = got[0].t - tLost;
      const expected = retryField !== undefined ? Number(retryField) : 3000; // client default without retry:
      t.diagnostic(`S3 reconnect after ${delay.toFixed(0)} ms (retry field: ${retryField ?? 'none'}); Last-Event-ID: ${got[0].lastEventId}`);
      assert.equal(got[0].url, new URL(url).pathname + new URL(url).search);
      assert.equal(got[0].lastEventId, 'e-7', 'the reconnect must carry the last seen id');
      assert.ok(Math.abs(delay - expected) <= expected * 0.2, `reconnect after ${delay.toFixed(0)} ms, expected ${expected} ±20 %`);
      await rec.event((e) => e.type === 'rc:hello' && e.data === '{"fake":true}', 3000, 'the second hello');
      rec.es.close();
    });

    test.skip('S3.3 retry values ("abc", "-1") refused at the API: the POST body has no retry field; covered by the library unit tests');
  });

  // -------------------------------------------------------------- S4
  describe('S4 field injection through the HTTP API', () => {
    const INJ = (ch) => `a${ch}event: fake${ch}data: "evil"${ch}`;
    const rejected = [];
    for (const field of ['event', 'id'])
      for (const [name, ch] of [
        ['LF', '\n'],
        ['CR', '\r'],
        ['CRLF', '\r\n'],
        ['NUL', '\0'],
      ])
        rejected.push({ name: `${field} with ${name}`, body: JSON.stringify({ event: 'inj', data: 'x', [field]: INJ(ch) }) });
    rejected.push({ name: 'event not a string', body: '{"event":5,"data":1}' });
    rejected.push({ name: 'id not a string', body: '{"event":"x","id":{},"data":1}' });
    rejected.push({ name: 'no data', body: '{"event":"x"}' });

    // Accepted posts: the one event the client must see. `forms` are the
    // exact data texts allowed (compact re-serialisation, or the posted JSON
    // text with its line ends normalised to \n).
    const accepted = [];
    const obj = (name, o, type = o.event || 'message', lastEventId = o.id ?? '') =>
      accepted.push({ name, body: JSON.stringify(o), type, lastEventId, value: o.data, forms: [JSON.stringify(o.data)] });
    const rawData = (name, event, text) =>
      accepted.push({
        name,
        body: `{"event":"${event}",\r\n  "data": ${text}\r\n}`,
        type: event,
        lastEventId: '',
        value: JSON.parse(text),
        forms: [JSON.stringify(JSON.parse(text)), text.replace(/\r\n|\r/g, '\n')],
      });
    obj('event with a leading space', { event: ' lead', data: 1 });
    obj('id with a leading space', { event: 'x', id: ' lead', data: 2 });
    obj('":"-prefixed event', { event: ':colon', data: 3 });
    obj('":"-prefixed id', { event: 'x', id: ':colon', data: 4 });
    obj('empty event → message', { event: '', data: 5 }, 'message');
    obj('no event → message', { data: 6 }, 'message');
    obj('empty id', { event: 'x', id: '', data: 7 });
    obj('64 KiB event', { event: 'e'.repeat(65536), data: 8 });
    obj('64 KiB id', { event: 'x', id: 'i'.repeat(65536), data: 9 });
    obj('event and id with U+2028/U+2029 and non-ASCII', { event: 'ä\u2028b', id: 'ü\u2029c', data: 10 });
    obj('data with U+2028 U+2029', { event: 'x', data: 'a\u2028b\u2029c' });
    obj('data with an escaped CR', { event: 'x', data: 'a\rb' });
    obj('data with escaped CRLF, LF, NUL', { event: 'x', data: 'l1\r\nl2\nl3\0' });
    obj('data trying to inject a frame', { event: 'x', data: 'x\n\nevent: fake\ndata: evil\n\n' });
    obj('data null / nested', { event: 'x', data: { a: [null, true, 1.5, 'é'], b: {} } });
    obj('64 KiB data', { event: 'x', data: 'd'.repeat(65536) });
    obj('extra keys ignored (retry)', { event: 'x', data: 11, retry: 'abc\n\ndata: evil' });
    accepted.push({
      name: 'data with an escaped U+2028 (\\u2028 in the JSON text)',
      body: '{"event":"x","data":"a\\u2028b"}',
      type: 'x',
      lastEventId: '',
      value: 'a\u2028b',
      forms: ['"a\u2028b"', '"a\\u2028b"'],
    });
    rawData('pretty-printed object, CRLF line ends', 'pp', '{\r\n    "a": 1,\r\n    "b": [\r\n      2,\r\n      "c"\r\n    ]\r\n  }');
    rawData('array with a lone CR as whitespace', 'cr', '[1,\r2,\r\r3]');
    rawData('array with LF as whitespace', 'lf', '[1,\n2,\n\n3]');

    test('each post gives 400 or exactly one well-formed event', async (t) => {
      const n = await node();
      const room = uniqueRoom('s4');
      const rec = watchEventSource(roomUrl(n.url, room, '/events'));
      const s = stream(roomUrl(n.url, room, '/events'));
      await rec.hello();
      await s.hello();

      let mark = 0;
      // Post `body`, then a marker; return the answer and what both clients
      // got in between.
      async function post(body) {
        const e0 = rec.events.length;
        const f0 = s.frames.length;
        const r = await postMessage(n.url, room, body);
        const m = String(++mark);
        const mr = await postMessage(n.url, room, { event: 'mark', data: mark });
        assert.equal(mr.status, 202, `marker post: ${mr.status} ${mr.text}`);
        await rec.event((e) => e.type === 'mark' && e.data === m, 5000, `marker ${m}`);
        const mf = await s.waitFor((f) => f.event === 'mark' && f.data === m, 5000, `marker ${m}`, { from: f0 });
        const events = rec.events.slice(e0, rec.events.findIndex((e) => e.type === 'mark' && e.data === m));
        const frames = s.frames.slice(f0, s.frames.indexOf(mf)).filter((f) => !f.comment);
        return { r, events, frames };
      }

      for (const c of rejected) {
        await t.test(`400: ${c.name}`, async () => {
          const { r, events, frames } = await post(c.body);
          const got = `; the clients got ${JSON.stringify(events.map((e) => ({ type: e.type, id: e.lastEventId, data: e.data })))}, raw ${JSON.stringify(frames.map((f) => f.raw))}`;
          assert.equal(r.status, 400, `expected 400, got ${r.status} ${r.text}${got}`);
          assert.match(r.headers['content-type'] || '', /^application\/json/);
          assert.equal(typeof r.json?.error, 'string', r.text);
          assert.deepEqual(events, [], 'a rejected post reached the eventsource client');
          assert.deepEqual(frames, [], 'a rejected post reached the raw stream');
        });
      }

      const forms = {};
      for (const c of accepted) {
        await t.test(`accepted: ${c.name}`, async () => {
          const { r, events, frames } = await post(c.body);
          assert.equal(r.status, 202, `expected 202, got ${r.status} ${r.text.slice(0, 200)}`);
          assert.deepEqual(r.json, { delivered: 2 });
          // The independent parser: exactly one event, expected type/id/data.
          assert.equal(events.length, 1, `expected exactly one event, got ${JSON.stringify(events.map((e) => [e.type.slice(0, 40), e.data.slice(0, 80)]))}`);
          const [e] = events;
          assert.equal(e.type, c.type, 'event type');
          assert.equal(e.lastEventId, c.lastEventId, 'lastEventId');
          assert.ok(!e.data.includes('\r'), `data holds a CR: ${JSON.stringify(e.data.slice(0, 100))}`);
          assert.deepEqual(JSON.parse(e.data), c.value, 'data is not the posted JSON value');
          assert.ok(c.forms.includes(e.data), `data ${JSON.stringify(e.data.slice(0, 120))} is neither of ${JSON.stringify(c.forms.map((f) => f.slice(0, 120)))}`);
          forms[c.name] = c.forms.indexOf(e.data) === 0 ? 'compact' : 'as posted';
          // The raw bytes: one frame, only known fields, no CR or NUL anywhere.
          assert.equal(frames.length, 1, `expected one frame on the raw stream, got ${frames.length}`);
          const [f] = frames;
          assert.ok(!/[\r\0]/.test(f.raw), `CR or NUL in the frame: ${JSON.stringify(f.raw.slice(0, 200))}`);
          for (const line of f.raw.slice(0, -2).split('\n'))
            assert.match(line, /^(id: |event: |data: |:)/s, `unexpected line in the frame: ${JSON.stringify(line.slice(0, 100))}`);
        });
      }
      t.diagnostic(`S4 data forms: ${JSON.stringify(forms)}`);
    });
  });

  // -------------------------------------------------------------- S5
  test('S5 a non-reading client is closed at --max-buffer; the others get everything in order', async (t) => {
    const CAP = 262144;
    const N = 20;
    const POSTS = 100;
    const n = await node({ args: ['--max-buffer', String(CAP)] });
    const room = uniqueRoom('s5');
    const normal = Array.from({ length: N }, () => stream(roomUrl(n.url, room, '/events')));
    const slow = stream(roomUrl(n.url, room, '/events'));
    await Promise.all([...normal, slow].map((s) => s.hello(10000)));
    // Stop reading: the http layer and the socket both.
    slow.res.pause();
    slow.req.socket.pause();

    const rss0 = rssKiB(n.pid);
    let rssMax = rss0;
    const pad = 'p'.repeat(100 * 1024);
    for (let i = 0; i < POSTS; i++) {
      const r = await postMessage(n.url, room, { event: 'bulk', data: { seq: i, pad } });
      assert.equal(r.status, 202, `post ${i}: ${r.status} ${r.text}`);
      rssMax = Math.max(rssMax, rssKiB(n.pid));
    }
    const waitMs = await waitUntil(
      async () => {
        const v = (await metrics(n.url)).get('rc_chat_streams_closed_total', 'reason="slow"');
        return v >= 1 || `rc_chat_streams_closed_total{reason="slow"} = ${v}`;
      },
      5000,
      'the slow stream to be closed',
    );
    // Everyone else: all 100, in order (seq read from the head of the data).
    await Promise.all(
      normal.map((s, k) => s.waitFor((f) => f.event === 'bulk' && f.data.startsWith(`{"seq":${POSTS - 1},`), 20000, `client ${k}: message ${POSTS - 1}`)),
    );
    rssMax = Math.max(rssMax, rssKiB(n.pid));
    normal.forEach((s, k) => {
      const seqs = s.frames.filter((f) => f.event === 'bulk').map((f) => Number(/^\{"seq":(\d+),/.exec(f.data)?.[1]));
      assert.deepEqual(seqs, [...Array(POSTS).keys()], `client ${k} did not get 0..${POSTS - 1} in order`);
      assert.equal(s.isClosed, false, `normal client ${k} was closed (${s.closeReason})`);
    });
    const m = await metrics(n.url);
    assert.equal(m.get('rc_chat_streams_closed_total', 'reason="slow"'), 1, 'exactly the one slow stream closed as slow');
    assert.equal(m.get('rc_chat_streams'), N);

    // Resumed, the slow client reads what the kernel held, then the end.
    slow.req.socket.resume();
    slow.res.resume();
    await bounded(slow.closed, 10000, 'the slow stream to end once it reads again');
    const slowGot = slow.frames.filter((f) => f.event === 'bulk').length;
    const growth = rssMax - rss0;
    t.diagnostic(
      `S5 slow-close counter seen ${waitMs.toFixed(0)} ms after the last post; the slow client got ${slowGot}/${POSTS} messages; RSS ${rss0} KiB → max ${rssMax} KiB (growth ${growth} KiB, limit ${CAP / 1024 + 10240})`,
    );
    assert.ok(slowGot < POSTS, 'the slow client got every message: it was never cut');
    assert.ok(growth < CAP / 1024 + 10240, `RSS grew ${growth} KiB, over --max-buffer + 10 MiB`);
  });

  // -------------------------------------------------------------- S6
  test('S6 garbage sent on an open stream: RSS stays flat, the room still works', async (t) => {
    const n = await node();
    const room = uniqueRoom('s6');
    const flood = stream(roomUrl(n.url, room, '/events'));
    const other = stream(roomUrl(n.url, room, '/events'));
    await flood.hello();
    await other.hello();
    const rss0 = rssKiB(n.pid);
    let rssMax = rss0;
    const sampler = setInterval(() => {
      try {
        rssMax = Math.max(rssMax, rssKiB(n.pid));
      } catch {
        /* exited: the assertions below say so */
      }
    }, 50);

    // Pipelined requests and binary noise, written as fast as the socket takes them.
    const chunk = Buffer.alloc(1 << 20);
    chunk.fill('GET /health HTTP/1.1\r\nHost: x\r\n\r\n', 0, 1 << 19);
    for (let i = 1 << 19; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
    const LIMIT = 200 * (1 << 20);
    const sock = flood.req.socket;
    let queued = 0;
    let outcome;
    let sockError; // the server closing the stream shows here as EPIPE/ECONNRESET
    sock.on('error', (err) => {
      sockError = err;
    });
    const t0 = performance.now();
    try {
      for (;;) {
        if (sock.destroyed || flood.isClosed || sockError) outcome = 'closed';
        else if (queued >= LIMIT) outcome = 'all 200 MiB taken';
        else if (performance.now() - t0 > 10000) outcome = 'still taking bytes after 10 s';
        if (outcome) break;
        queued += chunk.length;
        if (!sock.write(chunk)) {
          const r = await Promise.race([
            once(sock, 'drain').then(() => 'drain', () => 'closed'),
            once(sock, 'close').then(() => 'closed', () => 'closed'),
            sleep(1500).then(() => 'stalled'),
          ]);
          if (r !== 'drain') outcome = r;
        }
      }
    } finally {
      clearInterval(sampler);
    }
    const taken = queued - (sock.destroyed ? 0 : sock.writableLength);
    const secs = (performance.now() - t0) / 1000;
    rssMax = Math.max(rssMax, rssKiB(n.pid));
    const growth = rssMax - rss0;
    t.diagnostic(`S6 flood: ${outcome} after ${secs.toFixed(1)} s, ~${(taken / 2 ** 20).toFixed(1)} MiB taken by the kernel/server; RSS ${rss0} → max ${rssMax} KiB (growth ${growth} KiB)`);
    assert.ok(outcome === 'stalled' || outcome === 'closed', `the server kept reading: ${outcome}`);
    assert.ok(growth < 10240, `RSS grew ${growth} KiB during the flood (limit 10 MiB)`);

    const r = await postMessage(n.url, room, { event: 'after-flood', data: 1 });
    assert.equal(r.status, 202, r.text);
    await other.waitFor((f) => f.event === 'after-flood', 5000, 'a broadcast after the flood');
    assert.ok(!/HTTP\/1\.|"status":"ok"/.test(flood.raw), 'the pipelined garbage was answered inside the event stream');
    await expectHealthy(n, 'after the flood');
  });

  // -------------------------------------------------------------- S7
  test('S7 1000 streams over 100 rooms reset at once: every room unsubscribed, no stream left', { skip: !haveRedis && `${REDIS_SERVER} not found` }, async (t) => {
    const ROOMS = 100;
    const PER = 10;
    const r = await redis();
    const n = await node({ redisPort: r.port });
    const rooms = Array.from({ length: ROOMS }, (_, i) => uniqueRoom(`s7-${i}`));
    const streams = rooms.flatMap((room) => Array.from({ length: PER }, () => stream(roomUrl(n.url, room, '/events'))));
    await bounded(Promise.all(streams.map((s) => s.hello(30000))), 30000, `${streams.length} hellos`);

    const numsub = async () => {
      const reply = await redisCmd(r.port, 'PUBSUB', 'NUMSUB', ...rooms.map((room) => PREFIX + room));
      return rooms.map((_, i) => Number(reply[2 * i + 1]));
    };
    assert.deepEqual(await numsub(), rooms.map(() => 1), 'before: every room subscribed once by the node');
    const m0 = await metrics(n.url);
    assert.equal(m0.get('rc_chat_streams'), ROOMS * PER);
    assert.equal(m0.get('rc_chat_rooms'), ROOMS);

    const t0 = performance.now();
    for (const s of streams) s.reset();
    const tReset = performance.now() - t0;
    const ms = await waitUntil(
      async () => {
        const subs = (await numsub()).reduce((a, b) => a + b, 0);
        const m = await metrics(n.url);
        const left = m.get('rc_chat_streams');
        const rms = m.get('rc_chat_rooms');
        return (subs === 0 && left === 0 && rms === 0) || `NUMSUB sum ${subs}, rc_chat_streams ${left}, rc_chat_rooms ${rms}`;
      },
      2000,
      'every room unsubscribed and no stream left',
      10,
    );
    const total = ms + tReset;
    t.diagnostic(`S7 ${ROOMS * PER} RSTs issued in ${tReset.toFixed(0)} ms; NUMSUB 0 and rc_chat_streams 0 after ${total.toFixed(0)} ms`);
    assert.ok(total <= 1000, `cleanup took ${total.toFixed(0)} ms (catalogue: within 1 s)`);

    // The member lists (Redis hashes) are emptied too.
    await waitUntil(
      async () => {
        for (const room of rooms.slice(0, 10)) {
          const info = await request(n.url, 'GET', `/rooms/${encodeURIComponent(room)}`);
          if (info.json?.members?.length !== 0) return `${room}: ${info.text.slice(0, 200)}`;
        }
        return true;
      },
      2000,
      'empty member lists',
    );
    const m1 = await metrics(n.url);
    assert.ok(m1.get('rc_chat_streams_closed_total', 'reason="client"') >= ROOMS * PER, m1.text);
    await expectHealthy(n, 'after the resets');
  });

  // -------------------------------------------------------------- S8
  describe('S8 fd limit (ulimit -n 256)', () => {
    const NOFILE = 256;
    const MAX = NOFILE - 64; // README: --max-streams defaults to the open-file limit − 64

    test('400 concurrent streams: hellos up to the cap, 503 or refusal for the rest, node responsive and idle', async (t) => {
      const n = await node({ ulimitNofile: NOFILE });
      const room = uniqueRoom('s8');
      const cpu0 = cpuTicks(n.pid);
      const t0 = performance.now();
      const streams = Array.from({ length: 400 }, () => stream(roomUrl(n.url, room, '/events')));
      // /health while the 400 are coming in.
      const th = performance.now();
      await expectHealthy(n, 'while 400 streams open');
      const healthMs = performance.now() - th;

      const outcomes = await Promise.all(
        streams.map(async (s) => {
          try {
            await s.ready;
          } catch (err) {
            return { kind: 'refused', why: err.code || err.message };
          }
          if (s.status === 503) return { kind: '503', retryAfter: s.headers['retry-after'] };
          if (s.status !== 200) return { kind: `status ${s.status}` };
          try {
            await s.hello(10000);
            return { kind: 'hello' };
          } catch (err) {
            return s.isClosed ? { kind: 'refused', why: `closed before hello: ${s.closeReason}` } : { kind: '200 without hello', why: err.message };
          }
        }),
      );
      const cpuWindow = performance.now() - t0;
      assertAlive(n, 'after 400 concurrent streams');
      const count = (k) => outcomes.filter((o) => o.kind === k).length;
      const hellos = count('hello');
      const c503 = count('503');
      const refused = count('refused');
      const whys = [...new Set(outcomes.filter((o) => o.why).map((o) => o.why))];
      t.diagnostic(`S8 outcomes: ${hellos} hello, ${c503} × 503, ${refused} refused ${JSON.stringify(whys.slice(0, 5))}; /health in ${healthMs.toFixed(0)} ms`);
      assert.equal(hellos + c503 + refused, 400, `other outcomes: ${JSON.stringify(outcomes.filter((o) => !['hello', '503', 'refused'].includes(o.kind)).slice(0, 5))}`);
      assert.ok(c503 + refused >= 1, 'nobody was refused');
      assert.ok(hellos >= 1 && hellos <= MAX, `${hellos} hellos (cap ${MAX})`);
      assert.ok(outcomes.filter((o) => o.kind === '503').every((o) => o.retryAfter !== undefined), '503 without Retry-After');

      // CPU over a window of at least 2 s from the first connect.
      if (cpuWindow < 2000) await sleep(2000 - cpuWindow);
      const cpu = (cpuTicks(n.pid) - cpu0) / CLK_TCK / ((performance.now() - t0) / 1000);
      t.diagnostic(`S8 CPU ${(cpu * 100).toFixed(1)} % of one core over ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      assert.ok(cpu < 0.5, `CPU ${(cpu * 100).toFixed(1)} % while saturated`);

      // The open streams still get broadcasts; the metrics agree.
      const open = streams.filter((s, i) => outcomes[i].kind === 'hello');
      const r = await postMessage(n.url, room, { event: 'still', data: 1 });
      assert.equal(r.status, 202, r.text);
      assert.deepEqual(r.json, { delivered: hellos });
      await Promise.all(open.map((s) => s.waitFor((f) => f.event === 'still', 5000, 'a broadcast at the cap')));
      const m = await metrics(n.url);
      assert.equal(m.get('rc_chat_streams'), hellos);
      assert.equal(m.get('rc_chat_streams_refused_total'), c503);

      await Promise.all(streams.map((s) => s.close()));
      await waitUntil(async () => (await metrics(n.url)).get('rc_chat_streams') === 0 || 'streams left', 3000, 'rc_chat_streams 0 after closing');
      await expectHealthy(n, 'after closing all');
    });

    test('idle connections past the fd limit (EMFILE): no accept spin, the node recovers', async (t) => {
      const TIMEOUT = 2000;
      const n = await node({ ulimitNofile: NOFILE, args: ['--timeout-ms', String(TIMEOUT)] });
      // Connections that never send a byte: each takes an fd until --timeout-ms.
      const idle = Array.from({ length: 300 }, () => {
        const sock = net.connect(n.port, '127.0.0.1');
        sock.on('error', () => {});
        clients.push(() => sock.destroy());
        return sock;
      });
      await bounded(Promise.all(idle.map((s) => once(s, 'connect').catch(() => {}))), 5000, '300 TCP connects (or failures)');
      assertAlive(n, 'after 300 idle connections');
      const cpu0 = cpuTicks(n.pid);
      const t0 = performance.now();
      // The node cannot answer until its fds come back; it must still not spin.
      const th = performance.now();
      const health = request(n.url, 'GET', '/health', { timeoutMs: TIMEOUT * 3 + 3000 }).then(
        (r) => ({ r, ms: performance.now() - th }),
        (err) => ({ err }),
      );
      await sleep(2000); // the measuring window
      await Promise.race([n.exited, sleep(100)]);
      assertAlive(n, 'with the fds exhausted');
      const cpu = (cpuTicks(n.pid) - cpu0) / CLK_TCK / ((performance.now() - t0) / 1000);
      const { r, ms, err } = await health;
      if (err) {
        assertAlive(n, 'GET /health with the fds exhausted');
        throw new Error(`GET /health with the fds exhausted: ${err.message}`);
      }
      const m = await metrics(n.url);
      t.diagnostic(
        `S8 EMFILE: CPU ${(cpu * 100).toFixed(1)} % over 2 s; /health answered after ${ms.toFixed(0)} ms; rc_chat_accept_errors_total ${m.get('rc_chat_accept_errors_total')}`,
      );
      assert.ok(cpu < 0.5, `CPU ${(cpu * 100).toFixed(1)} % with the fds exhausted (accept spin?)`);
      assert.equal(r.status, 200);
      for (const s of idle) s.destroy();
      await expectHealthy(n, 'after the idle connections went');
    });
  });
});

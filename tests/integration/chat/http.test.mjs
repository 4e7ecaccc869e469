// rc-chat's HTTP contract (examples/chat/README.md), on one redis-server and
// two nodes A and B for the whole file; every test uses rooms of its own.
//
//   RC_CHAT=/abs/path/rc-chat node --test http.test.mjs

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  RC_CHAT,
  bounded,
  freePort,
  isPresence,
  metrics,
  openStream,
  postMessage,
  redisCmd,
  request,
  roomUrl,
  startNode,
  startRedis,
  uniqueRoom,
  until,
} from './harness.mjs';

const PREFIX = 'sse:room:';
const WAIT = 5000;
const MiB = 1024 * 1024;

let redis;
let A;
let B;
const nodes = []; // every node started here, stopped in after()
const streams = new Set(); // every stream opened here and not yet closed

// Start a node and remember it for clean-up.
async function node(opts) {
  const n = await startNode(opts);
  nodes.push(n);
  return n;
}

// POST a message on node n, counting the accepted ones: each is one PUBLISH.
const posted = new Map();
async function post(n, room, msg) {
  const r = await postMessage(n.url, room, msg);
  if (r.status === 202) posted.set(n, (posted.get(n) ?? 0) + 1);
  return r;
}

// rc_published_total counts PUBLISH replies, so it lags the 202: wait until
// it equals the POSTs accepted so far (every earlier PUBLISH answered).
async function publishedSettled(n) {
  let v;
  const want = posted.get(n) ?? 0;
  await until(
    async () => (v = (await metrics(n.url)).get('rc_published_total')) === want,
    WAIT,
    () => `rc_published_total on ${n.nodeId} to equal the ${want} POSTs accepted (at ${v})`,
  );
  return v;
}

// Open a stream on node n into room; closed at the end of test t.
// user is percent-encoded here; query is appended as is.
function stream(t, n, room, { user, query, headers } = {}) {
  let url = roomUrl(n.url, room, '/events');
  if (user !== undefined) url += `?user=${encodeURIComponent(user)}`;
  else if (query !== undefined) url += `?${query}`;
  const s = openStream(url, { headers });
  s.node = n;
  streams.add(s);
  s.closed.then(() => streams.delete(s));
  t.after(() => s.close());
  return s;
}

// Streams of ours still open on node n (what its rc_chat_streams should say).
function openOn(n) {
  return [...streams].filter((s) => s.node === n && !s.isClosed).length;
}

// The message frames of a stream: neither the hello nor comments.
function messages(s) {
  return s.frames.filter((f) => !f.comment && f.event !== 'rc:hello' && !isPresence(f));
}

// The frame the README promises for a message.
function frame({ id, event, dataText }) {
  let out = '';
  if (id) out += `id: ${id}\n`;
  if (event) out += `event: ${event}\n`;
  for (const line of dataText.split('\n')) out += `data: ${line}\n`;
  return `${out}\n`;
}

// An error answer: the status, JSON content type, compact {"error":"..."}.
function assertError(r, status, what) {
  assert.equal(r.status, status, `${what}: status (body ${r.text.slice(0, 200)})`);
  assert.match(r.headers['content-type'] || '', /^application\/json/, `${what}: content-type`);
  assert.match(r.text, /^\{"error":"(?:[^"\\]|\\.)+"\}$/, `${what}: body`);
}

// On failure, the tail of each node's stderr (as a test diagnostic).
function ntest(name, opts, fn) {
  if (typeof opts === 'function') [opts, fn] = [{}, opts];
  test(name, opts, async (t) => {
    try {
      await fn(t);
    } catch (err) {
      for (const n of nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null)) {
        t.diagnostic(`--- ${n.nodeId} stderr (tail) ---`);
        for (const line of n.stderr.slice(-30)) t.diagnostic(line);
      }
      throw err;
    }
  });
}

const skip = RC_CHAT ? false : 'RC_CHAT is not set';

describe('rc-chat HTTP contract', { skip }, () => {
  before(async () => {
    redis = await startRedis();
    A = await node({ redisPort: redis.port, nodeId: 'node-A' });
    B = await node({ redisPort: redis.port, nodeId: 'node-B' });
  });

  after(async () => {
    for (const s of streams) s.close();
    // Each node must exit 0 on SIGTERM (under ASan, also: no leaks).
    const exits = [];
    for (const n of nodes) {
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) continue;
      exits.push([n.nodeId, await n.stop('SIGTERM').catch((err) => (n.kill(), { error: String(err) }))]);
    }
    if (redis) await redis.stop();
    for (const [id, exit] of exits) assert.deepEqual(exit, { code: 0, signal: null }, `${id} exit status`);
  });

  ntest('SIGINT: streams end, rooms unsubscribed, members gone, exit 0', async (t) => {
    const C = await node({ redisPort: redis.port, nodeId: 'node-C' });
    const rooms = [uniqueRoom('bye'), uniqueRoom('bye')];
    const ss = [stream(t, C, rooms[0], { user: 'u1' }), stream(t, C, rooms[0], { user: 'u2' }),
      stream(t, C, rooms[1], { user: 'u3' })];
    const watcher = stream(t, A, rooms[0], { user: 'w' });
    await Promise.all([...ss, watcher].map((s) => s.hello(WAIT)));
    await until(async () => (await request(A.url, 'GET', roomUrl('', rooms[0]))).json.members.length === 3,
      WAIT, 'the three members of the first room, seen from node A');

    const exit = await bounded(C.stop('SIGINT'), 5000, 'node C to exit after SIGINT');
    assert.deepEqual(exit, { code: 0, signal: null }, `exit status after SIGINT\n${C.dump()}`);
    await Promise.all(ss.map((s) => bounded(s.closed, 2000, 'a stream of node C to end')));
    for (const room of rooms) {
      const [, n] = await redisCmd(redis.port, 'PUBSUB', 'NUMSUB', PREFIX + room);
      assert.equal(n, room === rooms[0] ? 1 : 0, `subscribers of ${room} (node A's watcher only)`);
    }
    // Members are taken out before the node exits, not left to expire.
    const r = await request(A.url, 'GET', roomUrl('', rooms[0]));
    assert.deepEqual(r.json.members.map((m) => m.user), ['w']);
  });

  ntest('GET / serves the chat page', async () => {
    const r = await request(A.url, 'GET', '/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(r.text, /<title>roomcast chat/);
  });

  ntest('a stream: headers, then a byte-exact rc:hello with the decoded room', async (t) => {
    // Percent-encoded in the URL, decoded in the hello, JSON-escaped as
    // JSON.stringify does (quotes, backslashes; '/' and U+2028 left alone).
    const rooms = ['café/α b', 'q"uo\\te', 'x\u2028y', 'a:b:c', uniqueRoom('hello')];
    const ids = new Set();
    for (const room of rooms) {
      const s = stream(t, A, room);
      await s.ready;
      assert.equal(s.status, 200, `status for room ${JSON.stringify(room)}`);
      assert.match(s.headers['content-type'], /^text\/event-stream(;|$)/);
      assert.equal(s.headers['cache-control'], 'no-cache');
      assert.equal(s.headers['x-accel-buffering'], 'no');
      const hello = await s.hello(WAIT);
      assert.equal(typeof hello.connection, 'string');
      assert.ok(hello.connection.length > 0);
      ids.add(hello.connection);
      const expected = `event: rc:hello\ndata: ${JSON.stringify({ connection: hello.connection, node: 'node-A', room })}\n\n`;
      assert.equal(s.frames[0].raw, expected, `first frame for room ${JSON.stringify(room)}`);
      assert.ok(s.raw.startsWith(expected), 'nothing before the hello');
    }
    assert.equal(ids.size, rooms.length, 'connection ids are distinct');

    // Raw path segments: '+' is a literal plus in a path, hex digits in either case.
    for (const [seg, room] of [['a+b', 'a+b'], ['%c3%a9%C3%A9', 'éé'], ['sp%20ace', 'sp ace']]) {
      const s = openStream(`${A.url}/rooms/${seg}/events`);
      t.after(() => s.close());
      const hello = await s.hello(WAIT);
      assert.equal(hello.room, room, `room of segment ${seg}`);
    }
  });

  ntest('rc:hello comes once the room is subscribed: a raw PUBLISH right after it arrives', async (t) => {
    const room = uniqueRoom('sub é');
    const channel = PREFIX + room;
    const envelope = '{"v":1,"m":{"event":"x","data":{"k":1}},"n":"test-node"}';
    const want = 'event: x\ndata: {"k":1}\n\n';

    const sa = stream(t, A, room);
    await sa.hello(WAIT);
    const [ch, subs] = await redisCmd(redis.port, 'PUBSUB', 'NUMSUB', channel);
    assert.equal(ch, channel);
    assert.ok(subs >= 1, `PUBSUB NUMSUB ${channel} = ${subs} after A's hello`);
    assert.ok((await redisCmd(redis.port, 'PUBLISH', channel, envelope)) >= 1);
    const fa = await sa.waitFor((f) => f.event === 'x', WAIT, 'the raw PUBLISH on A');
    assert.equal(fa.raw, want);

    const sb = stream(t, B, room);
    await sb.hello(WAIT);
    const [, subs2] = await redisCmd(redis.port, 'PUBSUB', 'NUMSUB', channel);
    assert.ok(subs2 >= 2, `PUBSUB NUMSUB ${channel} = ${subs2} after both hellos`);
    assert.ok((await redisCmd(redis.port, 'PUBLISH', channel, envelope)) >= 2);
    const fb = await sb.waitFor((f) => f.event === 'x', WAIT, 'the raw PUBLISH on B');
    assert.equal(fb.raw, want);
    // A got exactly two, B one (it joined after the first).
    await sa.waitFor(() => messages(sa).length === 2, WAIT, "A's second frame");
    assert.deepEqual(messages(sa).map((f) => f.raw), [want, want]);
    assert.deepEqual(messages(sb).map((f) => f.raw), [want]);
  });

  ntest('POST fans out to both nodes, byte-exact and in order; except skips one stream', async (t) => {
    const room = uniqueRoom('fan');
    const [a1, a2] = [stream(t, A, room), stream(t, A, room)];
    const [b1, b2] = [stream(t, B, room), stream(t, B, room)];
    const [ha1, , hb1] = await Promise.all([a1, a2, b1, b2].map((s) => s.hello(WAIT)));

    // data as posted: é as UTF-8, quotes escaped; copied byte for byte.
    const dataText = '{"t":"hi é \\"q\\""}';
    const chat = async (id, except, delivered) => {
      const body = `{"event":"chat","data":${dataText},"id":"${id}"${except ? `,"except":"${except}"` : ''}}`;
      const r = await post(A, room, body);
      assert.equal(r.status, 202, `POST ${id}: ${r.text}`);
      assert.match(r.headers['content-type'] || '', /^application\/json/);
      assert.equal(r.text, `{"delivered":${delivered}}`, `POST ${id}`);
      return frame({ id, event: 'chat', dataText });
    };

    const all = [];
    for (let i = 0; i < 20; i++) all.push(await chat(`m${i}`, null, 2));
    assert.equal(all[1], 'id: m1\nevent: chat\ndata: {"t":"hi é \\"q\\""}\n\n');
    const e1 = await chat('e1', ha1.connection, 1); // skip a1 (local)
    const e2 = await chat('e2', hb1.connection, 2); // skip b1 (remote)
    const end = await chat('end', null, 2);

    const want = new Map([
      [a1, [...all, e2, end]],
      [a2, [...all, e1, e2, end]],
      [b1, [...all, e1, end]],
      [b2, [...all, e1, e2, end]],
    ]);
    for (const [s, frames] of want) {
      await s.waitFor((f) => f.id === 'end', WAIT, 'message "end"');
      assert.deepEqual(messages(s).map((f) => f.raw), frames, `frames on a stream of ${s.node.nodeId}`);
    }
  });

  ntest('data is carried as the posted JSON text, byte for byte', async (t) => {
    const room = uniqueRoom('bytes');
    const sa = stream(t, A, room);
    const sb = stream(t, B, room);
    await Promise.all([sa.hello(WAIT), sb.hello(WAIT)]);
    // Escapes, inner spaces and number spellings a re-serialisation would change.
    const dataText = '{ "t" : "hi \\u00e9 \\/" , "n": [1, 2.50, -0e0, 1E2], "u": "\u{1F600}" }';
    const r = await post(A, room, `{"data":${dataText},"event":"raw"}`);
    assert.equal(r.status, 202, r.text);
    const want = frame({ event: 'raw', dataText });
    for (const s of [sa, sb]) {
      const f = await s.waitFor((f) => f.event === 'raw', WAIT, 'event "raw"');
      assert.equal(f.raw, want);
      assert.ok(Buffer.from(f.data).equals(Buffer.from(dataText)), 'data bytes equal the posted bytes');
    }
    // Duplicate keys: the last one wins, as in JSON.parse.
    const d = await post(A, room, '{"data":1,"event":"dup1","data":[2],"event":"dup2"}');
    assert.equal(d.status, 202, d.text);
    for (const s of [sa, sb]) {
      const f = await s.waitFor((f) => f.event?.startsWith('dup'), WAIT, 'the duplicate-key message');
      assert.equal(f.raw, 'event: dup2\ndata: [2]\n\n');
    }
  });

  ntest('multi-line data: a JSON string stays one line, pretty-printed JSON gives one data: line per line', async (t) => {
    const room = uniqueRoom('lines');
    const sa = stream(t, A, room);
    const sb = stream(t, B, room);
    await Promise.all([sa.hello(WAIT), sb.hello(WAIT)]);
    const pretty = JSON.stringify({ a: 1, b: [2, 'x y'] }, null, 2);
    const cases = [
      { body: '{"event":"s","data":"a\\nb"}', want: 'event: s\ndata: "a\\nb"\n\n' },
      {
        body: `{"event":"p","data":${pretty}}`,
        want: 'event: p\ndata: {\ndata:   "a": 1,\ndata:   "b": [\ndata:     2,\ndata:     "x y"\ndata:   ]\ndata: }\n\n',
      },
      // The reference writes id/event only when truthy: "" is left out.
      { body: '{"event":"","id":"","data":null}', want: 'data: null\n\n' },
      { body: '{"data":"end"}', want: 'data: "end"\n\n' },
    ];
    for (const c of cases) {
      const r = await post(A, room, c.body);
      assert.equal(r.status, 202, `${c.body}: ${r.text}`);
    }
    for (const s of [sa, sb]) {
      await s.waitFor((f) => f.data === '"end"', WAIT, 'the last message');
      assert.deepEqual(messages(s).map((f) => f.raw), cases.map((c) => c.want), `frames on ${s.node.nodeId}`);
    }
  });

  ntest('GET /rooms/{room} lists the members of both nodes; a closed stream leaves', async (t) => {
    const room = uniqueRoom('members');
    const sa = stream(t, A, room, { user: 'alice' });
    const sb = stream(t, B, room, { user: 'bob é/x' });
    const [ha, hb] = await Promise.all([sa.hello(WAIT), sb.hello(WAIT)]);
    const alice = { connection: ha.connection, node: 'node-A', user: 'alice' };
    const bob = { connection: hb.connection, node: 'node-B', user: 'bob é/x' };
    const byConn = (a, b) => (a.connection < b.connection ? -1 : 1);

    const list = async (n, want) => {
      let last;
      // users: connections per user; one whose last stream closed stays,
      // with 0, for the grace (10 s by default). The members come from the
      // room's own state, the users from the node's presence view, which
      // the join events reach a moment later: wait for both.
      const users = [...new Set(want.map((m) => m.user))].sort().map((user) => ({ user, connections: want.filter((m) => m.user === user).length }));
      const r = await until(
        async () => {
          last = await request(n.url, 'GET', `/rooms/${encodeURIComponent(room)}`);
          if (last.status !== 200 || !last.json) return false;
          const got = [...last.json.members].sort(byConn);
          return JSON.stringify(got) === JSON.stringify([...want].sort(byConn)) &&
            JSON.stringify(last.json.users.filter((u) => u.connections > 0)) === JSON.stringify(users) && last;
        },
        WAIT,
        () => `members ${JSON.stringify(want)} on ${n.nodeId}; last answer ${last?.status} ${last?.text}`,
      );
      // Compact JSON, keys in the documented order.
      assert.ok(r.text.startsWith(`{"room":${JSON.stringify(room)},"members":[`), r.text);
      for (const m of want) assert.ok(r.text.includes(JSON.stringify(m)), `${JSON.stringify(m)} in ${r.text}`);
      assert.deepEqual(r.json.users.filter((u) => u.connections > 0), users);
      assert.ok(r.json.users.every((u) => u.connections > 0 || !want.some((m) => m.user === u.user)), r.text);
      assert.equal(r.text.length, `{"room":${JSON.stringify(room)},"members":[${want.map((m) => JSON.stringify(m)).join(',')}],"users":${JSON.stringify(r.json.users)}}`.length);
    };

    await list(A, [alice, bob]);
    await list(B, [alice, bob]);
    await sb.close();
    await list(A, [alice]);
    await list(B, [alice]);
  });

  ntest('GET /health: up with Redis, off without, down when Redis is unreachable', async () => {
    const up = await request(A.url, 'GET', '/health');
    assert.equal(up.status, 200);
    assert.match(up.headers['content-type'] || '', /^application\/json/);
    assert.equal(up.text, '{"status":"ok","redis":"up"}');

    const local = await node({ nodeId: 'node-local' });
    const dead = await node({ redisPort: await freePort(), nodeId: 'node-dead' });
    const off = await request(local.url, 'GET', '/health');
    assert.equal(off.status, 200);
    assert.equal(off.text, '{"status":"ok","redis":"off"}');
    const down = await request(dead.url, 'GET', '/health');
    assert.equal(down.status, 200);
    assert.equal(down.text, '{"status":"ok","redis":"down"}');
    await local.stop();
    await dead.stop();
  });

  ntest('GET /metrics: Prometheus text with the documented names; gauges and counters move', async (t) => {
    const DOCUMENTED = {
      rc_published_total: 'counter',
      rc_publish_errors_total: 'counter',
      rc_received_total: 'counter',
      rc_echoes_total: 'counter',
      rc_rejected_total: 'counter',
      rc_duplicates_total: 'counter',
      rc_delivered_total: 'counter',
      rc_filtered_total: 'counter',
      rc_sink_errors_total: 'counter',
      rc_link_up: 'gauge',
      rc_link_connects_total: 'counter',
      rc_link_failures_total: 'counter',
      rc_chat_streams: 'gauge',
      rc_chat_rooms: 'gauge',
      rc_chat_streams_opened_total: 'counter',
      rc_chat_streams_closed_total: 'counter',
      rc_chat_streams_refused_total: 'counter',
      rc_chat_requests_total: 'counter',
      rc_chat_accept_errors_total: 'counter',
    };
    const m0 = await metrics(A.url);
    assert.match(m0.headers['content-type'], /^text\/plain/);
    assert.ok(m0.text.endsWith('\n'), 'ends with a newline');

    // Every line: HELP, TYPE or a sample, each sample after its family's TYPE.
    const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
    const LABELS = '\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*")*,?)?\\}';
    const sampleRe = new RegExp(`^(${NAME})(?:${LABELS})? (?:[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?|NaN|[-+]Inf)(?: -?[0-9]+)?$`);
    const types = new Map();
    for (const line of m0.text.slice(0, -1).split('\n')) {
      let m;
      if ((m = line.match(new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`)))) {
        assert.ok(!types.has(m[1]), `one TYPE line for ${m[1]}`);
        types.set(m[1], m[2]);
      } else if (new RegExp(`^# HELP ${NAME} `).test(line) || line === '') {
        // fine
      } else if ((m = line.match(sampleRe))) {
        const fam = m[1];
        assert.ok(types.has(fam) || types.has(fam.replace(/_total$/, '')), `TYPE before sample ${line}`);
      } else {
        assert.fail(`not Prometheus text: ${JSON.stringify(line)}`);
      }
    }
    for (const [name, type] of Object.entries(DOCUMENTED)) {
      const got = types.get(name) ?? types.get(name.replace(/_total$/, ''));
      assert.equal(got, type, `# TYPE of ${name}`);
    }
    assert.ok(m0.get('rc_delivered_total') !== undefined, 'rc_delivered_total sample');

    // rc_chat_streams = the streams open on this node (ours; earlier tests' closed ones drain).
    const base = openOn(A);
    await until(async () => (await metrics(A.url)).get('rc_chat_streams') === base, WAIT, `rc_chat_streams == ${base} on A`);
    const room = uniqueRoom('metrics');
    const ss = [stream(t, A, room), stream(t, A, room), stream(t, A, room)];
    await Promise.all(ss.map((s) => s.hello(WAIT)));
    await publishedSettled(A);
    const m1 = await metrics(A.url);
    assert.equal(m1.get('rc_chat_streams'), base + 3);
    assert.equal(m1.get('rc_link_up'), 1);

    const r = await post(A, room, { event: 'm', data: 1 });
    assert.equal(r.text, '{"delivered":3}');
    await publishedSettled(A); // one more PUBLISH, and no other
    const m2 = await metrics(A.url);
    assert.equal(m2.get('rc_published_total'), m1.get('rc_published_total') + 1, 'rc_published_total +1 per POST');
    assert.ok(m2.get('rc_delivered_total') >= m1.get('rc_delivered_total') + 3, 'rc_delivered_total +3');

    await ss[0].close();
    await until(async () => (await metrics(A.url)).get('rc_chat_streams') === base + 2, WAIT, 'rc_chat_streams back by one');
  });

  ntest('unknown paths: 404; known paths, other methods: 405 with Allow', async () => {
    for (const path of ['/nope', '/rooms', '/rooms/a/b/c', '/health/x', '/rooms/a/events/x']) {
      assertError(await request(A.url, 'GET', path), 404, `GET ${path}`);
    }
    const cases = [
      ['PUT', '/rooms/a/messages', 'POST'],
      ['DELETE', '/rooms/a/messages', 'POST'],
      ['POST', '/rooms/a/events', 'GET'],
      ['POST', '/rooms/a', 'GET'],
      ['DELETE', '/health', 'GET'],
      ['POST', '/metrics', 'GET'],
      ['POST', '/', 'GET'],
    ];
    for (const [method, path, allowed] of cases) {
      const r = await request(A.url, method, path, method === 'GET' ? {} : { body: '{"data":1}' });
      assertError(r, 405, `${method} ${path}`);
      assert.ok(r.headers.allow, `${method} ${path}: Allow header`);
      const allow = r.headers.allow.split(',').map((x) => x.trim());
      assert.ok(allow.includes(allowed), `${method} ${path}: Allow ${r.headers.allow} includes ${allowed}`);
      assert.ok(!allow.includes(method), `${method} ${path}: Allow ${r.headers.allow} excludes ${method}`);
    }
  });

  ntest('HEAD: answered without a body', async () => {
    // RFC 9110 9.3.2: no content in a HEAD response (405 or not); a body
    // after the head breaks a keep-alive client's framing.
    const wrong = [];
    for (const path of ['/health', '/', '/rooms/a', '/metrics', '/rooms/a/events', '/rooms/a/messages', '/nope']) {
      const r = await request(A.url, 'HEAD', path, { raw: true });
      if (r.body.length) wrong.push(`HEAD ${path}: ${r.status} and ${r.body.length} bytes after the head: ${JSON.stringify(r.text.slice(0, 80))}`);
    }
    assert.deepEqual(wrong, []);
  });

  ntest('request targets that are not the documented paths: 404', async () => {
    // '//health' is an origin-form target whose path is '//health', not '/'.
    const wrong = [];
    for (const path of ['//health', '//', '//rooms/a', '//rooms/a/events', '/./health']) {
      const r = await request(A.url, 'GET', path, { raw: true });
      if (r.status !== 404) wrong.push(`GET ${path}: ${r.status} ${r.headers['content-type']} ${JSON.stringify(r.text.slice(0, 40))}`);
    }
    assert.deepEqual(wrong, []);
  });

  ntest('malformed POSTs: 400/413, nothing published, nothing delivered', async (t) => {
    const room = uniqueRoom('bad');
    const sa = stream(t, A, room);
    const sb = stream(t, B, room);
    await Promise.all([sa.hello(WAIT), sb.hello(WAIT)]);
    const p0 = await publishedSettled(A);

    const cases = [
      ['bad JSON', '{"data":', 400],
      ['empty body', '', 400],
      ['not an object', '[1]', 400],
      ['a string', '"x"', 400],
      ['missing data', '{"event":"x"}', 400],
      ['a key that unescapes to "data\\0", not "data"', '{"data\\u0000":1}', 400],
      ['LF in event', '{"event":"a\\nb","data":1}', 400],
      ['CR in event', '{"event":"a\\rb","data":1}', 400],
      ['CR in id', '{"id":"a\\rb","data":1}', 400],
      ['LF in id', '{"id":"a\\nb","data":1}', 400],
      ['event not a string', '{"event":1,"data":1}', 400],
      ['id not a string', '{"id":7,"data":1}', 400],
      ['except not a string', '{"except":7,"data":1}', 400],
      ['trailing garbage', '{"data":1} x', 400],
      ['invalid UTF-8', Buffer.concat([Buffer.from('{"data":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), 400],
      ['overlong UTF-8', Buffer.concat([Buffer.from('{"data":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]), 400],
      ['data of 1 MiB + 1 byte', `{"data":"${'a'.repeat(MiB + 1 - 2)}"}`, 413],
    ];
    for (const [what, body, status] of cases) {
      assertError(await post(A, room, body), status, what);
    }
    const ok = await post(A, room, { event: 'sentinel', data: 1 });
    assert.equal(await publishedSettled(A), p0 + 1, 'one PUBLISH: the sentinel only');
    assert.equal(ok.text, '{"delivered":1}');
    for (const s of [sa, sb]) {
      const f = await s.next(WAIT, 'the first message after the hello');
      assert.equal(f.event, 'rc:hello');
      const g = await s.next(WAIT, 'the sentinel');
      assert.equal(g.raw, 'event: sentinel\ndata: 1\n\n', `the next frame on ${s.node.nodeId} is the sentinel`);
    }
  });

  ntest('a body over 1 MiB + 64 KiB: 413 (from evhttp), nothing published', async (t) => {
    // Expect: 100-continue, as a careful client sends a large body: the
    // server can refuse before reading it (without it, a server closing the
    // connection unread may reset it before the client reads the answer).
    const room = uniqueRoom('huge');
    const p0 = await publishedSettled(A);
    for (const size of [MiB + 64 * 1024 + 1, 3 * MiB]) {
      const body = `{"data":"${'b'.repeat(size - 11)}"}`;
      assert.equal(body.length, size);
      const r = await request(A.url, 'POST', `/rooms/${encodeURIComponent(room)}/messages`, {
        body,
        headers: { 'Content-Type': 'application/json', Expect: '100-continue' },
      });
      // evhttp itself refuses it (its own HTML page: 2.1 has no hook for it).
      assert.equal(r.status, 413, `body of ${size} bytes: ${r.text.slice(0, 80)}`);
    }
    assert.equal(await publishedSettled(A), p0, 'rc_published_total unchanged');
  });

  ntest('NUL in event or id: refused, or carried whole (never cut short)', async (t) => {
    // README forbids only CR/LF; a receiving node drops NUL (DESIGN,
    // "Receiving"). Either answer is defensible; silently cutting the
    // field at the NUL is not.
    const room = uniqueRoom('nul');
    const sa = stream(t, A, room);
    const sb = stream(t, B, room);
    await Promise.all([sa.hello(WAIT), sb.hello(WAIT)]);
    const cases = [
      ['{"event":"a\\u0000b","data":1}', 'event: a\u0000b\ndata: 1\n\n'],
      ['{"id":"i\\u0000d","data":2}', 'id: i\u0000d\ndata: 2\n\n'],
    ];
    const want = [];
    for (const [body, frameIfTaken] of cases) {
      const r = await post(A, room, body);
      if (r.status === 202) want.push(frameIfTaken);
      else assertError(r, 400, body);
    }
    assert.equal((await post(A, room, '{"data":"end"}')).status, 202);
    want.push('data: "end"\n\n');
    for (const s of [sa, sb]) {
      await s.waitFor((f) => f.data === '"end"', WAIT, 'the last message');
      assert.deepEqual(messages(s).map((f) => f.raw), want, `frames on ${s.node.nodeId}`);
    }
  });

  ntest('data of exactly 1 MiB is accepted', async (t) => {
    const room = uniqueRoom('mib');
    const dataText = `"${'c'.repeat(MiB - 2)}"`;
    assert.equal(Buffer.byteLength(dataText), MiB);
    const r = await post(A, room, `{"event":"big","data":${dataText}}`);
    assert.equal(r.status, 202, r.text);
    assert.equal(r.text, '{"delivered":0}');
  });

  ntest('a 1 MiB message reaches a reading stream (default --max-buffer)', async (t) => {
    const room = uniqueRoom('mib-rx');
    const sa = stream(t, A, room);
    await sa.hello(WAIT);
    const dataText = `"${'d'.repeat(MiB - 2)}"`;
    const r = await post(A, room, `{"event":"big","data":${dataText}}`);
    assert.equal(r.text, '{"delivered":1}');
    const f = await sa.waitFor((f) => f.event === 'big', WAIT, 'the 1 MiB message');
    assert.equal(f.data.length, MiB);
  });

  ntest('bad room names: 400 on all three routes; 200 bytes is fine', async (t) => {
    const bad = {
      NUL: '%00',
      LF: '%0a',
      DEL: '%7f',
      '201 bytes': 'a'.repeat(201),
      '201 bytes (2-byte chars)': '%C3%A9'.repeat(100) + 'a',
      'bad escape': '%ZZ',
      'invalid UTF-8': '%ff',
      'truncated UTF-8': 'a%C3',
    };
    const p0 = await publishedSettled(A);
    for (const [what, seg] of Object.entries(bad)) {
      assertError(await request(A.url, 'GET', `/rooms/${seg}`), 400, `GET /rooms/{${what}}`);
      assertError(
        await request(A.url, 'POST', `/rooms/${seg}/messages`, { body: '{"data":1}' }),
        400,
        `POST /rooms/{${what}}/messages`,
      );
      // Raw segment (not re-encoded), so not through stream().
      const ev = openStream(`${A.url}/rooms/${seg}/events`);
      t.after(() => ev.close());
      await ev.ready;
      await bounded(ev.closed, WAIT, `GET /rooms/{${what}}/events to end`);
      assert.equal(ev.status, 400, `GET /rooms/{${what}}/events: ${ev.raw}`);
      assert.match(ev.raw, /^\{"error":"(?:[^"\\]|\\.)+"\}$/);
    }
    assert.equal(await publishedSettled(A), p0, 'nothing published for bad rooms');

    for (const room of ['b'.repeat(200), 'é'.repeat(100)]) {
      assert.equal(Buffer.byteLength(room), 200);
      const s = stream(t, A, room);
      const hello = await s.hello(WAIT);
      assert.equal(hello.room, room);
      const r = await post(A, room, { data: 'long' });
      assert.equal(r.text, '{"delivered":1}');
      await s.waitFor((f) => f.data === '"long"', WAIT, 'the message in a 200-byte room');
      const info = await request(A.url, 'GET', `/rooms/${encodeURIComponent(room)}`);
      assert.equal(info.status, 200);
      assert.equal(info.json.room, room);
    }
  });

  ntest('user and Last-Event-ID limits', async (t) => {
    const room = uniqueRoom('user');
    const rejected = async (opts, what) => {
      const s = stream(t, A, room, opts);
      await s.ready;
      assert.equal(s.status, 400, `${what}: status (got ${JSON.stringify(s.raw.slice(0, 200))})`);
      await bounded(s.closed, WAIT, `${what}: the 400 answer to end`);
      assert.match(s.raw, /^\{"error":"(?:[^"\\]|\\.)+"\}$/, what);
    };
    await rejected({ user: 'u'.repeat(65) }, 'user of 65 bytes');
    await rejected({ user: 'é'.repeat(32) + 'u' }, 'user of 65 bytes (2-byte chars)');
    await rejected({ user: 'a\u0001b' }, 'user with U+0001');
    await rejected({ query: 'user=a%ffb' }, 'user of invalid UTF-8');
    await rejected({ user: 'a\nb' }, 'user with LF');
    await rejected({ user: 'a\u007fb' }, 'user with DEL');
    await rejected({ headers: { 'Last-Event-ID': 'x'.repeat(300) } }, 'Last-Event-ID of 300 bytes');
    await rejected({ headers: { 'Last-Event-ID': 'x\ty' } }, 'Last-Event-ID with TAB');

    // The limits themselves pass; a valid Last-Event-ID is never echoed.
    const secret = `lei-${'z'.repeat(240)}`;
    assert.equal(secret.length, 244);
    const ok = [
      stream(t, A, room, { user: 'u'.repeat(64) }),
      stream(t, A, room, { user: 'é'.repeat(32) }),
      stream(t, A, room, { headers: { 'Last-Event-ID': secret } }),
      stream(t, A, room, { headers: { 'Last-Event-ID': 'y'.repeat(256) } }),
    ];
    for (const s of ok) {
      await s.ready;
      assert.equal(s.status, 200);
      await s.hello(WAIT);
    }
    const r = await post(A, room, { id: 'after', data: 'x' });
    assert.equal(r.text, `{"delivered":${ok.length}}`);
    const s = ok[2];
    await s.waitFor((f) => f.id === 'after', WAIT, 'the message after the hello');
    assert.ok(!s.raw.includes('lei-'), 'Last-Event-ID not echoed');
    assert.deepEqual(s.frames.map((f) => f.event ?? f.id), ['rc:hello', 'rc:presence', 'after'], 'a fresh hello, the presence snapshot, then only the message');
  });

  ntest('user with NUL (%00): 400, not cut short', async (t) => {
    const room = uniqueRoom('user-nul');
    const wrong = [];
    for (const query of ['user=a%00b', 'user=%00']) {
      const s = stream(t, A, room, { query });
      await s.ready;
      if (s.status !== 400) wrong.push(`?${query}: ${s.status}`);
      s.close();
    }
    const info = await request(A.url, 'GET', `/rooms/${room}`);
    assert.deepEqual(wrong, [], `members then: ${info.text}`);
  });

  ntest('1000 concurrent streams on A all receive a broadcast POSTed on B, then drain', { timeout: 120000 }, async (t) => {
    const N = 1000;
    const room = uniqueRoom('k');
    const base = openOn(A);
    await until(async () => (await metrics(A.url)).get('rc_chat_streams') === base, WAIT, `rc_chat_streams == ${base} on A`);

    const ss = Array.from({ length: N }, () => stream(t, A, room));
    await Promise.all(ss.map((s) => s.hello(30000)));
    assert.equal((await metrics(A.url)).get('rc_chat_streams'), base + N);

    const r = await post(B, room, { event: 'all', id: 'k1', data: { n: N } });
    assert.equal(r.status, 202);
    assert.equal(r.text, '{"delivered":0}', 'no streams of this room on B');
    const want = 'id: k1\nevent: all\ndata: {"n":1000}\n\n';
    const got = await Promise.all(ss.map((s) => s.waitFor((f) => f.id === 'k1', 30000, 'the broadcast')));
    for (const f of got) assert.equal(f.raw, want);

    const r2 = await post(A, room, { id: 'k2', data: 2 });
    assert.equal(r2.text, `{"delivered":${N}}`);
    await Promise.all(ss.map((s) => s.waitFor((f) => f.id === 'k2', 30000, 'the local broadcast')));

    await Promise.all(ss.map((s) => s.close()));
    await until(
      async () => (await metrics(A.url)).get('rc_chat_streams') === base,
      30000,
      `rc_chat_streams back to ${base} on A`,
    );
    const [, subs] = await redisCmd(redis.port, 'PUBSUB', 'NUMSUB', PREFIX + room);
    await until(
      async () => (await redisCmd(redis.port, 'PUBSUB', 'NUMSUB', PREFIX + room))[1] === 0,
      WAIT,
      `A to unsubscribe ${room} (NUMSUB was ${subs})`,
    );
  });
});

// History and resume in rc-chat (DESIGN.md "History and resume", issue
// 14): ids E-S given by Redis, Last-Event-ID / ?last_event_id= resumes,
// rc:reset, GET /rooms/{room}/messages, a POSTed id refused, and a Node
// reference node in a history room. Each test starts its own redis-server
// and rc-chat nodes on free loopback ports.
//
//   RC_CHAT=/abs/path/rc-chat node --test history.test.mjs
//
// Every client's ids are checked as they come: one E per client between
// resets, S contiguous, and one payload per id across every client of the
// test (an id never reaches clients with two payloads).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { JsonLinesNode, clusterArgs, clusterUp, killAndWait, spawnTracked } from '../node_ref/test-util.mjs';
import { RC_CHAT, REDIS_SERVER, bounded, freePort, postMessage, redisCmd, request, roomUrl, tracker, uniqueRoom, until, waitForRedis } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REF_NODE = path.join(HERE, '..', 'node_ref', 'ref-node.mjs');
const haveRefModules = existsSync(path.join(HERE, '..', 'node_ref', 'node_modules'));
const WAIT = 15000;
const haveRedis = spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).status === 0;
const haveSocat = spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;
const skip = !RC_CHAT ? 'RC_CHAT is not set' : !haveRedis ? `${REDIS_SERVER} not found` : false;

const track = tracker();
after(() => track.end());

// ---------------------------------------------------------------- helpers

// A redis-server on `port` (kept across restarts), persistence only by an
// explicit SAVE into dir/dump.rdb when dir is given.
async function redisAt(port, dir) {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (dir) args.push('--dir', dir, '--dbfilename', 'dump.rdb');
  const cluster = await clusterArgs(dir);
  args.push(...cluster.args);
  const { proc, exited } = spawnTracked(REDIS_SERVER, args, { stdio: 'ignore' });
  if (cluster.dir) exited.then(() => rmSync(cluster.dir, { recursive: true, force: true }));
  const r = { port, url: `redis://127.0.0.1:${port}`, proc, kill: () => killAndWait(proc, exited) };
  track.keep(r);
  await Promise.race([
    waitForRedis(port, 10000),
    exited.then((e) => {
      throw new Error(`redis-server on ${port} exited at start (${JSON.stringify(e)})`);
    }),
  ]);
  await clusterUp(port);
  return r;
}

const parseId = (id) => {
  const m = /^(\d+)-(\d+)$/.exec(id ?? '');
  return m ? { e: BigInt(m[1]), s: BigInt(m[2]) } : null;
};

// One payload per id across every client of a test.
function ledger() {
  const byId = new Map();
  const conflicts = [];
  return {
    byId,
    conflicts,
    see(id, data, who) {
      const had = byId.get(id);
      if (had === undefined) byId.set(id, data);
      else if (had !== data) conflicts.push(`${who}: id ${id} with ${data}, before with ${had}`);
    },
  };
}

// A client that keeps its cursor across connections, checking its ids as
// they come: frames with an id are messages (or rc:reset, which may move
// the cursor anywhere); S must follow the previous one by exactly 1 within
// an E. errors, resets, msgs (every message frame, in order) are kept.
function client(name, led) {
  const c = { name, last: '', errors: [], resets: [], msgs: [], stream: null, conns: 0 };
  c.take = (f) => {
    if (f.comment || f.id === undefined) return;
    if (f.event === 'rc:reset') {
      c.resets.push({ id: f.id, reason: JSON.parse(f.data).reason, after: c.last });
      c.last = f.id;
      return;
    }
    const cur = parseId(f.id);
    const prev = parseId(c.last);
    if (!cur) {
      c.errors.push(`${name}: id ${JSON.stringify(f.id)} is not E-S`);
      return;
    }
    if (prev && cur.e === prev.e && cur.s !== prev.s + 1n) c.errors.push(`${name}: ${f.id} after ${c.last}`);
    else if (prev && cur.e !== prev.e) c.errors.push(`${name}: epoch changed ${c.last} -> ${f.id} without rc:reset`);
    led.see(f.id, f.data, name);
    c.msgs.push(f);
    c.last = f.id;
  };
  // Open a stream on node (resuming from the cursor); frames are taken as
  // they come until the stream is closed.
  c.open = (node, room, { query = false } = {}) => {
    const headers = c.last && !query ? { 'Last-Event-ID': c.last } : {};
    const qs = c.last && query ? `?last_event_id=${encodeURIComponent(c.last)}` : '';
    const s = track.stream(`${roomUrl(node.url, room, '/events')}${qs}`, { headers });
    c.stream = s;
    c.conns++;
    s.waitFor((f) => (c.stream === s && c.take(f), false), 3600000, `${name}: frames`).catch(() => {});
    return s;
  };
  c.close = async () => {
    const s = c.stream;
    c.stream = null;
    if (s) await s.reset();
  };
  c.waitId = (id, ms = WAIT) => c.stream.waitFor((f) => f.id === id, ms, `${name}: id ${id}`);
  c.waitFrame = (pred, ms, what) => c.stream.waitFor(pred, ms, `${name}: ${what}`);
  return c;
}

async function post(node, room, data, extra = {}) {
  const r = await postMessage(node.url, room, { event: 'chat', data, ...extra });
  assert.equal(r.status, 202, `POST to ${room} on ${node.url}: ${r.status} ${r.text}`);
  return r;
}

const ready = (node, what) =>
  until(async () => (await request(node.url, 'GET', '/ready').catch(() => ({ status: 0 }))).status === 200, 20000, `${what}: /ready 200`);

const noErrors = (clients, led) => {
  assert.deepEqual(clients.flatMap((c) => c.errors), [], 'id order seen by the clients');
  assert.deepEqual(led.conflicts, [], 'an id reached clients with two payloads');
};

const history = (extra = []) => ['--history', '1000', ...extra];

// ---------------------------------------------------------------- tests

describe('rc-chat history and resume', { skip }, () => {
  test('3 nodes, 3 x 1000 posts, 100 clients reconnecting at random ids: contiguous, no duplicates', { timeout: 180000 }, async (t) => {
    const redis = await track.redis();
    const args = history(['--history', '5000', '--replay-max', '5000']);
    const nodes = await Promise.all([1, 2, 3].map((i) => track.node({ redisPort: redis.port, nodeId: `h-${i}-${process.pid}`, args })));
    const room = uniqueRoom('hist');
    const led = ledger();
    const pick = () => nodes[Math.floor(Math.random() * nodes.length)];
    const clients = Array.from({ length: 100 }, (_, i) => client(`c${i}`, led));
    const observer = client('observer', led);
    await Promise.all([observer, ...clients].map((c, i) => c.open(nodes[i % 3], room).hello(WAIT)));

    const PER = 1000;
    const posted = new Set();
    const publisher = async (p) => {
      const node = nodes[p];
      for (let n = 0; n < PER; n += 10) {
        await Promise.all(
          Array.from({ length: 10 }, (_, k) => {
            const data = { p, n: n + k };
            posted.add(JSON.stringify(data));
            return post(node, room, data);
          }),
        );
      }
    };
    let publishing = true;
    const pubs = Promise.all([0, 1, 2].map(publisher)).finally(() => (publishing = false));
    // Reconnect a random client (that has a cursor) on a random node, one
    // after another while the posts go on, half by header, half by query.
    let reconnects = 0;
    const deadline = Date.now() + 120000;
    while (publishing || reconnects < 200) {
      if (Date.now() > deadline) throw new Error(`reconnect loop: only ${reconnects} reconnects in 120 s (publishing: ${publishing})`);
      const c = clients[Math.floor(Math.random() * clients.length)];
      if (c.last) {
        await c.close();
        c.open(pick(), room, { query: reconnects % 2 === 1 });
        reconnects++;
      }
      await new Promise((r) => setTimeout(r, 5)); // pacing, not a wait for anything
    }
    await pubs;
    await until(() => observer.msgs.length >= 3 * PER, 60000, () => `the observer to see ${3 * PER} messages (has ${observer.msgs.length})`);
    const lastId = observer.last;
    // A client may have reconnected at the latest id already: its cursor,
    // not its current stream, must reach it.
    await Promise.all(clients.map((c) => until(() => c.last === lastId, 60000, () => `${c.name}: cursor ${c.last}, want ${lastId}`)));
    t.diagnostic(`${reconnects} reconnects; last id ${lastId}`);
    noErrors([observer, ...clients], led);
    assert.deepEqual(clients.flatMap((c) => c.resets.map((r) => `${c.name}: ${JSON.stringify(r)}`)), [], 'no client was reset');
    assert.equal(parseId(observer.msgs[0].id).s, 1n, 'a fresh room starts at S 1');
    assert.equal(parseId(lastId).s, BigInt(3 * PER), 'S counts every message');
    assert.deepEqual(new Set(observer.msgs.map((f) => f.data)), posted, 'every post once');
    for (const c of clients) assert.equal(c.msgs.length, 3 * PER, `${c.name}: every message once (${c.conns} connections)`);
  });

  test('Redis killed (no persistence) and restarted: a resume gets rc:reset and a larger E', { timeout: 60000 }, async () => {
    const redis = await redisAt(await freePort());
    const A = await track.node({ redisPort: redis.port, nodeId: `hk-${process.pid}`, args: history() });
    const room = uniqueRoom('kill');
    const led = ledger();
    const a = client('a', led);
    await a.open(A, room).hello(WAIT);
    for (let n = 0; n < 5; n++) await post(A, room, { n });
    await until(() => a.msgs.length === 5, WAIT, 'five messages');
    const before = parseId(a.last);
    const live = client('live', led); // stays connected through it all
    await live.open(A, room).hello(WAIT);
    await a.close();
    await redis.kill();
    await until(async () => JSON.parse((await request(A.url, 'GET', '/health')).text).redis === 'down', WAIT, "A's link down");
    // Redis down: a post is delivered here, without an id.
    await post(A, room, { n: 'down' });
    const f = await live.waitFrame((x) => x.data === '{"n":"down"}', WAIT, 'the post made while Redis is down');
    assert.equal(f.id, undefined, 'no id while Redis is down');
    await redisAt(redis.port);
    await ready(A, 'node A after the Redis restart');
    await post(A, room, { n: 'after' });
    a.open(A, room);
    const reset = await a.waitFrame((f) => f.event === 'rc:reset', WAIT, 'rc:reset');
    assert.ok(['epoch', 'unavailable'].includes(JSON.parse(reset.data).reason), `reset reason: ${reset.data}`);
    const now = parseId(reset.id);
    assert.ok(now && now.e > before.e, `new E ${reset.id} larger than ${before.e}`);
    await post(A, room, { n: 'later' });
    await until(() => a.msgs.some((x) => x.data.includes('later')), WAIT, 'the next message after the reset');
    await until(() => live.msgs.some((x) => x.data.includes('later')), WAIT, 'the next message on the live client');
    noErrors([a, live], led);
  });

  test('Redis restored from an older RDB: clients ahead get rc:reset "ahead", a new E, no id with two payloads', { timeout: 60000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rc-hist-'));
    try {
      const redis = await redisAt(await freePort(), dir);
      const A = await track.node({ redisPort: redis.port, nodeId: `hr-a-${process.pid}`, args: history() });
      const B = await track.node({ redisPort: redis.port, nodeId: `hr-b-${process.pid}`, args: history() });
      const room = uniqueRoom('rdb');
      const led = ledger();
      const a = client('a', led);
      await a.open(A, room).hello(WAIT);
      for (let n = 0; n < 10; n++) await post(B, room, { n });
      await until(() => a.msgs.length === 10, WAIT, 'ten messages');
      assert.equal(await redisCmd(redis.port, 'SAVE'), 'OK');
      for (let n = 10; n < 110; n++) await post(B, room, { n });
      await until(() => a.msgs.length === 110, WAIT, '110 messages');
      const ahead = parseId(a.last);
      await a.close(); // no member of the room on any node now
      await redis.kill();
      await redisAt(redis.port, dir);
      await ready(A, 'node A after the restore');
      await ready(B, 'node B after the restore');
      a.open(A, room);
      const reset = await a.waitFrame((f) => f.event === 'rc:reset', WAIT, 'rc:reset');
      assert.equal(JSON.parse(reset.data).reason, 'ahead', `reset: ${reset.data}`);
      assert.ok(parseId(reset.id).e > ahead.e, `fenced: new E in ${reset.id} larger than ${ahead.e}`);
      const b = client('b', led);
      await b.open(B, room).hello(WAIT);
      for (let n = 0; n < 20; n++) await post(n % 2 ? A : B, room, { again: n });
      await until(() => a.msgs.length === 130 && b.msgs.length === 20, WAIT, () => `20 more messages (a ${a.msgs.length}, b ${b.msgs.length})`);
      noErrors([a, b], led);
      assert.ok(b.msgs.every((f) => parseId(f.id).e > ahead.e), 'every new id is in the new epoch');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--history 50: a client away for 300 messages gets rc:reset "trimmed"', { timeout: 60000 }, async () => {
    const redis = await track.redis();
    const A = await track.node({ redisPort: redis.port, args: ['--history', '50'] });
    const room = uniqueRoom('trim');
    const led = ledger();
    const a = client('a', led);
    await a.open(A, room).hello(WAIT);
    await post(A, room, { n: 0 });
    await until(() => a.msgs.length === 1, WAIT, 'the first message');
    await a.close();
    for (let n = 1; n <= 300; n++) await post(A, room, { n });
    a.open(A, room);
    const reset = await a.waitFrame((f) => f.event === 'rc:reset', WAIT, 'rc:reset');
    assert.equal(JSON.parse(reset.data).reason, 'trimmed', reset.data);
    assert.equal(parseId(reset.id).s, 301n, `the reset moves the cursor to the latest id (${reset.id})`);
    await post(A, room, { n: 301 });
    await until(() => a.msgs.length === 2, WAIT, 'the live message after the reset');
    noErrors([a], led);
  });

  test('the Redis link of a node dropped ~2 s while publishing: no loss on its client', { skip: !haveSocat && 'socat is not installed', timeout: 60000 }, async (t) => {
    const redis = await track.redis();
    const port = await freePort();
    let socat;
    const startSocat = () => {
      socat = spawnTracked('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${redis.port}`], { stdio: 'ignore', detached: true });
    };
    const killSocat = () => {
      try {
        process.kill(-socat.proc.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    track.clients.push(killSocat);
    startSocat();
    await until(() => redisCmd(port, 'PING').catch(() => null), WAIT, 'socat to relay a PING');
    const A = await track.node({ redisUrl: `redis://127.0.0.1:${port}`, args: history() });
    const B = await track.node({ redisPort: redis.port, args: history() });
    const room = uniqueRoom('drop');
    const led = ledger();
    const a = client('a', led);
    await a.open(A, room).hello(WAIT);
    const N = 300;
    const pubs = (async () => {
      for (let n = 0; n < N; n++) {
        await post(B, room, { n });
        await new Promise((r) => setTimeout(r, 10)); // ~3 s of posts
      }
    })();
    await until(() => a.msgs.length >= 50, WAIT, 'the first 50 messages on A');
    killSocat();
    await until(async () => JSON.parse((await request(A.url, 'GET', '/health')).text).redis === 'down', WAIT, "A's link down");
    await new Promise((r) => setTimeout(r, 2000)); // the outage itself
    startSocat();
    await pubs;
    await until(() => a.msgs.length >= N, 30000, () => `all ${N} messages on A (has ${a.msgs.length})`);
    t.diagnostic(`rc:reset frames: ${JSON.stringify(a.resets)}`);
    noErrors([a], led);
    assert.deepEqual(a.resets, [], 'no reset: the gap was read back from the history');
    assert.deepEqual(
      a.msgs.map((f) => JSON.parse(f.data).n),
      Array.from({ length: N }, (_, n) => n),
      'every message, in order',
    );
  });

  test('GET /rooms/{room}/messages', async () => {
    const redis = await track.redis();
    const A = await track.node({ redisPort: redis.port, args: history() });
    const off = await track.node({ redisPort: redis.port });
    const room = uniqueRoom('read');
    const a = client('a', ledger());
    await a.open(A, room).hello(WAIT);
    const datas = [{ t: 'x' }, 'two', 3, [4, 'four'], null];
    for (const d of datas) await post(A, room, d);
    await postMessage(A.url, room, { data: 'plain' });
    await until(() => a.msgs.length === 6, WAIT, 'six messages');
    const get = (qs) => request(A.url, 'GET', `/rooms/${encodeURIComponent(room)}/messages${qs}`);
    const all = await get('');
    assert.equal(all.status, 200, all.text);
    assert.deepEqual(
      all.json.messages,
      a.msgs.map((f) => ({ id: f.id, event: f.event ?? null, data: JSON.parse(f.data) })),
    );
    assert.deepEqual(all.json.messages.map((m) => m.data), [...datas, 'plain'], 'data as JSON values');
    const some = await get(`?since=${encodeURIComponent(a.msgs[1].id)}&limit=2`);
    assert.deepEqual(some.json.messages.map((m) => m.id), [a.msgs[2].id, a.msgs[3].id]);
    assert.deepEqual((await get(`?since=${encodeURIComponent(a.last)}`)).json, { messages: [] });
    assert.deepEqual((await get('?since=nonsense')).json, { reset: 'unparsable' });
    assert.deepEqual((await get('?since=1-1')).json, { reset: 'epoch' });
    assert.equal((await get('?limit=0')).status, 400);
    assert.equal((await get('?limit=x')).status, 400);
    const r = await request(off.url, 'GET', `/rooms/${encodeURIComponent(room)}/messages`);
    assert.equal(r.status, 404, `history off: ${r.status} ${r.text}`);
  });

  test('a POSTed id in a history room: 400, nothing delivered', async () => {
    const redis = await track.redis();
    const A = await track.node({ redisPort: redis.port, args: history() });
    const room = uniqueRoom('pid');
    const a = client('a', ledger());
    await a.open(A, room).hello(WAIT);
    const r = await postMessage(A.url, room, { event: 'chat', id: 'mine-1', data: 1 });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error, /id/);
    await post(A, room, 2);
    const f = await a.waitFrame((x) => x.event === 'chat', WAIT, 'the message without id');
    assert.equal(f.data, '2', 'the refused message was not delivered');
    assert.ok(parseId(f.id), `an E-S id: ${f.id}`);
  });

  test('local mode (no Redis): history off, ids as posted, said in the log', async () => {
    const A = await track.node({ args: history() });
    await A.waitForLog(/history off/, WAIT);
    const room = uniqueRoom('local');
    const s = track.stream(roomUrl(A.url, room, '/events'));
    await s.hello(WAIT);
    assert.equal((await postMessage(A.url, room, { id: 'own-1', data: 1 })).status, 202);
    await s.waitFor((f) => f.id === 'own-1', WAIT, 'the posted id');
  });

  test('a Node reference node in the room: our ids reach it unchanged, its messages reach us', { skip: !haveRefModules && 'node_ref/node_modules missing', timeout: 60000 }, async () => {
    const redis = await track.redis();
    const A = await track.node({ redisPort: redis.port, args: history() });
    const room = uniqueRoom('ref');
    const ref = new JsonLinesNode('ref', process.execPath, [REF_NODE, '--redis', redis.url, '--node-id', `ref-${process.pid}`], WAIT);
    track.clients.push(() => ref.kill());
    await ref.waitFor((l) => 'ready' in l, 'ready line');
    await ref.command({ op: 'subscribe', room });
    const led = ledger();
    const a = client('a', led);
    await a.open(A, room).hello(WAIT);
    await post(A, room, { from: 'chat', n: 1 });
    const mine = await a.waitFrame((f) => f.event === 'chat', WAIT, 'our message');
    const there = await ref.waitFor((l) => l.event === 'message' && l.message?.data?.from === 'chat', 'our message at the reference');
    assert.equal(there.message.id, mine.id, 'the reference got our id unchanged');
    assert.match(there.sse, new RegExp(`^id: ${mine.id}\n`), 'and its client frame carries it');
    await ref.command({ op: 'publish', room, message: { event: 'chat', data: { from: 'ref' } } });
    await ref.command({ op: 'publish', room, message: { event: 'chat', data: { from: 'ref2' }, id: 'ref-id' } });
    const f1 = await a.waitFrame((f) => f.data === '{"from":"ref"}', WAIT, "the reference's message");
    const f2 = await a.waitFrame((f) => f.data === '{"from":"ref2"}', WAIT, "the reference's message with its id");
    assert.equal(f1.id, undefined, 'delivered as it is: no id');
    assert.equal(f2.id, 'ref-id', 'delivered as it is: its own id');
    // They are not in the history and do not move the sequence.
    await post(A, room, { from: 'chat', n: 2 });
    const next = await a.waitFrame((f) => f.data === '{"from":"chat","n":2}', WAIT, 'our next message');
    assert.equal(parseId(next.id).s, parseId(mine.id).s + 1n, `${next.id} follows ${mine.id}`);
    const read = await request(A.url, 'GET', `/rooms/${encodeURIComponent(room)}/messages`);
    assert.deepEqual(read.json.messages.map((m) => m.id), [mine.id, next.id], 'the history holds ours only');
    assert.deepEqual(led.conflicts, []);
    await bounded(ref.command({ op: 'quit' }), WAIT, 'the reference to quit');
  });
});

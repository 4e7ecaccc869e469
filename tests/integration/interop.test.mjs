// Interop between roomcast and the reference, on one redis-server of the
// test's own (loopback, free port, no persistence): a reference node
// (node_ref/ref-node.mjs, the real @opinionated-machine/sse-rooms-redis
// RedisAdapter) and C nodes (c_node.c, path in $RC_C_NODE), all driven by
// the same JSON-lines protocol.
//
//   RC_C_NODE=/path/to/c_node node --test interop.test.mjs
//
// Needs `npm ci` in node_ref/ and redis-server on PATH (or $REDIS_SERVER);
// without them, or without $RC_C_NODE, the suite is skipped.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sseFrame } from './node_ref/sse-frame.mjs';
import { JsonLinesNode, bounded, freePort, startRedis } from './node_ref/test-util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const NODE_REF_DIR = path.join(HERE, 'node_ref');
const REF_NODE = path.join(NODE_REF_DIR, 'ref-node.mjs');
const C_NODE = process.env.RC_C_NODE;
const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
const WAIT_MS = 5000;
const DEFAULT_PREFIX = 'sse:room:';

const haveModules = existsSync(path.join(NODE_REF_DIR, 'node_modules'));
const haveRedis = spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).status === 0;
const skip = !haveModules
  ? 'node_ref/node_modules missing (run npm ci in node_ref/)'
  : !haveRedis
    ? `${REDIS_SERVER} not found`
    : !C_NODE
      ? 'RC_C_NODE is not set'
      : !existsSync(C_NODE)
        ? `RC_C_NODE=${C_NODE} does not exist`
        : false;

// ioredis comes from node_ref's own node_modules (no dependency here).
const { Redis } = haveModules ? createRequire(path.join(NODE_REF_DIR, 'package.json'))('ioredis') : {};

// One node (reference or C) as a child process; stdout lines parsed as JSON.
class Peer extends JsonLinesNode {
  constructor(name, kind, file, args) {
    super(name, ...(kind === 'ref' ? [process.execPath, [file, ...args]] : [file, args]), WAIT_MS);
    this.kind = kind;
  }

  // C nodes only: a delivery of message id `id` to connection `conn`.
  delivery(id, conn) {
    return this.waitFor((l) => l.event === 'message' && l.message?.id === id && l.conn === conn, `${id} at ${conn}`);
  }
}

const byId = (id) => (l) => l.message?.id === id;

describe('roomcast C nodes and the reference node on one Redis', { skip }, () => {
  let redis;
  let url;
  let spy;
  const wire = []; // every payload on every channel: { channel, text }
  const peers = [];
  let ref;
  let c1;
  let c2;
  let markers = 0;

  const start = async (kind, name, extra = []) => {
    const p = new Peer(name, kind, kind === 'ref' ? REF_NODE : C_NODE, ['--redis', url, '--node-id', name, ...extra]);
    peers.push(p);
    const ready = await p.waitFor((l) => 'ready' in l, 'ready line');
    assert.deepEqual(ready, { ready: true, node: name });
    return p;
  };

  // Makes sure everything published so far on `room` has reached every
  // listed [C node, connection]: the reference publishes a marker after
  // those PUBLISHes were answered, and each subscriber connection gets the
  // channel's messages in Redis' order.
  const sync = async (targets, room = 'lobby', from = ref) => {
    const id = `marker-${++markers}`;
    await from.command({ op: 'publish', room, message: { data: 'marker', id } });
    await Promise.all(targets.map(([peer, conn]) => peer.delivery(id, conn)));
  };

  const wireFor = (channel, id) =>
    wire.filter((w) => w.channel === channel && JSON.parse(w.text).m?.id === id).map((w) => w.text);

  // The spy is one more subscriber connection: wait until it has the
  // payload(s) of message `id` on `channel`.
  const wireWait = async (channel, id) => {
    const deadline = Date.now() + WAIT_MS;
    while (wireFor(channel, id).length === 0) {
      if (Date.now() > deadline) throw new Error(`spy: no payload for ${id} on ${channel} within ${WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return wireFor(channel, id);
  };

  before(async () => {
    redis = await startRedis(REDIS_SERVER);
    url = redis.url;
    spy = new Redis(url, { maxRetriesPerRequest: 1 });
    spy.on('pmessage', (_pattern, channel, text) => wire.push({ channel, text }));
    await spy.psubscribe('*');
    [ref, c1, c2] = await Promise.all([start('ref', 'ref-1'), start('c', 'c-1'), start('c', 'c-2')]);
  });

  after(async () => {
    for (const p of peers) p.kill();
    await Promise.all(peers.map((p) => bounded(p.exited, WAIT_MS, `${p.name} to exit`).catch(() => {})));
    if (spy) spy.disconnect();
    if (redis) await redis.stop().catch(() => {});
  });

  test('every node joins the room; C nodes with extra connections', async () => {
    assert.deepEqual(await ref.command({ op: 'subscribe', room: 'lobby' }), { ok: 'subscribe', room: 'lobby' });
    for (const c of [c1, c2]) {
      assert.deepEqual(await c.command({ op: 'subscribe', room: 'lobby' }), { ok: 'subscribe', room: 'lobby' });
    }
    assert.deepEqual(await c1.command({ op: 'conn', id: 'c1-x', room: 'lobby' }), {
      ok: 'conn',
      id: 'c1-x',
      room: 'lobby',
    });
    await c2.command({ op: 'conn', id: 'c2-x', room: 'lobby' });
    await c2.command({ op: 'conn', id: 'c2-y', room: 'lobby' });
  });

  const cTargets = () => [
    [c1, 'sub:lobby'],
    [c1, 'c1-x'],
    [c2, 'sub:lobby'],
    [c2, 'c2-x'],
    [c2, 'c2-y'],
  ];

  test("a reference publish reaches C sinks with exactly the reference clients' bytes", async () => {
    const cases = [
      {
        message: { event: 'chat', data: { text: 'hi\nthere', n: 1, u: 'é ☃ 😀', q: '"\\/' }, id: 'r-1', retry: 2500 },
        meta: { tenant: 't1', list: [1, { x: null }] },
      },
      { message: { data: 'plain string', id: 'r-2' } },
      { message: { event: 'arr', data: [1, 2.5, -0.5e-7, 1e21, null, true, {}, []], id: 'r-3' }, meta: null },
      { message: { event: '', data: 0, id: 'r-4', retry: 0 } },
      { message: { data: null, id: 'r-5' }, meta: 'a string meta' },
      { message: { event: 'ünï-ev', data: { deep: { a: { b: { c: [[[]]] } } } }, id: 'r-6' } },
      { message: { data: 'cr\r\nlf\u2028ls\u0001ctl', id: 'r-7', retry: 1 } },
      { message: { data: { k: 'v' }, id: 'ïd-ü ☃' } },
    ];
    for (const { message, meta } of cases) {
      const cmd = { op: 'publish', room: 'lobby', message, ...(meta !== undefined ? { meta } : {}) };
      const a = await ref.command(cmd);
      // The subscribers of sse:room:lobby: three nodes' sub connections and the spy.
      assert.equal(a.receivers, 4, `receivers for ${message.id}`);
      const own = await ref.waitFor(byId(message.id), `own ${message.id} at the reference`);
      const expected = sseFrame(message);
      assert.equal(own.sse, expected, `the reference frames ${message.id} by the rule`);
      for (const [peer, conn] of cTargets()) {
        const got = await peer.delivery(message.id, conn);
        assert.equal(got.sse, expected, `${peer.name}/${conn}: frame of ${message.id}`);
        assert.equal(got.room, 'lobby');
        assert.equal(got.path, 'remote');
        assert.deepEqual(got.message.data, message.data, `${peer.name}/${conn}: data of ${message.id}`);
        for (const k of ['event', 'id', 'retry']) {
          assert.equal(got.message[k], message[k], `${peer.name}/${conn}: ${k} of ${message.id}`);
        }
        if (meta === undefined) assert.ok(!('meta' in got), `${peer.name}/${conn}: no meta expected`);
        else assert.deepEqual(got.meta, meta, `${peer.name}/${conn}: meta of ${message.id}`);
      }
    }
    // Exactly once per connection.
    await sync(cTargets());
    for (const { message } of cases) {
      for (const [peer, conn] of cTargets()) {
        assert.equal(peer.messages((l) => l.message?.id === message.id && l.conn === conn).length, 1, `${message.id} once at ${peer.name}/${conn}`);
      }
    }
  });

  test("a C broadcast reaches the reference's handler with event, data, id, retry and meta intact", async () => {
    const cases = [
      {
        message: { event: 'update', data: { a: [1, 2, { b: null }], s: 'x"y\\z\n', e: '€', big: 12345678901234567890 }, id: 'c-1', retry: 1000 },
        meta: { tenant: 't2', tags: ['a', 'b'], n: 1.5 },
      },
      { message: { data: 'just text', id: 'c-2' } },
      { message: { event: 'ev only', data: [], id: 'c-3' }, meta: [1, 'two'] },
      { message: { data: { n: -0 }, id: 'c-4 ☃', retry: 9007199254740991 }, meta: 0 },
      { message: { event: 'ünï', data: '\u2028\u2029<>&\u007f', id: 'c-5' }, meta: { s: '\u0000nul' } },
    ];
    for (const { message, meta } of cases) {
      const cmd = { op: 'publish', room: 'lobby', message, ...(meta !== undefined ? { meta } : {}) };
      const a = await c1.command(cmd);
      assert.deepEqual(a, { ok: 'publish', room: 'lobby', delivered: 2 }, `c-1's own two connections for ${message.id}`);
      const expected = { event: 'message', room: 'lobby', message: JSON.parse(JSON.stringify(message)), node: 'c-1' };
      if (meta !== undefined) expected.meta = meta;
      expected.sse = sseFrame(message);
      const got = await ref.waitFor(byId(message.id), `${message.id} at the reference`);
      assert.deepEqual(got, expected, `${message.id} as the reference's handler got it`);

      // On the wire: the very bytes the reference itself would publish.
      const text = await wireWait(`${DEFAULT_PREFIX}lobby`, message.id);
      assert.deepEqual(text, [JSON.stringify({ v: 1, m: message, n: 'c-1', meta })], `envelope of ${message.id}`);

      for (const conn of ['sub:lobby', 'c1-x']) {
        const local = await c1.delivery(message.id, conn);
        assert.equal(local.path, 'local');
        assert.equal(local.sse, expected.sse, `c-1/${conn} local frame of ${message.id}`);
      }
      for (const conn of ['sub:lobby', 'c2-x', 'c2-y']) {
        const remote = await c2.delivery(message.id, conn);
        assert.equal(remote.sse, expected.sse, `c-2/${conn} frame of ${message.id}`);
        if (meta === undefined) assert.ok(!('meta' in remote));
        else assert.deepEqual(remote.meta, meta, `c-2/${conn} meta of ${message.id}`);
      }
    }
  });

  test('except: the reference ignores "e", the other C node honours it', async () => {
    const message = { event: 'ex', data: { who: 'all but c2-x' }, id: 'x-1' };
    const a = await c1.command({ op: 'publish', room: 'lobby', message, meta: { k: 1 }, except: 'c2-x' });
    assert.equal(a.delivered, 2);
    const [text] = await wireWait(`${DEFAULT_PREFIX}lobby`, 'x-1');
    assert.equal(JSON.parse(text).e, 'c2-x', 'the envelope carries "e"');
    const got = await ref.waitFor(byId('x-1'), 'x-1 at the reference (it ignores "e")');
    assert.deepEqual(got.message, message);
    await c2.delivery('x-1', 'c2-y');
    await c2.delivery('x-1', 'sub:lobby');
    await sync(cTargets());
    assert.equal(c2.messages((l) => l.message?.id === 'x-1' && l.conn === 'c2-x').length, 0, 'c2-x must not get x-1');

    // And on the sending node itself, on the local path.
    const b = await c1.command({ op: 'publish', room: 'lobby', message: { data: 1, id: 'x-2' }, except: 'c1-x' });
    assert.equal(b.delivered, 1);
    await c1.delivery('x-2', 'sub:lobby');
    await ref.waitFor(byId('x-2'), 'x-2 at the reference');
    for (const conn of ['sub:lobby', 'c2-x', 'c2-y']) await c2.delivery('x-2', conn);
    await sync(cTargets());
    assert.equal(c1.messages((l) => l.message?.id === 'x-2' && l.conn === 'c1-x').length, 0, 'c1-x must not get x-2');
  });

  test('C nodes drop their own echoes: one delivery per connection on the sender', async () => {
    const before1 = (await c1.command({ op: 'stats' })).counters;
    await c1.command({ op: 'publish', room: 'lobby', message: { data: 'echo?', id: 'e-1' } });
    await c1.command({ op: 'publish', room: 'lobby', message: { data: 'echo? (no id)' } });
    await ref.waitFor(byId('e-1'), 'e-1 at the reference');
    await sync(cTargets());
    for (const conn of ['sub:lobby', 'c1-x']) {
      const got = c1.messages((l) => l.message?.id === 'e-1' && l.conn === conn);
      assert.equal(got.length, 1, `e-1 once at c-1/${conn}`);
      assert.equal(got[0].path, 'local');
      assert.equal(c1.messages((l) => l.message?.data === 'echo? (no id)' && l.conn === conn).length, 1);
    }
    for (const conn of ['sub:lobby', 'c2-x', 'c2-y']) {
      assert.equal(c2.messages((l) => l.message?.id === 'e-1' && l.conn === conn).length, 1, `e-1 once at c-2/${conn}`);
    }
    const after1 = (await c1.command({ op: 'stats' })).counters;
    assert.equal(after1.echoes - before1.echoes, 2, 'two echoes counted');
    assert.equal(after1.rejected, 0, 'nothing rejected');
    assert.equal((await c2.command({ op: 'stats' })).counters.rejected, 0);
  });

  test('a custom prefix works across both kinds, and only there', async () => {
    const prefix = 'app:rooms:';
    const [refP, cP] = await Promise.all([start('ref', 'ref-p', ['--prefix', prefix]), start('c', 'c-p', ['--prefix', prefix])]);
    await refP.command({ op: 'subscribe', room: 'lobby' });
    await cP.command({ op: 'subscribe', room: 'lobby' });

    const m1 = { event: 'p', data: { via: 'ref' }, id: 'p-1', retry: 10 };
    assert.equal((await refP.command({ op: 'publish', room: 'lobby', message: m1, meta: { m: 1 } })).receivers, 3);
    const got1 = await cP.delivery('p-1', 'sub:lobby');
    assert.equal(got1.sse, sseFrame(m1));
    assert.deepEqual(got1.meta, { m: 1 });

    const m2 = { event: 'p', data: { via: 'c' }, id: 'p-2' };
    await cP.command({ op: 'publish', room: 'lobby', message: m2, meta: { m: 2 } });
    const got2 = await refP.waitFor(byId('p-2'), 'p-2 at ref-p');
    assert.deepEqual(got2, { event: 'message', room: 'lobby', message: m2, node: 'c-p', meta: { m: 2 }, sse: sseFrame(m2) });
    assert.deepEqual(await wireWait(`${prefix}lobby`, 'p-2'), [JSON.stringify({ v: 1, m: m2, n: 'c-p', meta: { m: 2 } })]);
    assert.deepEqual(wireFor(`${DEFAULT_PREFIX}lobby`, 'p-2'), []);

    // Nothing crosses between the prefixes.
    await sync(cTargets());
    await ref.waitFor((l) => l.message?.id === `marker-${markers}`, 'marker at the reference');
    await refP.command({ op: 'publish', room: 'lobby', message: { data: 'after', id: 'p-3' } });
    await cP.delivery('p-3', 'sub:lobby');
    for (const p of [ref, c1, c2]) {
      assert.equal(p.messages((l) => /^p-/.test(l.message?.id)).length, 0, `${p.name} must not see prefixed rooms`);
    }
    for (const p of [refP, cP]) {
      assert.equal(p.messages((l) => /^marker-/.test(l.message?.id)).length, 0, `${p.name} must not see default rooms`);
    }
  });

  // An empty id is no id: the frame has no id line (here and in the
  // reference), and the reference's clients get both messages.
  test(
    'two reference messages with id "" both reach a C connection',
    async () => {
      for (const data of ['empty-id-1', 'empty-id-2']) {
        await ref.command({ op: 'publish', room: 'lobby', message: { data, id: '' } });
        const own = await ref.waitFor((l) => l.message?.data === data, `${data} at the reference`);
        assert.equal(own.sse, `data: "${data}"\n\n`);
      }
      await sync([[c1, 'sub:lobby']]);
      for (const data of ['empty-id-1', 'empty-id-2']) {
        const got = c1.messages((l) => l.message?.data === data && l.conn === 'sub:lobby');
        assert.equal(got.length, 1, `${data} at c-1/sub:lobby`);
        assert.equal(got[0].sse, `data: "${data}"\n\n`);
      }
    },
  );

  test('unsubscribe stops delivery on a C node', async () => {
    await c2.command({ op: 'subscribe', room: 'side' });
    assert.deepEqual(await c2.command({ op: 'unsubscribe', room: 'lobby' }), { ok: 'unsubscribe', room: 'lobby' });
    await ref.command({ op: 'publish', room: 'lobby', message: { data: 'gone', id: 'u-1' } });
    await sync([[c2, 'sub:side']], 'side');
    assert.equal(c2.messages(byId('u-1')).length, 0);
    await c1.delivery('u-1', 'sub:lobby');
  });

  test('a C node answers bad commands with errors and goes on', async () => {
    const from = c1.lines.length;
    c1.send('not json');
    c1.send({ op: 'nope' });
    c1.send({ op: 'subscribe' });
    c1.send({ op: 'publish', room: 'lobby', message: { id: 'no-data' } });
    c1.send({ op: 'publish', room: 'lobby', message: { data: 1, id: 'bad\nid' } });
    c1.send({ room: 'lobby' });
    c1.send({ op: 'ping' });
    await c1.waitFor((l) => l.ok === 'ping', 'ping answer after the bad commands', from);
    const errors = c1.lines.slice(from).filter((l) => 'error' in l);
    assert.deepEqual(
      errors.map((e) => ('op' in e ? e.op : 'absent')),
      ['absent', 'nope', 'subscribe', 'publish', 'publish', null],
      JSON.stringify(errors),
    );
  });

  test('C nodes exit 0 on quit, on end of stdin and on SIGTERM, with nothing on stderr from sanitizers', async () => {
    const cNodes = peers.filter((p) => p.kind === 'c');
    c1.send({ op: 'quit' });
    await c1.waitFor((l) => l.ok === 'quit', 'quit answer');
    c2.child.stdin.end();
    const rest = cNodes.filter((p) => p !== c1 && p !== c2);
    for (const p of rest) p.child.kill('SIGTERM');
    for (const p of cNodes) {
      const { code, signal } = await bounded(p.exited, WAIT_MS, `${p.name} to exit`);
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, `${p.name} exit (stderr: ${p.stderr})`);
      assert.doesNotMatch(p.stderr, /Sanitizer|runtime error|LeakSanitizer/, `${p.name} stderr`);
    }
  });

  test('a C node with bad arguments exits 2; with no Redis, 1', async () => {
    const bad = new Peer('c-bad', 'c', C_NODE, ['--redis', url]);
    peers.push(bad);
    assert.equal((await bounded(bad.exited, WAIT_MS, 'c-bad to exit')).code, 2);
    const deadPort = await freePort();
    const dead = new Peer('c-dead', 'c', C_NODE, ['--redis', `redis://127.0.0.1:${deadPort}`, '--node-id', 'dead']);
    peers.push(dead);
    const { code } = await bounded(dead.exited, WAIT_MS + 3000, 'c-dead to give up');
    assert.equal(code, 1);
    assert.match(dead.stderr, /cannot reach Redis/);
    assert.equal(dead.lines.length, 0, 'no ready line expected');
  });
});

// Self-test of ref-node.mjs against a redis-server of its own (loopback,
// free port, no persistence). Run from this folder: node --test
// Needs `npm ci` here first, and redis-server on PATH (or REDIS_SERVER).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { sseFrame } from './sse-frame.mjs';
import { JsonLinesNode, bounded, freePort, startRedis } from './test-util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REF_NODE = path.join(HERE, 'ref-node.mjs');
const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
const WAIT_MS = 5000;

const haveRedis = spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).status === 0;

// A ref-node child with its stdout parsed into a list of JSON lines.
class RefNode extends JsonLinesNode {
  constructor(name, args) {
    super(name, process.execPath, [REF_NODE, ...args], WAIT_MS);
  }
}

test('package-lock.json records no download URLs', () => {
  const lock = JSON.parse(readFileSync(path.join(HERE, 'package-lock.json'), 'utf8'));
  const withUrl = Object.entries(lock.packages).filter(([, v]) => 'resolved' in v);
  assert.deepEqual(withUrl.map(([k]) => k), []);
});

describe('sse frame rule (mirrors @fastify/sse formatSSEMessage with JSON.stringify)', () => {
  test('fields in order, falsy id/event/retry left out', () => {
    assert.equal(
      sseFrame({ id: '42', event: 'chat', data: { t: 'a\nb' }, retry: 1500 }),
      'id: 42\nevent: chat\ndata: {"t":"a\\nb"}\nretry: 1500\n\n',
    );
    assert.equal(sseFrame({ id: '', event: '', data: 0, retry: 0 }), 'data: 0\n\n');
    assert.equal(sseFrame({ data: 'plain' }), 'data: "plain"\n\n');
    assert.equal(sseFrame({ data: null }), 'data: null\n\n');
    assert.equal(sseFrame({ event: 'only' }), 'event: only\n\n');
    assert.equal(sseFrame({}), '');
    assert.equal(sseFrame('l1\nl2'), 'data: l1\ndata: l2\n\n');
    assert.equal(sseFrame(null), null);
  });
});

describe('ref-node against a real redis-server', { skip: haveRedis ? false : `${REDIS_SERVER} not found` }, () => {
  let redis;
  let port;
  let url;
  const nodes = [];
  let raw;

  const startNode = async (name, extra = []) => {
    const n = new RefNode(name, ['--redis', url, '--node-id', name, ...extra]);
    nodes.push(n);
    await n.waitFor((l) => l.ready === true, 'ready line');
    return n;
  };

  before(async () => {
    redis = await startRedis(REDIS_SERVER);
    ({ port, url } = redis);
    raw = new Redis(url, { maxRetriesPerRequest: 1 });
  });

  after(async () => {
    for (const n of nodes) n.kill();
    if (raw) raw.disconnect();
    if (redis) await redis.stop().catch(() => {});
  });

  let A;
  let B;

  test('two nodes start and subscribe', async () => {
    [A, B] = await Promise.all([startNode('A'), startNode('B')]);
    assert.deepEqual(A.lines[0], { ready: true, node: 'A' });
    assert.deepEqual(await A.command({ op: 'subscribe', room: 'lobby' }), { ok: 'subscribe', room: 'lobby' });
    assert.deepEqual(await B.command({ op: 'subscribe', room: 'lobby' }), { ok: 'subscribe', room: 'lobby' });
    assert.deepEqual(await B.command({ op: 'subscribe', room: 'marker' }), { ok: 'subscribe', room: 'marker' });
  });

  test('publish from A reaches B exactly once, and A gets its own message too', async () => {
    const message = { event: 'chat', data: { text: 'hi\nthere', n: 1 }, id: 'm-1', retry: 2500 };
    const meta = { tenant: 't1' };
    const answer = await A.command({ op: 'publish', room: 'lobby', message, meta });
    // Two subscribed connections: A's and B's sub clients.
    assert.deepEqual(answer, { ok: 'publish', room: 'lobby', receivers: 2 });

    const expectedSse = 'id: m-1\nevent: chat\ndata: {"text":"hi\\nthere","n":1}\nretry: 2500\n\n';
    const isFirst = (l) => l.event === 'message' && l.message?.id === 'm-1';
    const atB = await B.waitFor(isFirst, 'message m-1 at B');
    assert.deepEqual(atB, { event: 'message', room: 'lobby', message, node: 'A', meta, sse: expectedSse });

    // The adapter does not drop messages whose n is its own node id.
    const atA = await A.waitFor(isFirst, 'own message m-1 at A');
    assert.deepEqual(atA, atB);

    // Redis keeps order on one publisher connection: once a later message
    // has arrived at B, any duplicate of m-1 would already have arrived.
    await A.command({ op: 'publish', room: 'lobby', message: { data: 'after', id: 'm-2' } });
    await B.waitFor((l) => l.message?.id === 'm-2', 'message m-2 at B');
    await A.waitFor((l) => l.message?.id === 'm-2', 'message m-2 at A');
    assert.equal(B.messages((l) => l.message?.id === 'm-1').length, 1);
    assert.equal(A.messages((l) => l.message?.id === 'm-1').length, 1);
  });

  test('a publish without meta reports no meta', async () => {
    await A.command({ op: 'publish', room: 'lobby', message: { data: [1, 2] } });
    const got = await B.waitFor((l) => Array.isArray(l.message?.data), 'meta-less message at B');
    assert.ok(!('meta' in got), 'meta key should be absent');
    assert.equal(got.sse, 'data: [1,2]\n\n');
  });

  test('a hand-written envelope with an "e" key reaches B; "e" is ignored', async () => {
    const envelope =
      '{"v":1,"m":{"event":"raw","data":{"x":"y"},"id":"r-1"},"n":"c-node-1","e":["B","A"],"meta":{"k":"v"}}';
    const receivers = await raw.publish('sse:room:lobby', envelope);
    assert.equal(receivers, 2);
    const got = await B.waitFor((l) => l.message?.id === 'r-1', 'raw envelope at B');
    assert.deepEqual(got, {
      event: 'message',
      room: 'lobby',
      message: { event: 'raw', data: { x: 'y' }, id: 'r-1' },
      node: 'c-node-1',
      meta: { k: 'v' },
      sse: 'id: r-1\nevent: raw\ndata: {"x":"y"}\n\n',
    });
    // A, named in "e", gets it as well: the reference does not read "e".
    await A.waitFor((l) => l.message?.id === 'r-1', 'raw envelope at A');
  });

  test('envelopes with v !== 1 or bad JSON are dropped', async () => {
    await raw.publish('sse:room:lobby', '{"v":2,"m":{"data":"v2","id":"bad-v2"},"n":"x"}');
    await raw.publish('sse:room:lobby', 'not json');
    await raw.publish('sse:room:lobby', '{"v":1,"m":{"data":"ok","id":"good-1"},"n":"x"}');
    await B.waitFor((l) => l.message?.id === 'good-1', 'good envelope after bad ones at B');
    assert.equal(B.messages((l) => l.message?.id === 'bad-v2').length, 0);
  });

  test('unsubscribe stops delivery', async () => {
    assert.deepEqual(await B.command({ op: 'unsubscribe', room: 'lobby' }), { ok: 'unsubscribe', room: 'lobby' });
    const answer = await A.command({ op: 'publish', room: 'lobby', message: { data: 'gone', id: 'u-1' } });
    assert.equal(answer.receivers, 1);
    await A.command({ op: 'publish', room: 'marker', message: { data: 'mark', id: 'u-mark' } });
    await B.waitFor((l) => l.message?.id === 'u-mark', 'marker after unsubscribe at B');
    assert.equal(B.messages((l) => l.message?.id === 'u-1').length, 0);
  });

  test('--prefix changes the channel name', async () => {
    const C = await startNode('C', ['--prefix', 'custom:']);
    await C.command({ op: 'subscribe', room: 'lobby' });
    assert.equal(await raw.publish('custom:lobby', '{"v":1,"m":{"data":1,"id":"p-1"},"n":"z"}'), 1);
    const got = await C.waitFor((l) => l.message?.id === 'p-1', 'prefixed message at C');
    assert.equal(got.room, 'lobby');
  });

  test('bad commands get an error line and the node keeps going', async () => {
    const from = B.lines.length;
    B.child.stdin.write('not json\n');
    B.send({ op: 'nope' });
    B.send({ op: 'subscribe' });
    await B.waitFor((l) => l.error && l.op === 'subscribe', 'error for subscribe without room', from);
    const errors = B.lines.slice(from).filter((l) => 'error' in l);
    assert.equal(errors.length, 3);
    assert.deepEqual(await B.command({ op: 'ping' }), { ok: 'ping' });
  });

  test('quit disconnects and exits 0, with stdin still open', async () => {
    A.send({ op: 'quit' });
    await A.waitFor((l) => l.ok === 'quit', 'quit answer');
    const { code } = await bounded(A.exited, WAIT_MS, 'A to exit after quit');
    assert.equal(code, 0);
  });

  test('end of stdin is treated as quit', async () => {
    B.child.stdin.end();
    const { code } = await bounded(B.exited, WAIT_MS, 'B to exit after stdin EOF');
    assert.equal(code, 0);
  });

  test('unreachable Redis: non-zero exit with a message within the limit', async () => {
    const deadPort = await freePort();
    const n = new RefNode('dead', ['--redis', `redis://127.0.0.1:${deadPort}`, '--node-id', 'dead']);
    nodes.push(n);
    const { code } = await bounded(n.exited, WAIT_MS + 3000, 'ref-node to give up on dead Redis');
    assert.notEqual(code, 0);
    assert.match(n.stderr, /cannot reach Redis/);
    assert.equal(n.lines.length, 0, 'no ready line expected');
  });
});

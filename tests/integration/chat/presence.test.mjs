// Presence through rc-chat (DESIGN "rc-chat contract, room state"): real
// rc-chat nodes on one real redis-server, loopback only. Each observer
// stream keeps the view its frames give (rc:presence, then rc:join and
// rc:leave) and fails the test on a leave for a user it does not see or a
// join for one it sees. Short grace and lease (flags) keep it quick.
//
//   RC_CHAT=/abs/path/rc-chat node --test presence.test.mjs
//
// The clock-skew case runs the nodes under libfaketime (apt faketime).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RC_CHAT, redisCmd, request, roomUrl, startRedis, tracker, uniqueRoom, until } from './harness.mjs';
import { REDIS_SERVER } from './harness.mjs';

const skip = !RC_CHAT ? 'RC_CHAT is not set' : !existsSync(RC_CHAT) ? `RC_CHAT=${RC_CHAT} does not exist` : false;
const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

const GRACE = 1000;
const LEASE = 2000;
const ARGS = ['--grace-ms', String(GRACE), '--lease-ms', String(LEASE)];

const track = tracker();
after(() => track.end());

// An observer: a stream whose presence frames are applied to a view.
function observer(n, room, user) {
  const s = track.stream(roomUrl(n.url, room, user ? `/events?user=${encodeURIComponent(user)}` : '/events'));
  const o = { s, view: new Map(), joins: [], leaves: [], snapshots: 0, errors: [] };
  let seen = 0;
  o.apply = () => {
    for (; seen < s.frames.length; seen++) {
      const f = s.frames[seen];
      if (f.event === 'rc:presence') {
        if (f.id !== undefined) o.errors.push('rc:presence with an id line');
        const p = JSON.parse(f.data);
        if (p.users) {
          o.snapshots++;
          o.view = new Map(p.users.map((u) => [u.user, u.connections]));
        }
      } else if (f.event === 'rc:join') {
        const { user: u } = JSON.parse(f.data);
        if (o.view.has(u)) o.errors.push(`join of ${u}, already seen`);
        o.view.set(u, 1);
        o.joins.push(u);
      } else if (f.event === 'rc:leave') {
        const { user: u, reason } = JSON.parse(f.data);
        if (!o.view.has(u)) o.errors.push(`leave of ${u}, not seen`);
        o.view.delete(u);
        o.leaves.push([u, reason]);
      }
    }
    return o;
  };
  o.ready = async () => {
    await s.hello(10000);
    await s.waitFor((f) => f.event === 'rc:presence', 10000, 'rc:presence after rc:hello');
    return o.apply();
  };
  o.sees = (u) => o.apply().view.has(u);
  return o;
}

const users = (o) => [...o.apply().view.keys()].sort();
const clean = (os) => {
  for (const o of os) assert.deepEqual(o.apply().errors, [], 'an observer saw an inconsistent sequence');
};

// Redis' own view of room: users present (connections or in the grace).
async function redisUsers(port, room) {
  const base = `rc:{sse:room:${room}}:`;
  const pu = await redisCmd(port, 'HKEYS', `${base}pu`);
  const pg = await redisCmd(port, 'ZRANGE', `${base}pg`, '0', '-1');
  return [...pu, ...pg].sort();
}

describe('rc-chat presence', { skip }, () => {
  let redis;
  const nodes = [];
  test('setup: a redis-server and three nodes', async () => {
    redis = await track.redis();
    for (const id of ['p1', 'p2', 'p3']) {
      const n = await track.node({ redisPort: redis.port, nodeId: `${id}-${process.pid}`, args: ARGS });
      await n.waitForLog(/lease held/, 10000);
      nodes.push(n);
    }
  });

  test('rc:presence right after rc:hello, itself included; joins to the others; GET /users; POST leave', async () => {
    const room = uniqueRoom('pres');
    const [A, B] = nodes;
    const watch = observer(B, room);
    await watch.ready();
    const ada = observer(A, room, 'ada');
    await ada.ready();
    assert.equal(ada.s.frames.filter((f) => !f.comment)[0].event, 'rc:hello');
    assert.equal(ada.s.frames.filter((f) => !f.comment)[1].event, 'rc:presence');
    assert.deepEqual(users(ada), ['ada']);
    await until(() => watch.sees('ada'), 5000, 'the observer to see ada join');
    const join = watch.s.frames.find((f) => f.event === 'rc:join');
    assert.equal(join.raw, 'event: rc:join\ndata: {"user":"ada"}\n\n');
    const bob = observer(B, room, 'bob');
    await bob.ready();
    assert.deepEqual(users(bob), ['ada', 'bob']);

    const r = await request(A.url, 'GET', `/rooms/${encodeURIComponent(room)}`);
    assert.deepEqual(r.json.users, [
      { user: 'ada', connections: 1 },
      { user: 'bob', connections: 1 },
    ]);
    const all = await request(B.url, 'GET', '/users');
    assert.deepEqual(all.json.users.filter((u) => u.user === 'ada'), [{ user: 'ada', connections: 1, rooms: [room] }]);
    const one = await request(B.url, 'GET', '/users/ada');
    assert.deepEqual(one.json, { user: 'ada', online: true, connections: 1, rooms: [room] });
    const none = await request(B.url, 'GET', '/users/nobody');
    assert.deepEqual(none.json, { user: 'nobody', online: false, connections: 0, rooms: [] });

    // An explicit leave: at once (no grace), and the stream ends.
    const hello = JSON.parse(bob.s.frames.find((f) => f.event === 'rc:hello').data);
    const miss = await request(B.url, 'POST', `/rooms/${encodeURIComponent(room)}/leave`, { body: '{"connection":"nope"}' });
    assert.equal(miss.status, 404);
    const t0 = Date.now();
    const ok = await request(B.url, 'POST', `/rooms/${encodeURIComponent(room)}/leave`, { body: JSON.stringify({ connection: hello.connection }) });
    assert.equal(ok.status, 204);
    await bob.s.closed;
    await until(() => !watch.sees('bob'), 5000, 'the observer to see bob leave');
    assert.ok(Date.now() - t0 < GRACE, 'the explicit leave waited for the grace');
    assert.deepEqual(watch.leaves, [['bob', 'left']]);
    clean([watch, ada]);
  });

  test('grace across nodes: closed on A, back on B within it: no event anywhere; then one leave', async () => {
    const room = uniqueRoom('grace');
    const [A, B, C] = nodes;
    const obs = [observer(A, room), observer(B, room), observer(C, room)];
    await Promise.all(obs.map((o) => o.ready()));
    const ada1 = observer(A, room, 'ada');
    await ada1.ready();
    await until(() => obs.every((o) => o.sees('ada')), 5000, 'everyone to see ada');
    const joins = obs.map((o) => o.joins.length);
    await ada1.s.close();
    await sleep(GRACE / 4);
    const ada2 = observer(B, room, 'ada');
    await ada2.ready();
    await sleep(GRACE + 500);
    assert.deepEqual(obs.map((o) => o.apply().joins.length), joins, 'a join after the reconnect');
    assert.deepEqual(obs.map((o) => o.leaves.length), [0, 0, 0], 'a leave after the reconnect');
    const t0 = Date.now();
    await ada2.s.close();
    await until(() => obs.every((o) => !o.sees('ada')), GRACE + 5000, 'everyone to see ada leave');
    assert.ok(Date.now() - t0 >= GRACE - 100);
    await sleep(500);
    for (const o of obs) assert.deepEqual(o.apply().leaves, [['ada', 'left']]);
    clean(obs);
  });
});

describe('rc-chat presence: a node killed', { skip }, () => {
  test('kill -9 of a node: each of its users leaves once ("lost"), with the other nodes racing to reap', async (t) => {
    const redis = await track.redis();
    const [A, B, C] = await Promise.all(['k1', 'k2', 'k3'].map((id) => track.node({ redisPort: redis.port, nodeId: `${id}-${process.pid}`, args: ARGS })));
    await Promise.all([A, B, C].map((n) => n.waitForLog(/lease held/, 10000)));
    const room = uniqueRoom('kill');
    const obs = [observer(B, room), observer(C, room)];
    await Promise.all(obs.map((o) => o.ready()));
    const gone = ['u1', 'u2', 'u3'].map((u) => observer(A, room, u));
    await Promise.all(gone.map((o) => o.ready()));
    const stays = observer(B, room, 'u3'); // u3 has a tab on B too
    await stays.ready();
    await until(() => obs.every((o) => ['u1', 'u2', 'u3'].every((u) => o.sees(u))), 5000, 'everyone to see u1..u3');
    // A stream that lost its node is closed by the test (it would retry).
    const t0 = Date.now();
    A.proc.kill('SIGKILL');
    await until(() => obs.every((o) => !o.sees('u1') && !o.sees('u2')), LEASE + GRACE + 2000 + 3000, 'u1 and u2 to leave');
    const took = Date.now() - t0;
    t.diagnostic(`the killed node's users left ${took} ms after kill -9 (lease ${LEASE}, grace ${GRACE})`);
    assert.ok(took <= LEASE + GRACE + 2000 + 1000, `${took} ms`);
    await sleep(LEASE);
    for (const o of obs) {
      assert.deepEqual(o.apply().leaves.sort(), [
        ['u1', 'lost'],
        ['u2', 'lost'],
      ]);
      assert.ok(o.sees('u3'));
    }
    clean(obs);
  });

  test('the node that saw the close dies during the grace: still exactly one leave, from another node', async () => {
    const redis = await track.redis();
    const [A, B] = await Promise.all(['g1', 'g2'].map((id) => track.node({ redisPort: redis.port, nodeId: `${id}-${process.pid}`, args: ARGS })));
    await Promise.all([A, B].map((n) => n.waitForLog(/lease held/, 10000)));
    const room = uniqueRoom('gkill');
    const o = observer(B, room);
    await o.ready();
    const ada = observer(A, room, 'ada');
    await ada.ready();
    await until(() => o.sees('ada'), 5000, 'ada seen');
    await ada.s.close();
    await until(async () => (await redisCmd(redis.port, 'ZCARD', `rc:{sse:room:${room}}:pg`)) === 1, 5000, 'ada in the grace');
    A.proc.kill('SIGKILL');
    await until(() => !o.sees('ada'), GRACE + 5000, 'ada to leave');
    await sleep(LEASE + GRACE);
    assert.deepEqual(o.apply().leaves, [['ada', 'left']]);
    clean([o]);
  });
});

describe('rc-chat presence: churn, skewed clocks, Redis restarts', { skip }, () => {
  // Users open and close tabs at random on three nodes (two of them
  // running 30 s ahead and behind when skewed), observers come and go;
  // at rest every observer's view equals Redis', and each user's joins
  // and leaves alternate.
  // Sizes: PRESENCE_CHURN_USERS (30), _TABS (2 per user at most), _STEPS
  // (120), _STEP_MS (15); bench/run-presence-churn.sh runs the full size
  // (300 users, 3 tabs, a minute).
  const env = process.env;
  const USERS = Number(env.PRESENCE_CHURN_USERS || 30);
  const TABS = Number(env.PRESENCE_CHURN_TABS || 2);
  const STEPS = Number(env.PRESENCE_CHURN_STEPS || 120);
  const STEP_MS = Number(env.PRESENCE_CHURN_STEP_MS || 15);
  async function churn(t, { skew = false, steps = STEPS } = {}) {
    const redis = await track.redis();
    const faked = (off) => (skew ? { LD_PRELOAD: FAKETIME_LIB, FAKETIME: off, FAKETIME_DONT_RESET: '1' } : {});
    const nodes = await Promise.all(
      [
        ['c1', '+30s'],
        ['c2', '-30s'],
        ['c3', '+0s'],
      ].map(([id, off]) => track.node({ redisPort: redis.port, nodeId: `${id}-${process.pid}`, args: [...ARGS, '--announce-max', String(USERS + 1)], env: faked(off) })),
    );
    await Promise.all(nodes.map((n) => n.waitForLog(/lease held/, 10000)));
    const room = uniqueRoom('churn');
    const watchers = [observer(nodes[0], room), observer(nodes[1], room), observer(nodes[2], room)];
    await Promise.all(watchers.map((o) => o.ready()));
    const tabs = new Map();
    let seed = 11;
    const rnd = (n) => ((seed = (seed * 1103515245 + 12345) % 2147483648) >> 8) % n;
    for (let step = 0; step < steps; step++) {
      const k = rnd(USERS * TABS);
      if (tabs.has(k)) {
        tabs.get(k).s.reset();
        tabs.delete(k);
      } else {
        tabs.set(k, observer(nodes[rnd(3)], room, `u${k % USERS}`));
      }
      if (step % 20 === 10) watchers.push(observer(nodes[rnd(3)], room));
      await sleep(STEP_MS);
    }
    await sleep(GRACE + 1500);
    const truth = await redisUsers(redis.port, room);
    const alive = [...tabs.values()].map((o) => o.s);
    await Promise.all(watchers.map((o) => o.ready()));
    await until(() => watchers.every((o) => JSON.stringify(users(o)) === JSON.stringify(truth)), 10000, () => `every watcher to see ${truth.join(',')}; first: ${users(watchers[0]).join(',')}`);
    // The truth is what the open tabs say.
    const open = [...new Set([...tabs.keys()].map((k) => `u${k % USERS}`))].sort();
    assert.deepEqual(truth, open, 'Redis disagrees with the open tabs');
    for (const o of watchers.slice(0, 3)) {
      const per = new Map();
      for (const u of o.joins) per.set(u, (per.get(u) || 0) + 1);
      for (const [u] of o.leaves) per.set(u, (per.get(u) || 0) - 1);
      for (const [u, d] of per) assert.ok(d === 0 || d === 1, `${u}: joins - leaves = ${d}`);
    }
    clean(watchers);
    t.diagnostic(`${steps} steps, ${truth.length} users at rest; the first watcher saw ${watchers[0].joins.length} joins, ${watchers[0].leaves.length} leaves, ${watchers[0].snapshots} snapshots`);
    for (const s of alive) s.reset();
  }

  test('churn on three nodes: every view equals Redis at rest', (t) => churn(t));
  const noSkew = !existsSync(FAKETIME_LIB) ? 'libfaketime not installed' : process.env.RC_SANITIZED ? 'a sanitized rc-chat cannot have libfaketime preloaded' : false;
  test('churn with clocks 30 s apart (libfaketime): the same', { skip: noSkew }, (t) => churn(t, { skew: true }));
});

describe('rc-chat presence: Redis lost everything', { skip }, () => {
  test('kill -9 and restart of Redis (no persistence): no error, no join storm, one refresh per stream, the same members', async (t) => {
    const redis = await startRedis();
    const nodes = await Promise.all(['r1', 'r2'].map((id) => track.node({ redisPort: redis.port, nodeId: `${id}-${process.pid}`, args: ARGS })));
    await Promise.all(nodes.map((n) => n.waitForLog(/lease held/, 10000)));
    const room = uniqueRoom('restart');
    const obs = [observer(nodes[0], room), observer(nodes[1], room)];
    await Promise.all(obs.map((o) => o.ready()));
    const tabs = [];
    for (let i = 0; i < 10; i++) tabs.push(observer(nodes[i % 2], room, `u${i}`));
    await Promise.all(tabs.map((o) => o.ready()));
    const all = tabs.map((_, i) => `u${i}`).sort();
    await until(() => obs.every((o) => JSON.stringify(users(o)) === JSON.stringify(all)), 5000, 'everyone seen');
    const before = obs.map((o) => [o.joins.length, o.snapshots]);
    const marks = nodes.map((n) => n.stderr.length);
    await redis.stop(); // SIGKILL
    // Meanwhile the answers hold this node's own streams, marked stale.
    await until(async () => (await request(nodes[0].url, 'GET', '/ready')).status === 503, 5000, 'the node to see Redis gone');
    const alone = await request(nodes[0].url, 'GET', `/rooms/${encodeURIComponent(room)}`);
    assert.equal(alone.json.stale, true, alone.text);
    assert.deepEqual(alone.json.users.map((u) => u.user), ['u0', 'u2', 'u4', 'u6', 'u8']);
    const again = await startRedis(REDIS_SERVER, redis.port);
    track.keep(again);
    await Promise.all(nodes.map((n, i) => n.waitForLog(/redis up/, 15000, { since: marks[i] })));
    await until(() => obs.every((o) => o.apply().snapshots > before[obs.indexOf(o)][1]), 10000, 'a refreshed rc:presence on each observer');
    await sleep(GRACE + 500);
    const refilled = await redisUsers(again.port, room);
    assert.deepEqual(refilled, all, 'Redis refilled with the same users');
    // The room's refresh comes a second after the first sync, at a sweep.
    await until(() => obs.every((o) => JSON.stringify(users(o)) === JSON.stringify(all)), 5000, () => `the refreshed views: ${obs.map((o) => users(o).join(',')).join(' | ')}`);
    for (const [k, o] of obs.entries()) {
      assert.equal(o.joins.length, before[k][0], 'joins after the restart (a storm)');
      assert.deepEqual(o.leaves, []);
      t.diagnostic(`observer ${k}: ${o.snapshots - before[k][1]} refresh(es) after the restart`);
    }
    clean(obs);
  });
});

// Sessions through rc-chat (DESIGN "rc-chat contract, room state",
// Sessions and Rate limits; seed 000): the seed's flow end to end over
// HTTP on real rc-chat nodes sharing one real redis-server, loopback only.
//
//   RC_CHAT=/abs/path/rc-chat node --test sessions.test.mjs
//
// - create on node A, join on node B (the code typed loosely), a third
//   user refused (409), a second join takes no seat, streams on both nodes
//   get `message`, non-members are refused (403), leave frees the seat and
//   ends the leaver's stream, close ends every stream with rc:closed, then
//   410 everywhere;
// - POST /session over --session-rate: 429 with Retry-After; POST
//   /session/message over --post-rate: 429 with Retry-After;
// - Redis killed: create and join answer 503 with Retry-After;
// - a close while a node's Redis link is frozen (a socat proxy stopped with
//   SIGSTOP): once the link is back, that node's stream of the session gets
//   rc:closed and ends within a bounded wait (--verify-ms).
// Every wait is bounded and names what it waits for; nothing sleeps to
// synchronise.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { spawnTracked } from '../node_ref/test-util.mjs';
import { RC_CHAT, bounded, freePort, openStream, redisCmd, request, roomUrl, tracker, until } from './harness.mjs';

const haveSocat = spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;
const skip = !RC_CHAT ? 'RC_CHAT is not set' : !existsSync(RC_CHAT) ? `RC_CHAT=${RC_CHAT} does not exist` : false;
const WAIT = 10000;
const CODE = /^[0-9A-HJKMNP-TV-Z]{6}$/; // the default code: 6 of Crockford's base 32
const VERIFY_MS = 2000;

const track = tracker();
after(() => track.end());

// The seed's calls.
const call = (n, method, path, body) =>
  request(n.url, method, path, {
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' },
  });
const create = (n, userId) => call(n, 'POST', '/session', { userId });
const join = (n, userId, code) => call(n, 'POST', '/session/join', { userId, code });
const say = (n, userId, code, message) => call(n, 'POST', '/session/message', { message, code, userId });
const leave = (n, userId, code) => call(n, 'PUT', '/session/leave', { userId, code });
const close = (n, userId, code) => call(n, 'DELETE', '/session/close', { userId, code });
const streamUrl = (n, code, user) => roomUrl(n.url, `session:${code}`, user === undefined ? '/events' : `/events?user=${encodeURIComponent(user)}`);
const stream = (n, code, user) => track.stream(streamUrl(n, code, user));

// status and the seed's body, exactly.
function answers(r, status, body, what) {
  assert.equal(r.status, status, `${what}: status (body ${r.text})`);
  assert.deepEqual(r.json, body, `${what}: body`);
}
const fails = (r, status, what) => {
  assert.equal(r.status, status, `${what}: status (body ${r.text})`);
  assert.equal(r.json?.success, false, `${what}: {"success":false,...} (body ${r.text})`);
  assert.equal(typeof r.json.message, 'string', `${what}: a message (body ${r.text})`);
};
const retryAfter = (r, what) => {
  const v = r.headers['retry-after'];
  assert.match(v ?? '', /^[1-9][0-9]*$/, `${what}: Retry-After in whole seconds, at least 1 (headers ${JSON.stringify(r.headers)})`);
  return Number(v);
};

// A session created by user on node n: its code.
async function created(n, user) {
  const r = await create(n, user);
  assert.equal(r.status, 201, `POST /session for ${user}: ${r.text}`);
  assert.equal(r.json.success, true);
  assert.equal(r.json.message, 'Session created.');
  assert.match(r.json.data.code, CODE, `the code: ${r.text}`);
  assert.deepEqual(Object.keys(r.json), ['success', 'message', 'data']);
  return r.json.data.code;
}

// A stream refused with status (the body is the room routes' {"error"}).
// Not a tracked stream: resetting a socket that was ended already leaks
// its handle in Node 20 (uv_tcp_close_reset refuses a socket shutting
// down), and the test process would then never exit.
async function refused(url, status, what) {
  const s = openStream(url);
  await bounded(s.ready, WAIT, `${what}: the answer`);
  assert.equal(s.status, status, `${what}: status (${s.raw.slice(0, 200)})`);
  await bounded(s.closed, WAIT, `${what}: the refused stream to close`);
}

// The stream gets rc:closed, then ends.
async function closedFor(s, what, ms = WAIT) {
  const f = await s.waitFor((x) => x.event === 'rc:closed', ms, `${what}: rc:closed`);
  assert.equal(f.id, undefined, `${what}: rc:closed carries no id`);
  await bounded(s.closed, ms, `${what}: the stream to end after rc:closed`);
}

// Polled while links freeze and come back: a request that fails (CI saw an
// ECONNRESET once) is a "not yet", the poll's deadline still bounds it.
const health = async (n) => (await request(n.url, 'GET', '/health').catch(() => null))?.json?.redis;

describe('rc-chat sessions', { skip }, () => {
  let redis;
  let A;
  let B;
  test('setup: a redis-server and two nodes', async () => {
    redis = await track.redis();
    A = await track.node({ redisPort: redis.port, nodeId: `sa-${process.pid}`, args: ['--session-rate', '0'] });
    B = await track.node({ redisPort: redis.port, nodeId: `sb-${process.pid}`, args: ['--session-rate', '0'] });
    await A.waitForLog(/lease held/, WAIT);
    await B.waitForLog(/lease held/, WAIT);
  });

  test('the seed-000 flow over two nodes: create, join, full, message, leave, close, 410', async () => {
    const code = await created(A, 'ada');
    const ada = stream(A, code, 'ada');
    assert.equal((await ada.hello(WAIT)).room, `session:${code}`);

    // Typed loosely: lower case, 0 as O, 1 as I or L.
    const typed = code.toLowerCase().replace(/0/g, 'o').replace(/1/g, 'l');
    answers(await join(B, 'bob', typed), 200, { success: true, message: `bob joined session ${code}` }, 'bob joins on B');
    answers(await join(A, 'bob', code), 200, { success: true, message: `bob joined session ${code}` }, 'bob joins again');
    const bob = stream(B, code, 'bob');
    await bob.hello(WAIT);
    fails(await join(B, 'cat', code), 409, 'cat joins a full session');
    fails(await join(A, 'cat', code), 409, 'cat joins a full session on A');

    // Members only, on either node.
    await refused(streamUrl(A, code, 'cat'), 403, 'a non-member stream');
    await refused(streamUrl(B, code), 403, 'a stream without a user');
    fails(await say(A, 'cat', code, 'let me in'), 403, 'a non-member message');

    answers(await say(A, 'ada', code, 'everything in its right place...'), 202, { success: true, message: 'Message sent.' }, 'ada says');
    const want = 'event: message\ndata: {"userId":"ada","message":"everything in its right place..."}\n\n';
    for (const [s, name] of [
      [ada, 'ada on A'],
      [bob, 'bob on B'],
    ]) {
      const f = await s.waitFor((x) => x.event === 'message', WAIT, `${name}: the message`);
      assert.equal(f.raw, want, `${name}: the frame`);
    }
    answers(await say(B, 'bob', code, 'héllo\n"quoted"'), 202, { success: true, message: 'Message sent.' }, 'bob says');
    const f = await ada.waitFor((x) => x.event === 'message' && x.data.includes('bob'), WAIT, "ada: bob's message");
    assert.deepEqual(JSON.parse(f.data), { userId: 'bob', message: 'héllo\n"quoted"' });

    // Leave: the seat is free at once, bob's stream ends (no rc:closed).
    answers(await leave(B, 'bob', code), 200, { success: true, message: `bob left session ${code}` }, 'bob leaves');
    await bounded(bob.closed, WAIT, "bob's stream to end after his leave");
    assert.ok(!bob.frames.some((x) => x.event === 'rc:closed'), 'a leave is not a close');
    fails(await say(B, 'bob', code, 'still here?'), 403, 'a message after leaving');
    answers(await join(B, 'cat', code), 200, { success: true, message: `cat joined session ${code}` }, 'cat takes the free seat');
    const cat = stream(B, code, 'cat');
    await cat.hello(WAIT);

    // Close: members only; then every stream on every node ends.
    fails(await close(A, 'bob', code), 403, 'a close by a non-member');
    answers(
      await close(A, 'ada', code),
      200,
      { success: true, message: `Session ${code} has been closed and is no longer valid.` },
      'ada closes',
    );
    await closedFor(ada, 'ada on A');
    await closedFor(cat, 'cat on B');

    // Afterwards: 410 for everything.
    fails(await join(B, 'dan', code), 410, 'a join after the close');
    fails(await join(A, 'cat', code), 410, 'a member joining after the close');
    fails(await say(A, 'ada', code, 'anyone?'), 410, 'a message after the close');
    fails(await close(B, 'cat', code), 410, 'a second close');
    await refused(streamUrl(A, code, 'ada'), 410, 'a stream after the close');
    await refused(streamUrl(B, code, 'cat'), 410, 'a stream after the close on B');
  });

  test('bad requests: 400, unknown code 404, wrong method 405', async () => {
    fails(await call(A, 'POST', '/session', 'not json'), 400, 'a body that is not JSON');
    fails(await call(A, 'POST', '/session', '[1]'), 400, 'a body that is not an object');
    fails(await call(A, 'POST', '/session', {}), 400, 'no userId');
    fails(await call(A, 'POST', '/session', { userId: 7 }), 400, 'a userId that is not a string');
    fails(await call(A, 'POST', '/session', { userId: 'a\u0001b' }), 400, 'a control character in userId');
    fails(await join(A, 'ada', 42), 400, 'a code that is not a string');
    fails(await join(A, 'ada', 'no way!'), 400, 'a code outside the alphabet');
    fails(await call(A, 'POST', '/session/join', { userId: 'ada' }), 400, 'no code');
    const code = await created(A, 'ada');
    fails(await call(A, 'POST', '/session/message', { userId: 'ada', code }), 400, 'no message');
    fails(await join(B, 'bob', code === 'ZZZZZZ' ? 'YYYYYY' : 'ZZZZZZ'), 404, 'an unknown code');
    await refused(streamUrl(B, code === 'ZZZZZZ' ? 'YYYYYY' : 'ZZZZZZ', 'bob'), 404, 'the stream of an unknown code');
    const r = await call(A, 'GET', '/session/join', undefined);
    fails(r, 405, 'GET /session/join');
    assert.equal(r.headers.allow, 'POST');
    assert.equal((await call(A, 'POST', '/session/close', { userId: 'ada', code })).headers.allow, 'DELETE');
    // A session's room takes no posts by the room route (members post via
    // POST /session/message).
    const p = await call(A, 'POST', `/rooms/${encodeURIComponent(`session:${code}`)}/messages`, { event: 'x', data: 1 });
    assert.equal(p.status, 403, p.text);
    answers(await close(A, 'ada', code), 200, { success: true, message: `Session ${code} has been closed and is no longer valid.` }, 'clean up');
  });

  test('POST /session over --session-rate: 429 with Retry-After, nothing created', async () => {
    const R = await track.node({ redisPort: redis.port, nodeId: `sr-${process.pid}`, args: ['--session-rate', '2'] });
    await R.waitForLog(/lease held/, WAIT);
    await created(R, 'ada');
    await created(R, 'bob');
    const r = await create(R, 'cat');
    fails(r, 429, 'a third session within the hour');
    const secs = retryAfter(r, 'the 429');
    assert.ok(secs >= 1000 && secs <= 1800, `Retry-After ${secs}: one session per 1800 s`);
    assert.equal(typeof r.json.error, 'string', `a rate refusal has "error" too: ${r.text}`);
    assert.equal(r.headers.connection, 'close', 'a refusal closes the connection');
  });

  test('POST /session/message over --post-rate: 429 with Retry-After', async () => {
    const P = await track.node({
      redisPort: redis.port,
      nodeId: `sp-${process.pid}`,
      args: ['--session-rate', '0', '--post-rate', '1', '--post-burst', '1'],
    });
    await P.waitForLog(/lease held/, WAIT);
    const code = await created(P, 'ada');
    const ada = stream(P, code, 'ada');
    await ada.hello(WAIT);
    answers(await say(P, 'ada', code, 'one'), 202, { success: true, message: 'Message sent.' }, 'the first message');
    const r = await say(P, 'ada', code, 'two');
    fails(r, 429, 'a second message at once');
    retryAfter(r, 'the 429');
    await ada.waitFor((x) => x.event === 'message', WAIT, 'the first message');
    answers(await close(P, 'ada', code), 200, { success: true, message: `Session ${code} has been closed and is no longer valid.` }, 'clean up');
    await closedFor(ada, 'ada');
  });

  test('Redis killed: create and join answer 503 with Retry-After', async () => {
    const r2 = await track.redis();
    const D = await track.node({ redisPort: r2.port, nodeId: `sd-${process.pid}`, args: ['--session-rate', '0'] });
    await D.waitForLog(/lease held/, WAIT);
    const code = await created(D, 'ada');
    await r2.stop();
    await until(async () => (await health(D)) === 'down', WAIT, 'node D to see Redis down');
    const c = await create(D, 'bob');
    fails(c, 503, 'create while Redis is down');
    retryAfter(c, 'the 503 of create');
    const j = await join(D, 'bob', code);
    fails(j, 503, 'join while Redis is down');
    retryAfter(j, 'the 503 of join');
    await refused(streamUrl(D, code, 'ada'), 503, 'a session stream while Redis is down');
  });

  test('a close while a node is cut off (its Redis link frozen): its stream ends once it is back', { skip: !haveSocat && 'socat is not installed' }, async (t) => {
    // Node C reaches Redis through socat, in its own process group.
    const port = await freePort();
    const socat = spawnTracked('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${redis.port}`], {
      stdio: 'ignore',
      detached: true,
    });
    const group = (sig) => {
      try {
        process.kill(-socat.proc.pid, sig);
      } catch {
        /* gone */
      }
    };
    track.clients.push(() => {
      group('SIGKILL');
      group('SIGCONT');
    });
    await until(() => redisCmd(port, 'PING').catch(() => null), WAIT, 'socat to relay a PING');
    const C = await track.node({
      redisUrl: `redis://127.0.0.1:${port}`,
      nodeId: `sc-${process.pid}`,
      args: ['--session-rate', '0', '--verify-ms', String(VERIFY_MS)],
    });
    await C.waitForLog(/lease held/, WAIT);

    const code = await created(A, 'ada');
    const ada = stream(A, code, 'ada');
    await ada.hello(WAIT);
    answers(await join(C, 'cat', code), 200, { success: true, message: `cat joined session ${code}` }, 'cat joins on C');
    const cat = stream(C, code, 'cat');
    await cat.hello(WAIT);

    // Freeze C's link, close the session meanwhile: C hears nothing of it.
    group('SIGSTOP');
    const t0 = Date.now();
    answers(
      await close(A, 'ada', code),
      200,
      { success: true, message: `Session ${code} has been closed and is no longer valid.` },
      'ada closes on A',
    );
    await closedFor(ada, 'ada on A');
    await until(async () => (await health(C)) === 'down', 20000, "node C to find its frozen link down (the link's probe)");
    t.diagnostic(`C's link found down ${Date.now() - t0} ms after the freeze; cat's stream ${cat.isClosed ? 'already ended' : 'still open'}`);

    // Back: C learns of the close (at its reconnection, else at its next
    // verification) and ends the stream, with rc:closed.
    group('SIGCONT');
    const t1 = Date.now();
    await until(async () => (await health(C)) === 'up', 20000, "node C's link to come back");
    await closedFor(cat, 'cat on C after the thaw', VERIFY_MS + 10000);
    t.diagnostic(`cat's stream on C ended ${Date.now() - t1} ms after SIGCONT (verify period ${VERIFY_MS} ms)`);
    await refused(streamUrl(C, code, 'cat'), 410, 'a stream on C after the close');
  });
});

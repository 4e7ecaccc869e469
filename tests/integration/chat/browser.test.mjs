// The chat page in a real headless Chromium: two pages on two rc-chat
// nodes sharing one redis-server talk to each other, see each other in the
// member list, and are saved as screenshots (artifacts/browser-a.png,
// browser-b.png, and both side by side in artifacts/two-nodes.png; also
// copied to $RC_SCREENSHOT_OUT when set).
//
//   RC_CHAT=/abs/path/rc-chat node --test browser.test.mjs
//
// Chromium: $CHROMIUM or /usr/bin/chromium; without it the test is skipped.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { RC_CHAT, REDIS_SERVER, startNode, startRedis, until as poll } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(HERE, 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 15000;

const haveRedis = spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).status === 0;
const skip = !RC_CHAT
  ? 'RC_CHAT is not set'
  : !existsSync(RC_CHAT)
    ? `RC_CHAT=${RC_CHAT} does not exist`
    : !haveRedis
      ? `${REDIS_SERVER} not found`
      : false;

const procs = [];
let browser;
after(async () => {
  if (browser) await browser.close().catch(() => {});
  await Promise.all(procs.map((p) => (p.kill ?? p.stop)().catch(() => {})));
});

// Page state for failure messages.
const pageState = (page) =>
  page
    .evaluate(() => ({
      state: document.querySelector('#state')?.textContent,
      node: document.querySelector('#node')?.textContent,
      error: document.querySelector('#error')?.textContent,
      members: [...document.querySelectorAll('#members li .name')].map((e) => e.textContent),
      messages: [...document.querySelectorAll('#messages .msg')].map((m) => [m.querySelector('.user')?.textContent, m.querySelector('.text')?.textContent]),
    }))
    .then(JSON.stringify)
    .catch((err) => `(page state unavailable: ${err.message})`);

// Resolves when fn(arg) is truthy in the page; else fails naming `what`.
async function until(page, name, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 100 });
  } catch (err) {
    throw new Error(`page ${name}: timed out after ${WAIT_MS} ms waiting for ${what}; page: ${await pageState(page)} (${err.message.split('\n')[0]})`);
  }
}

const connected = (page, name) => until(page, name, () => document.querySelector('#state')?.textContent === 'connected', null, '#state "connected"');

const hasMessage = (page, name, user, text) =>
  until(
    page,
    name,
    ([u, t]) => [...document.querySelectorAll('#messages .msg')].some((m) => m.querySelector('.user')?.textContent === u && m.querySelector('.text')?.textContent === t),
    [user, text],
    `a message from ${user}: ${JSON.stringify(text)}`,
  );

const hasMembers = (page, name, users) =>
  until(
    page,
    name,
    (us) => {
      const names = [...document.querySelectorAll('#members li .name')].map((e) => e.textContent).sort();
      return JSON.stringify(names) === JSON.stringify(us);
    },
    [...users].sort(),
    `exactly the members ${users.join(', ')} (the random name of the first join gone)`,
  );

test('two browsers on two nodes chat through Redis', { skip, timeout: 90000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`chromium not installed (${CHROMIUM}; set CHROMIUM)`);
    return;
  }
  const redis = await startRedis();
  procs.push(redis);
  const n1 = await startNode({ redisPort: redis.port, nodeId: 'node-1' });
  procs.push(n1);
  const n2 = await startNode({ redisPort: redis.port, nodeId: 'node-2' });
  procs.push(n2);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  const room = `lobby-${Math.random().toString(36).slice(2, 8)}`;
  const pageErrors = [];
  const open = async (name, node, user) => {
    const context = await browser.newContext({ viewport: { width: 800, height: 520 } });
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
    await page.goto(`${node.url}/#room=${encodeURIComponent(room)}`);
    await connected(page, name); // auto-joined from the hash, random user
    assert.equal(await page.inputValue('#room'), room, `page ${name} did not take the room from the URL hash`);
    await page.fill('#user', user);
    await page.click('#join');
    await connected(page, name);
    await until(page, name, (u) => document.querySelector('#members li.me .name')?.textContent === u, user, `itself (${user}) in the member list`);
    assert.equal(await page.textContent('#node'), node.nodeId, `page ${name} shows the wrong node`);
    return page;
  };
  const a = await open('A', n1, 'ada');
  const b = await open('B', n2, 'bob');

  const hi = `hello from ada ${Date.now()}`;
  await a.fill('#text', hi);
  await a.press('#text', 'Enter');
  await hasMessage(b, 'B', 'ada', hi);
  await hasMessage(a, 'A', 'ada', hi);
  assert.equal(await a.inputValue('#text'), '', 'the input is cleared after sending');

  const back = `hi ada, bob here <b>not bold</b> ${Date.now()}`;
  await b.fill('#text', back);
  await b.click('#send');
  await hasMessage(a, 'A', 'bob', back);
  await hasMessage(b, 'B', 'bob', back);
  // Shown as text, never as markup.
  assert.equal(await a.locator('#messages .msg b').count(), 0, 'a message was rendered as HTML');

  await hasMembers(a, 'A', ['ada', 'bob']);
  await hasMembers(b, 'B', ['ada', 'bob']);
  for (const [page, name] of [
    [a, 'A'],
    [b, 'B'],
  ]) {
    assert.equal(await page.textContent('#state'), 'connected', `page ${name}: ${await pageState(page)}`);
    assert.equal(await page.textContent('#error'), '', `page ${name} shows an error`);
    // Each message once.
    const texts = await page.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
    assert.deepEqual(texts.filter((x) => x === hi || x === back), [hi, back], `page ${name}: messages ${JSON.stringify(texts)}`);
  }
  assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');

  // Screenshots: each page, then both side by side.
  mkdirSync(ARTIFACTS, { recursive: true });
  const shotA = path.join(ARTIFACTS, 'browser-a.png');
  const shotB = path.join(ARTIFACTS, 'browser-b.png');
  await a.screenshot({ path: shotA });
  await b.screenshot({ path: shotB });
  const dataUrl = (f) => `data:image/png;base64,${readFileSync(f).toString('base64')}`;
  const combo = await (await browser.newContext({ viewport: { width: 1660, height: 600 } })).newPage();
  await combo.setContent(`<!DOCTYPE html><html><body style="margin:0;padding:12px;background:#c9ced6;font:14px system-ui,sans-serif;display:flex;gap:12px">
    <figure style="margin:0"><img src="${dataUrl(shotA)}" style="display:block;border:1px solid #8a919c" width="800"><figcaption style="padding-top:4px">node 1 (port ${n1.port})</figcaption></figure>
    <figure style="margin:0"><img src="${dataUrl(shotB)}" style="display:block;border:1px solid #8a919c" width="800"><figcaption style="padding-top:4px">node 2 (port ${n2.port})</figcaption></figure>
  </body></html>`);
  await combo.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 5000 });
  const both = path.join(ARTIFACTS, 'two-nodes.png');
  await combo.screenshot({ path: both, fullPage: true });
  if (process.env.RC_SCREENSHOT_OUT) copyFileSync(both, process.env.RC_SCREENSHOT_OUT);
  t.diagnostic(`screenshots: ${shotA}, ${shotB}, ${both}${process.env.RC_SCREENSHOT_OUT ? ` (copied to ${process.env.RC_SCREENSHOT_OUT})` : ''}`);
});

// Presence as the pages show it: two pages on two nodes see each other
// join; a reload on one shows the other nothing (it is back within the
// grace); closing it shows one leave once the grace is over.
test('presence in the page: join seen, a reload unseen, a closed tab leaves after the grace', { skip, timeout: 90000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`chromium not installed (${CHROMIUM}; set CHROMIUM)`);
    return;
  }
  const GRACE = 3000;
  const redis = await startRedis();
  procs.push(redis);
  const args = ['--grace-ms', String(GRACE)];
  const n1 = await startNode({ redisPort: redis.port, nodeId: 'node-p1', args });
  procs.push(n1);
  const n2 = await startNode({ redisPort: redis.port, nodeId: 'node-p2', args });
  procs.push(n2);
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  const room = `presence-${Math.random().toString(36).slice(2, 8)}`;
  const open = async (name, node, user) => {
    const context = await browser.newContext({ viewport: { width: 800, height: 520 } });
    await context.addInitScript((u) => localStorage.setItem('roomcast-chat.user', u), user);
    const page = await context.newPage();
    await page.goto(`${node.url}/#room=${encodeURIComponent(room)}`);
    await connected(page, name);
    return { page, context };
  };
  const notices = (page) => page.$$eval('#messages .msg.generic .text', (els) => els.map((e) => e.textContent));
  const a = await open('A', n1, 'ada');
  const b = await open('B', n2, 'bob');
  await hasMembers(a.page, 'A', ['ada', 'bob']);
  await hasMembers(b.page, 'B', ['ada', 'bob']);
  await until(a.page, 'A', () => [...document.querySelectorAll('#messages .msg.generic .text')].some((e) => e.textContent === 'bob joined'), null, 'the notice "bob joined"');

  // A reload: back within the grace, so A hears nothing of it.
  const before = (await notices(a.page)).length;
  await b.page.reload();
  await connected(b.page, 'B');
  await hasMembers(b.page, 'B', ['ada', 'bob']);
  await a.page.waitForTimeout(GRACE + 1000); // the grace must pass to show nothing came
  assert.deepEqual((await notices(a.page)).slice(before), [], 'A saw a notice for B\'s reload');
  await hasMembers(a.page, 'A', ['ada', 'bob']);

  // A closed tab: one leave, after the grace.
  const t0 = Date.now();
  await b.context.close();
  await until(a.page, 'A', () => [...document.querySelectorAll('#messages .msg.generic .text')].some((e) => e.textContent === 'bob left'), null, 'the notice "bob left"');
  const took = Date.now() - t0;
  t.diagnostic(`"bob left" shown ${took} ms after the tab closed (grace ${GRACE} ms)`);
  assert.ok(took >= GRACE - 200, `the leave came before the grace was over (${took} ms)`);
  await hasMembers(a.page, 'A', ['ada']);
  assert.deepEqual((await notices(a.page)).filter((x) => x === 'bob left'), ['bob left']);
});

// Sessions in the page (seed 000): A creates a session (its code shown), B
// joins by code on the other node, C is refused (full); A's message reaches
// B; A closes: both pages show it closed and their streams are over.
test('sessions in the page: create, join by code, full, close ends both', { skip, timeout: 90000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`chromium not installed (${CHROMIUM}; set CHROMIUM)`);
    return;
  }
  const redis = await startRedis();
  procs.push(redis);
  const n1 = await startNode({ redisPort: redis.port, nodeId: 'node-s1' });
  procs.push(n1);
  const n2 = await startNode({ redisPort: redis.port, nodeId: 'node-s2' });
  procs.push(n2);
  await n1.waitForLog(/lease held/, WAIT_MS);
  await n2.waitForLog(/lease held/, WAIT_MS);
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  const pageErrors = [];
  const open = async (name, node, user) => {
    const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
    await context.addInitScript((u) => localStorage.setItem('roomcast-chat.user', u), user);
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
    await page.goto(`${node.url}/`);
    await connected(page, name); // the lobby, at first
    return page;
  };
  const session = (page, name, state, what) =>
    until(page, name, (s) => document.querySelector('#session')?.dataset.s === s, state, `#session data-s="${state}" (${what})`).catch(async (err) => {
      throw new Error(`${err.message}; #session: ${await page.textContent('#session').catch(() => '?')}`);
    });
  const a = await open('A', n1, 'ada');
  const b = await open('B', n2, 'bob');
  const c = await open('C', n1, 'cat');

  await a.click('#create');
  await session(a, 'A', 'in', 'A created a session');
  await connected(a, 'A');
  const code = (await a.textContent('#scode')).trim();
  assert.match(code, /^[0-9A-HJKMNP-TV-Z]{6}$/, 'the code shown on A');
  assert.equal(await a.textContent('#hroom'), `session:${code}`);

  await b.fill('#code', code.toLowerCase());
  await b.click('#joincode');
  await session(b, 'B', 'in', 'B joined by code');
  await connected(b, 'B');
  assert.equal(await b.textContent('#scode'), code);
  await hasMembers(a, 'A', ['ada', 'bob']);

  await c.fill('#code', code);
  await c.click('#joincode');
  await session(c, 'C', 'full', 'C refused: the session is full');
  assert.equal(await c.textContent('#hroom'), 'lobby', 'C stays in its room');

  const hi = `hi bob, ${Date.now()}`;
  await a.fill('#text', hi);
  await a.press('#text', 'Enter');
  await hasMessage(b, 'B', 'ada', hi);
  await hasMessage(a, 'A', 'ada', hi);
  mkdirSync(ARTIFACTS, { recursive: true });
  const inSession = path.join(ARTIFACTS, 'browser-session-b.png');
  await b.screenshot({ path: inSession });

  await a.click('#sclose');
  for (const [page, name] of [
    [a, 'A'],
    [b, 'B'],
  ]) {
    await session(page, name, 'closed', 'the session closed');
    await until(page, name, () => document.querySelector('#state')?.textContent === 'closed', null, '#state "closed"');
  }
  // The streams are over on the servers too: nobody is in the session.
  for (const n of [n1, n2]) {
    const url = `${n.url}/rooms/${encodeURIComponent(`session:${code}`)}`;
    let last;
    await poll(
      async () => (last = await fetch(url).then((x) => x.json())).members.length === 0,
      WAIT_MS,
      () => `node ${n.nodeId} to have no stream in session:${code} (last ${JSON.stringify(last)})`,
    );
  }
  // And the code is no longer valid.
  await b.fill('#code', code);
  await b.click('#joincode');
  await session(b, 'B', 'closed', 'a join after the close');
  assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');

  const shot = path.join(ARTIFACTS, 'browser-session-full.png');
  await c.screenshot({ path: shot });
  t.diagnostic(`screenshots: ${inSession} (in the session), ${shot} (refused: full)`);
});

// History in the page: the node the page uses is killed and started again
// on its port while the other node takes posts; the page's EventSource
// reconnects with Last-Event-ID and shows every message once (or the reset
// notice). Then the page is closed, posts go on, and a new page in the
// same browser profile resumes from the id it kept (?last_event_id=).
test('history in the page: a node restart and a reopened page miss nothing', { skip, timeout: 120000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`chromium not installed (${CHROMIUM}; set CHROMIUM)`);
    return;
  }
  const redis = await startRedis();
  procs.push(redis);
  const args = ['--history', '1000'];
  const n1 = await startNode({ redisPort: redis.port, nodeId: 'node-h1', args });
  procs.push(n1);
  const n2 = await startNode({ redisPort: redis.port, nodeId: 'node-h2', args });
  procs.push(n2);
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  const room = `history-${Math.random().toString(36).slice(2, 8)}`;
  const context = await browser.newContext({ viewport: { width: 800, height: 520 } });
  await context.addInitScript(() => localStorage.getItem('roomcast-chat.user') || localStorage.setItem('roomcast-chat.user', 'ada'));
  const pageErrors = [];
  const openPage = async (name) => {
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
    await page.goto(`${n1.url}/#room=${encodeURIComponent(room)}`);
    await connected(page, name);
    return page;
  };
  const say = async (node, text) => {
    const r = await fetch(`${node.url}/rooms/${encodeURIComponent(room)}/messages`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ event: 'chat', data: { user: 'bob', text, at: Date.now() } }),
    });
    assert.equal(r.status, 202, `POST ${text} on ${node.nodeId}: ${r.status} ${await r.text()}`);
  };
  const texts = (page) => page.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
  const resetShown = (page) => page.evaluate(() => document.querySelector('#messages')?.dataset.reset ?? null);
  // Every one of want once (or the reset notice instead).
  const allOnce = async (page, name, want) => {
    await until(
      page,
      name,
      (w) => document.querySelector('#messages')?.dataset.reset || w.every((x) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === x)),
      want,
      `every one of ${JSON.stringify(want)} (or the reset notice)`,
    );
    const got = (await texts(page)).filter((x) => want.includes(x));
    const reset = await resetShown(page);
    if (reset) t.diagnostic(`page ${name} showed the reset notice (${reset})`);
    else assert.deepEqual(got, want, `page ${name}: each message once, in order`);
  };

  const a = await openPage('A');
  const first = ['one', 'two', 'three'].map((x) => `${x} ${Date.now()}`);
  for (const x of first) await say(n2, x);
  await allOnce(a, 'A', first);

  // The page's node dies; posts go on elsewhere; it comes back on its port.
  await n1.kill();
  const away = ['four', 'five', 'six', 'seven', 'eight'].map((x) => `${x} ${Date.now()}`);
  for (const x of away) await say(n2, x);
  const n1b = await startNode({ redisPort: redis.port, nodeId: 'node-h1b', args: [...args, '--port', String(n1.port)] });
  procs.push(n1b);
  await allOnce(a, 'A', [...first, ...away]);
  await until(a, 'A', () => document.querySelector('#node')?.textContent === 'node-h1b', null, 'the page on the restarted node');

  // Closed, then opened again in the same profile: it resumes from its id.
  await a.close();
  const later = ['nine', 'ten'].map((x) => `${x} ${Date.now()}`);
  for (const x of later) await say(n2, x);
  const b = await openPage('B');
  await allOnce(b, 'B', later);
  const shown = await texts(b);
  if (!(await resetShown(b))) assert.ok(!shown.includes(first[0]), `page B replayed what page A had already seen: ${JSON.stringify(shown)}`);
  assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');
});

// rc-chat with injected faults (rc-chat-faults: rc-chat's objects linked
// with the wrappers of faults.c; RC_CHAT_FAIL=NAME:N fails the Nth call of
// NAME). No Redis: every node has local rooms.
//
//   RC_CHAT=/abs/path/rc-chat-faults node --test faults.test.mjs
//
// - Start-up: each allocation and registration that can fail while the
//   server is being set up fails in turn (counted: a new call in setup
//   must be added to `calls`); each time rc-chat must log why
//   and exit 1 (not crash, not run on half set up), having freed what it
//   made (under ASan the leak check runs at that exit and would change the
//   status).
// - A stream whose room join fails is closed and counted under its own
//   reason, "error", not as a slow client.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { RC_CHAT, bounded, metrics, openStream, roomUrl, startNode } from './harness.mjs';

const LISTENING = /listening on http:\/\//;

// Start rc-chat with RC_CHAT_FAIL=fault; resolve once it either exits
// ({ code, signal, stderr }) or logs that it listens (then it is killed:
// { listening: true }).
function startWithFault(fault) {
  const env = { ...process.env, RC_CHAT_FAIL: fault };
  for (const k of ['PORT', 'BIND', 'REDIS_URL', 'NODE_ID']) delete env[k];
  const proc = spawn(RC_CHAT, ['--port', '0', '--bind', '127.0.0.1'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = [];
  const done = new Promise((resolve) => {
    createInterface({ input: proc.stderr }).on('line', (line) => {
      lines.push(line);
      if (LISTENING.test(line)) {
        proc.kill('SIGKILL');
        resolve({ listening: true, stderr: lines });
      }
    });
    // 'close': after the exit and the end of stderr (every line read).
    proc.on('close', (code, signal) => resolve({ code, signal, stderr: lines }));
  });
  return bounded(done, 10000, `rc-chat with RC_CHAT_FAIL=${fault} to exit or listen`).finally(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
}

const skip = RC_CHAT ? false : 'RC_CHAT is not set';

describe('rc-chat with injected faults', { skip }, () => {
  // Each of these is called this many times while setting up (without
  // Redis); its Nth call fails for each N, and then the one after the last
  // must let rc-chat start.
  const calls = {
    event_base_new: 1,
    event_base_priority_init: 1,
    evhttp_new: 1,
    evhttp_bind_listener: 1,
    event_new: 9,
    event_priority_set: 3,
    event_add: 4,
  };
  for (const [name, count] of Object.entries(calls)) {
    test(`start-up: each of the ${count} calls of ${name} failing in turn: a log line and exit 1`, async () => {
      for (let n = 1; n <= count + 1; n++) {
        const r = await startWithFault(`${name}:${n}`);
        const text = r.stderr.join('\n');
        if (n > count) {
          assert.ok(r.listening, `${name}:${n} is past setup: rc-chat should start\n${text}`);
          break;
        }
        assert.ok(!r.listening, `${name}:${n} failed, yet rc-chat started\n${text}`);
        assert.equal(r.signal, null, `${name}:${n}: killed by ${r.signal}\n${text}`);
        assert.equal(r.code, 1, `${name}:${n}: exit status\n${text}`);
        assert.match(text, /^rc-chat: cannot /m, `${name}:${n}: says why`);
        assert.doesNotMatch(text, /Sanitizer|runtime error/, `${name}:${n}: sanitizer report`);
      }
    });
  }

  test('a failed room join closes the stream as "error", not "slow"; the server carries on', async () => {
    const node = await startNode({ env: { RC_CHAT_FAIL: 'rc_room_join:1' } });
    try {
      const failed = openStream(roomUrl(node.url, 'lobby', '/events'));
      await bounded(failed.closed, 5000, 'the stream whose join failed to be closed');
      await node.waitForLog(/cannot join room lobby: /);
      const ok = openStream(roomUrl(node.url, 'lobby', '/events'));
      assert.equal((await ok.hello()).room, 'lobby', 'the next stream joins');
      const m = await metrics(node.url);
      const closed = (reason) => m.get('rc_chat_streams_closed_total', `reason="${reason}"`);
      assert.equal(closed('error'), 1, m.text);
      assert.equal(closed('slow'), 0, m.text);
      assert.equal(closed('client'), 0, m.text);
      assert.equal(m.get('rc_chat_streams'), 1, m.text);
      ok.close();
      assert.deepEqual(await node.stop('SIGTERM'), { code: 0, signal: null }, node.dump());
    } finally {
      await node.kill();
    }
  });
});

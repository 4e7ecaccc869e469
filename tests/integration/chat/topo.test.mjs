// topo.mjs proved: a 3x1 Redis Cluster (a slot with keys migrated live), a
// TLS server (right CA: PONG; another CA: refused) and three sentinels
// failing a killed master over.
//
//   node --test topo.test.mjs

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { redisCmd } from './harness.mjs';
import { makeCerts, run, OPENSSL, startCluster, startSentinel, startTls, tlsPing } from './topo.mjs';

const stops = [];
after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
});

async function timed(what, fn) {
  const t0 = Date.now();
  const v = await fn();
  console.log(`${what}: ${Date.now() - t0} ms`);
  return v;
}

test('cluster 3x1: start, migrate a slot with its keys, stop', async () => {
  const c = await timed('cluster start 3x1', () => startCluster({ masters: 3, replicas: 1 }));
  stops.push(() => c.stop());
  assert.equal(c.nodes.length, 6);
  assert.deepEqual(
    c.nodes.map((n) => n.role),
    ['master', 'master', 'master', 'replica', 'replica', 'replica'],
  );
  assert.match(await redisCmd(c.nodes[5].port, 'CLUSTER', 'INFO'), /cluster_slots_ok:16384/);

  const slot = await c.keySlot('{topo}a');
  const from = c.nodes[await c.nodeOfSlot(slot)].shard;
  const owner = await c.masterOf('{topo}a');
  for (const k of ['{topo}a', '{topo}b', '{topo}c']) await redisCmd(owner, 'SET', k, `v-${k}`);
  const to = (from + 1) % 3;
  await timed('slot migration (3 keys)', () => c.migrateSlot(slot, to));
  assert.equal(await c.masterOf('{topo}b'), c.masterPort(to));
  assert.equal(await redisCmd(c.masterPort(to), 'GET', '{topo}b'), 'v-{topo}b');
  assert.equal(await redisCmd(c.masterPort(to), 'CLUSTER', 'COUNTKEYSINSLOT', slot), 3);
  await assert.rejects(redisCmd(owner, 'GET', '{topo}b'), /MOVED/);
  await timed('cluster stop', () => c.stop());
  assert.ok(c.nodes.every((n) => !n.alive));
});

test('TLS: right CA answers PONG, another CA is refused', async (t) => {
  if ((await run(OPENSSL, ['version']).catch(() => ({ code: -1 }))).code !== 0) {
    t.skip('no openssl');
    return;
  }
  const dir = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'topo-certs-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const certs = await timed('makeCerts', () => makeCerts(dir));
  const srv = await timed('startTls', () => startTls({ certs }));
  stops.push(() => srv.stop());
  assert.equal(await tlsPing(srv.tlsPort, { ca: certs.ca }), '+PONG');
  await assert.rejects(tlsPing(srv.tlsPort, { ca: certs.otherCa }), /self.signed|unable to (get|verify)|certificate/i);
  await srv.stop();

  const mtls = await startTls({ certs, requireClientCert: true });
  stops.push(() => mtls.stop());
  await assert.rejects(tlsPing(mtls.tlsPort, { ca: certs.ca }));
  assert.equal(await tlsPing(mtls.tlsPort, { ca: certs.ca, cert: certs.client, key: certs.clientKey }), '+PONG');
});

test('sentinel: three sentinels promote the replica of a killed master', async () => {
  const s = await timed('sentinel start (3)', () => startSentinel({ sentinels: 3 }));
  stops.push(() => s.stop());
  const old = s.masterPort;
  await timed('sentinel failover', () => s.killMaster());
  assert.notEqual(s.masterPort, old);
  for (const p of s.sentinels) {
    const [, port] = await redisCmd(p.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster');
    assert.equal(Number(port), s.masterPort);
  }
  await s.stop();
});

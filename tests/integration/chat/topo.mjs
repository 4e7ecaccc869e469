// Redis topologies beyond one server, for the rc-chat tests: a Redis Cluster,
// a Sentinel group, a TLS server and its certificates. The Node twin of
// tests/integration/topo_harness.[ch], with the same rules: 127.0.0.1 only,
// every wait bounded with a message naming what it waited for (and what it
// saw last), conditions polled every POLL_MS (never a sleep as a
// synchronisation), every child tracked by node_ref/test-util.mjs (SIGKILLed
// when the test process exits) and every directory removed at exit.
//
//   startCluster({ masters = 3, replicas = 1, nodeTimeoutMs = 2000, args = [] })
//     -> { nodes: [{ port, busPort, role, shard, id, alive }], url, startupNodes,
//          masterPort(i), masterOf(key), masterOfSlot(slot), nodeOfSlot(slot),
//          keySlot(key),
//          migrateSlot(slot, toMasterIdx), failover(i), killMaster(i),
//          restartNode(k), waitHealthy(ms), stop() }
//   startSentinel({ sentinels = 3, name = 'mymaster', quorum, downAfterMs = 1000,
//                   failoverTimeoutMs = 3000, defaultPeriods = false })
//     -> { name, nodes: [{ port, role, alive }], sentinels: [{ port }],
//          sentinelAddrs, masterPort, replicaPort, killMaster(), restartNode(i), stop() }
//   makeCerts(dir) -> { ca, caKey, server, serverKey, client, clientKey,
//                       wrong, wrongKey, otherCa, otherCaKey } (paths)
//   startTls({ certs, requireClientCert = false })
//     -> { port, tlsPort, url, plainUrl, stop() }
//
// A "master index" i names a shard: the node started as master i and its
// replicas. Failovers change which node is its master, never i. Nodes are
// numbered masters first, then the replicas of master 0, of master 1, ...

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import tls from 'node:tls';
import { bounded, freePort, killAndWait, spawnTracked } from '../node_ref/test-util.mjs';
import { REDIS_SERVER, redisCmd, until } from './harness.mjs';

export const OPENSSL = process.env.OPENSSL || 'openssl';
export const SLOTS = 16384;
const POLL_MS = 20;
const START_MS = 30000;
const FAILOVER_MS = 20000;

// ---------------------------------------------------------------- processes

const dirs = new Set();
process.on('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(tag) {
  const d = mkdtempSync(join(process.env.TMPDIR || tmpdir(), `topo-${tag}-`));
  dirs.add(d);
  return d;
}

// Wait for pred() (async; returns null when satisfied, else a reason) for at
// most ms; the timeout names `what` and the last reason.
async function waitFor(pred, ms, what) {
  let why = 'not looked at yet';
  await until(
    async () => {
      try {
        why = await pred();
      } catch (err) {
        why = err.message;
      }
      return why === null;
    },
    ms,
    () => `${what}; last seen: ${why}`,
    POLL_MS,
  );
}

// Run a program (no shell), bounded; resolves { code, out } (stdout+stderr).
export async function run(cmd, args, ms = 10000) {
  const { proc, exited } = spawnTracked(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  try {
    const e = await bounded(exited, ms, `${cmd} ${args.slice(0, 3).join(' ')} to finish`);
    return { code: e.error ? -1 : e.code, out: e.error ? String(e.error.message) : out };
  } catch (err) {
    await killAndWait(proc, exited).catch(() => {});
    throw err;
  }
}

// One redis-server (a sentinel when given a config text) in a directory of
// its own, restartable on the same port with the same files (nodes.conf).
class RedisProc {
  constructor(tag, args = [], sentinelConf = null) {
    this.dir = tempDir(tag);
    this.args = args;
    this.conf = null;
    if (sentinelConf) {
      this.conf = join(this.dir, 'sentinel.conf');
      writeFileSync(this.conf, sentinelConf);
    }
    this.port = 0;
    this.proc = null;
    this.exited = null;
  }

  get alive() {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  log() {
    try {
      return readFileSync(join(this.dir, 'redis.log'), 'utf8');
    } catch {
      return '';
    }
  }

  // A free port (new ones while another process wins the race), or `port`
  // again (waiting while it is still taken, for restarts).
  async start(port = undefined) {
    const deadline = Date.now() + 10000;
    for (;;) {
      const p = port ?? (await freePort());
      const from = this.log().length;
      try {
        await this.#spawn(p);
        this.port = p;
        return;
      } catch (err) {
        await this.kill();
        const lost = /Address already in use/.test(this.log().slice(from));
        if (!lost || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
  }

  async #spawn(port) {
    const argv = this.conf ? [this.conf, '--sentinel'] : [];
    argv.push('--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no');
    argv.push('--daemonize', 'no', '--loglevel', 'warning', '--dir', this.dir);
    argv.push('--logfile', join(this.dir, 'redis.log'), ...this.args);
    const { proc, exited } = spawnTracked(REDIS_SERVER, argv, { stdio: 'ignore' });
    this.proc = proc;
    this.exited = exited;
    // Ready: PING answers and INFO's process_id is our child's.
    const ours = async () => {
      const info = await redisCmd(port, 'INFO', 'server');
      return new RegExp(`^process_id:${proc.pid}\\r?$`, 'm').test(info) ? null : `port ${port} is another server`;
    };
    let early;
    const died = exited.then((e) => (early = e));
    try {
      await waitFor(() => (early ? null : ours()), 10000, `redis-server on 127.0.0.1:${port} to answer`);
    } finally {
      died.catch(() => {});
    }
    if (early) {
      throw new Error(`redis-server on port ${port} exited (${JSON.stringify(early)}): ${this.log().slice(-600)}`);
    }
  }

  async kill() {
    if (this.proc) await killAndWait(this.proc, this.exited);
  }

  async restart() {
    await this.kill();
    await this.start(this.port);
  }

  async remove() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
    dirs.delete(this.dir);
  }

  cmd(...args) {
    return redisCmd(this.port, ...args);
  }
}

function infoField(text, name) {
  const m = String(text).match(new RegExp(`^${name}:(.*?)\\r?$`, 'm'));
  return m ? m[1] : '';
}

// ---------------------------------------------------------------- cluster

// One node's CLUSTER NODES, with node indexes for ids.
function parseNodes(text, ids) {
  const v = { self: -1, role: new Map(), of: new Map(), bad: new Set(), owner: new Int16Array(SLOTS).fill(-1) };
  v.unknown = 0;
  v.open = 0;
  for (const line of String(text).split('\n')) {
    const f = line.trim().split(/ +/);
    if (f.length < 8) continue;
    const k = ids.indexOf(f[0]);
    if (k < 0) {
      v.unknown++;
      continue;
    }
    const flags = f[2].split(',');
    if (flags.includes('myself')) v.self = k;
    v.role.set(k, flags.includes('master') ? 'master' : 'replica');
    if (flags.some((x) => ['fail', 'fail?', 'handshake', 'noaddr'].includes(x))) v.bad.add(k);
    v.of.set(k, flags.includes('master') ? -1 : ids.indexOf(f[3]));
    for (const s of f.slice(8)) {
      if (s.startsWith('[')) {
        v.open++;
        continue;
      }
      const [a, b = a] = s.split('-').map(Number);
      for (let i = a; i <= b; i++) v.owner[i] = k;
    }
  }
  return v;
}

class Cluster {
  constructor(masters, replicas, nodeTimeoutMs, args) {
    this.masters = masters;
    this.replicas = replicas;
    this.nodeTimeoutMs = nodeTimeoutMs;
    this.args = [
      '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf', // in the node's --dir
      '--cluster-node-timeout', String(nodeTimeoutMs),
      '--cluster-allow-replica-migration', 'no',
      '--repl-diskless-sync-delay', '0',
      ...args,
    ];
    this.procs = [];
    this.nodes = [];
    this.master = [];
  }

  get url() {
    return `redis://127.0.0.1:${this.masterPort(0)}`;
  }

  get startupNodes() {
    return this.nodes.filter((n) => n.alive).map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  masterPort(i) {
    return this.nodes[this.master[i]].port;
  }

  async start() {
    const n = this.masters * (1 + this.replicas);
    for (let k = 0; k < n; k++) {
      const p = await this.#startNode();
      const shard = k < this.masters ? k : Math.floor((k - this.masters) / this.replicas);
      this.nodes.push({ port: p.port, busPort: p.busPort, role: k < this.masters ? 'master' : 'replica', shard, id: '', alive: true });
      this.master[k] = k;
    }
    this.master.length = this.masters;
    for (const [k, p] of this.procs.entries()) {
      this.nodes[k].id = await p.cmd('CLUSTER', 'MYID');
      await p.cmd('CLUSTER', 'SET-CONFIG-EPOCH', k + 1);
    }
    for (let k = 0; k < this.masters; k++) {
      const lo = Math.floor((SLOTS * k) / this.masters);
      const hi = Math.floor((SLOTS * (k + 1)) / this.masters) - 1;
      await this.procs[k].cmd('CLUSTER', 'ADDSLOTSRANGE', lo, hi);
    }
    for (const p of this.procs.slice(1)) await this.procs[0].cmd('CLUSTER', 'MEET', '127.0.0.1', p.port, p.busPort);
    await waitFor(() => this.#allMet(), START_MS, 'every cluster node to know every other');
    for (let k = this.masters; k < n; k++) {
      await this.procs[k].cmd('CLUSTER', 'REPLICATE', this.nodes[this.nodes[k].shard].id);
    }
    await this.waitHealthy(START_MS, 'the new cluster to be healthy');
  }

  // The bus port (default port + 10000) must exist: each node gets a free
  // port of its own for it (a few tries, another process may take it).
  async #startNode() {
    for (let attempt = 1; ; attempt++) {
      const bus = await freePort();
      const p = new RedisProc('cluster', ['--cluster-port', String(bus), ...this.args]);
      p.busPort = bus;
      this.procs.push(p);
      try {
        await p.start();
        return p;
      } catch (err) {
        this.procs.pop();
        await p.remove();
        if (attempt >= 3) throw err;
      }
    }
  }

  get #ids() {
    return this.nodes.map((n) => n.id);
  }

  async #allMet() {
    for (const [k, p] of this.procs.entries()) {
      const v = parseNodes(await p.cmd('CLUSTER', 'NODES'), this.#ids);
      if (v.unknown) return `node ${k} has ${v.unknown} node(s) in handshake`;
      for (let j = 0; j < this.nodes.length; j++) {
        if (!v.role.has(j) || v.bad.has(j)) return `node ${k} does not know node ${j} yet`;
      }
    }
    return null;
  }

  async #view(k) {
    const p = this.procs[k];
    const info = await p.cmd('CLUSTER', 'INFO');
    const v = parseNodes(await p.cmd('CLUSTER', 'NODES'), this.#ids);
    v.state = infoField(info, 'cluster_state');
    v.assigned = Number(infoField(info, 'cluster_slots_assigned'));
    v.slotsOk = Number(infoField(info, 'cluster_slots_ok'));
    if (v.self === k && v.role.get(k) === 'replica') {
      const repl = await p.cmd('INFO', 'replication');
      v.linked = infoField(repl, 'master_link_status') === 'up';
      v.masterPort = Number(infoField(repl, 'master_port'));
    }
    return v;
  }

  #selfWhy(v, k) {
    if (v.self !== k) return `node ${k} has another id than ${this.nodes[k].id}`;
    if (v.state !== 'ok' || v.assigned !== SLOTS || v.slotsOk !== SLOTS) {
      return `node ${k}: cluster_state:${v.state}, slots assigned ${v.assigned}, ok ${v.slotsOk}`;
    }
    if (v.unknown || v.open) return `node ${k} lists ${v.unknown} unknown node(s), ${v.open} open migration(s)`;
    if (v.role.get(k) === 'master') return null;
    const m = v.of.get(k);
    if (m < 0 || !this.nodes[m].alive || !v.linked || v.masterPort !== this.nodes[m].port) {
      return `replica node ${k}: link ${v.linked ? 'up' : 'not up'}, master_port ${v.masterPort}, master node ${m}`;
    }
    return null;
  }

  // Healthy as topo_harness.h's th_cluster_wait_ok says; null or a reason.
  // Updates nodes[].role/shard and master[] when healthy.
  async #healthy(wantMaster = -1) {
    const live = this.nodes.map((n, k) => k).filter((k) => this.nodes[k].alive);
    if (!live.length) return 'no node is alive';
    const v = [];
    for (const k of live) {
      v[k] = await this.#view(k);
      const why = this.#selfWhy(v[k], k);
      if (why) return why;
    }
    const first = v[live[0]];
    for (const k of live) {
      for (const j of live) {
        if (!v[k].role.has(j) || v[k].bad.has(j)) return `node ${k} does not know node ${j} or flags it failing`;
        if (v[k].role.get(j) !== v[j].role.get(j) || v[k].of.get(j) !== v[j].of.get(j)) {
          return `node ${k} does not yet see node ${j} as the ${v[j].role.get(j)} it says it is`;
        }
      }
      if (Buffer.compare(Buffer.from(v[k].owner.buffer), Buffer.from(first.owner.buffer))) {
        return `nodes ${live[0]} and ${k} differ on the slot owners`;
      }
    }
    for (let s = 0; s < SLOTS; s++) {
      const o = first.owner[s];
      if (o < 0 || !this.nodes[o].alive || first.role.get(o) !== 'master') return `slot ${s} is owned by node ${o}`;
    }
    const master = [];
    for (let i = 0; i < this.masters; i++) {
      const members = live.filter((k) => {
        const m = v[k].of.get(k);
        return (m >= 0 ? this.nodes[m].shard : this.nodes[k].shard) === i;
      });
      const ms = members.filter((k) => v[k].role.get(k) === 'master');
      if (ms.length > 1) return `shard ${i} has masters ${ms.join(', ')}`;
      if (members.length && !ms.length) return `shard ${i} has no live master`;
      master[i] = ms.length ? ms[0] : -1;
    }
    if (wantMaster >= 0 && v[wantMaster].role.get(wantMaster) !== 'master') return `node ${wantMaster} is not master yet`;
    for (const k of live) {
      const m = v[k].of.get(k);
      this.nodes[k].role = v[k].role.get(k);
      if (m >= 0) this.nodes[k].shard = this.nodes[m].shard;
    }
    this.master = master;
    return null;
  }

  waitHealthy(ms = FAILOVER_MS, what = 'a healthy cluster', wantMaster = -1) {
    return waitFor(() => this.#healthy(wantMaster), ms, what);
  }

  #live() {
    const k = this.nodes.findIndex((n) => n.alive);
    if (k < 0) throw new Error('no cluster node is alive');
    return this.procs[k];
  }

  keySlot(key) {
    return this.#live().cmd('CLUSTER', 'KEYSLOT', key);
  }

  // Node index owning slot, from a live node's CLUSTER NODES.
  async nodeOfSlot(slot) {
    const v = parseNodes(await this.#live().cmd('CLUSTER', 'NODES'), this.#ids);
    if (v.owner[slot] < 0) throw new Error(`no node owns slot ${slot}`);
    return v.owner[slot];
  }

  async masterOfSlot(slot) {
    return this.nodes[await this.nodeOfSlot(slot)].port;
  }

  async masterOf(key) {
    return this.masterOfSlot(await this.keySlot(key));
  }

  // The live migration redis-cli --cluster reshard does; then every node agrees.
  async migrateSlot(slot, toMasterIdx) {
    await this.waitHealthy();
    const src = await this.nodeOfSlot(slot);
    const dst = this.master[toMasterIdx];
    if (dst === undefined || dst < 0) throw new Error(`no master index ${toMasterIdx}`);
    if (src === dst) return;
    const [S, D] = [this.procs[src], this.procs[dst]];
    await D.cmd('CLUSTER', 'SETSLOT', slot, 'IMPORTING', this.nodes[src].id);
    await S.cmd('CLUSTER', 'SETSLOT', slot, 'MIGRATING', this.nodes[dst].id);
    const deadline = Date.now() + 30000;
    for (;;) {
      const keys = await S.cmd('CLUSTER', 'GETKEYSINSLOT', slot, 100);
      if (!keys.length) break;
      await S.cmd('MIGRATE', '127.0.0.1', D.port, '', 0, 4000, 'KEYS', ...keys);
      if (Date.now() > deadline) throw new Error(`timed out after 30000 ms moving the keys of slot ${slot}`);
    }
    // SETSLOT NODE: the target, the source, then every other live master.
    const others = this.nodes
      .map((n, k) => k)
      .filter((k) => k !== src && k !== dst && this.nodes[k].alive && this.nodes[k].role === 'master');
    for (const k of [dst, src, ...others]) {
      await this.procs[k].cmd('CLUSTER', 'SETSLOT', slot, 'NODE', this.nodes[dst].id);
    }
    await this.waitHealthy(FAILOVER_MS, `every node to agree on slot ${slot}`);
    if ((await this.nodeOfSlot(slot)) !== dst) throw new Error(`slot ${slot} is not on node ${dst} after the migration`);
  }

  async #replicaOf(i, who) {
    if (!(i >= 0 && i < this.masters)) throw new Error(`${who}: no master index ${i}`);
    await this.waitHealthy();
    const r = this.nodes.findIndex((n) => n.alive && n.role === 'replica' && n.shard === i);
    if (r < 0) throw new Error(`${who}: master index ${i} has no live replica`);
    return r;
  }

  async failover(i) {
    const r = await this.#replicaOf(i, 'failover');
    await this.procs[r].cmd('CLUSTER', 'FAILOVER');
    await this.waitHealthy(FAILOVER_MS, 'the replica to take over after CLUSTER FAILOVER', r);
  }

  async killMaster(i) {
    await this.#replicaOf(i, 'killMaster');
    const k = this.master[i];
    await this.procs[k].kill();
    this.nodes[k].alive = false;
    await this.waitHealthy(4 * this.nodeTimeoutMs + FAILOVER_MS, 'the cluster to elect a replica of the killed master');
  }

  async killNode(k) {
    this.nodes[k].alive = false;
    await this.procs[k].kill();
  }

  // Back on its port with its nodes.conf; a master replaced meanwhile comes
  // back as a replica (told to, if the cluster left it an empty master).
  async restartNode(k) {
    await this.procs[k].restart();
    this.nodes[k].alive = true;
    const id = await this.procs[k].cmd('CLUSTER', 'MYID');
    if (id !== this.nodes[k].id) throw new Error(`node ${k} came back with a new id (nodes.conf lost)`);
    await waitFor(
      async () => {
        const why = await this.#healthy();
        if (why === null) return null;
        const m = this.master[this.nodes[k].shard];
        const v = parseNodes(await this.procs[k].cmd('CLUSTER', 'NODES'), this.#ids);
        if (m >= 0 && m !== k && this.nodes[m].alive && v.role.get(k) === 'master' && !v.owner.includes(k)) {
          await this.procs[k].cmd('CLUSTER', 'REPLICATE', this.nodes[m].id).catch(() => {});
        }
        return why;
      },
      START_MS,
      'the restarted node to rejoin a healthy cluster',
    );
  }

  async stop() {
    await Promise.all(this.procs.map((p) => p.remove()));
    for (const n of this.nodes) n.alive = false;
  }
}

export async function startCluster({ masters = 3, replicas = 1, nodeTimeoutMs = 2000, args = [] } = {}) {
  const c = new Cluster(masters, replicas, nodeTimeoutMs, args);
  try {
    await c.start();
  } catch (err) {
    await c.stop().catch(() => {});
    throw err;
  }
  return c;
}

// ---------------------------------------------------------------- sentinel

function mapOf(flat) {
  const m = {};
  for (let i = 0; i + 1 < flat.length; i += 2) m[flat[i]] = flat[i + 1];
  return m;
}

class Sentinel {
  constructor({ sentinels, name, quorum, downAfterMs, failoverTimeoutMs, defaultPeriods }) {
    this.name = name;
    this.opts = { quorum: quorum ?? (sentinels > 1 ? 2 : 1), downAfterMs, failoverTimeoutMs, defaultPeriods };
    this.count = sentinels;
    this.data = [];
    this.procs = [];
    this.master = 0;
  }

  get nodes() {
    return this.data.map((p, i) => ({ port: p.port, role: i === this.master ? 'master' : 'replica', alive: p.alive }));
  }

  get sentinels() {
    return this.procs.map((p) => ({ port: p.port }));
  }

  get sentinelAddrs() {
    return this.procs.map((p) => ({ host: '127.0.0.1', port: p.port }));
  }

  get masterPort() {
    return this.data[this.master].port;
  }

  get replicaPort() {
    return this.data[1 - this.master].port;
  }

  async #follow(i) {
    const r = this.data[i];
    const mport = this.masterPort;
    await r.cmd('REPLICAOF', '127.0.0.1', mport);
    await waitFor(
      async () => {
        const info = await r.cmd('INFO', 'replication');
        const st = infoField(info, 'master_link_status');
        return st === 'up' && Number(infoField(info, 'master_port')) === mport ? null : `port ${r.port}: master_link_status:${st}`;
      },
      START_MS,
      "the replica's link to its master",
    );
  }

  async start() {
    for (let i = 0; i < 2; i++) {
      const p = new RedisProc('sentinel-data', ['--repl-diskless-sync-delay', '0']);
      this.data.push(p);
      await p.start();
    }
    await this.#follow(1); // before the sentinels: their first INFO lists it
    const { quorum, downAfterMs, failoverTimeoutMs } = this.opts;
    const n = this.name;
    const conf =
      `sentinel monitor ${n} 127.0.0.1 ${this.masterPort} ${quorum}\n` +
      `sentinel down-after-milliseconds ${n} ${downAfterMs}\n` +
      `sentinel failover-timeout ${n} ${failoverTimeoutMs}\n`;
    for (let i = 0; i < this.count; i++) {
      const p = new RedisProc('sentinel', [], conf);
      this.procs.push(p);
      await p.start();
    }
    if (!this.opts.defaultPeriods) {
      // As topo_harness.c: replicas' state and hellos within a second (best
      // effort: SENTINEL DEBUG is 7.0+; without it the waits are longer).
      for (const p of this.procs) await p.cmd('SENTINEL', 'DEBUG', 'info-period', 1000, 'publish-period', 500).catch(() => {});
    }
    await this.#wait(0, 1, true, START_MS, 'every sentinel to know the master, the replica and the other sentinels');
  }

  // Every sentinel names data[master] (and lists data[replica], link ok;
  // with all: knows every peer, CKQUORUM OK); data[master] says role:master.
  #wait(master, replica, all, ms, what) {
    return waitFor(
      async () => {
        const mport = this.data[master].port;
        for (const [i, s] of this.procs.entries()) {
          const addr = await s.cmd('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name);
          if (!addr || Number(addr[1]) !== mport) return `sentinel ${i} names master ${addr && addr[1]}, not ${mport}`;
          if (replica >= 0) {
            const rs = (await s.cmd('SENTINEL', 'REPLICAS', this.name)).map(mapOf);
            const r = rs.find((x) => Number(x.port) === this.data[replica].port);
            if (!r || r.flags !== 'slave' || r['master-link-status'] !== 'ok') {
              return `sentinel ${i} does not list replica port ${this.data[replica].port} (ok): ${JSON.stringify(r && r.flags)}`;
            }
          }
          if (all) {
            const peers = (await s.cmd('SENTINEL', 'SENTINELS', this.name)).map(mapOf).filter((x) => !/down|disconnected/.test(x.flags));
            if (peers.length !== this.count - 1) return `sentinel ${i} knows ${peers.length} other sentinel(s) of ${this.count - 1}`;
            await s.cmd('SENTINEL', 'CKQUORUM', this.name);
          }
        }
        const role = infoField(await this.data[master].cmd('INFO', 'replication'), 'role');
        return role === 'master' ? null : `port ${mport} reports role:${role}`;
      },
      ms,
      what,
    );
  }

  async killMaster() {
    const old = this.master;
    if (!this.data[0].alive || !this.data[1].alive) throw new Error('killMaster: both data nodes must be up');
    await this.data[old].kill();
    await this.#wait(1 - old, -1, false, 30000, 'the sentinels to promote the replica');
    this.master = 1 - old;
  }

  // Data node i back; a non-master follows the master the sentinels name.
  async restartNode(i) {
    await this.data[i].restart();
    if (i === this.master) return this.#wait(i, -1, false, START_MS, 'the sentinels to see the master again');
    await this.#follow(i);
    return this.#wait(this.master, i, false, START_MS, 'every sentinel to list the restarted replica');
  }

  async stop() {
    await Promise.all([...this.procs, ...this.data].map((p) => p.remove()));
  }
}

export async function startSentinel({
  sentinels = 3,
  name = 'mymaster',
  quorum,
  downAfterMs = 1000,
  failoverTimeoutMs = 3000,
  defaultPeriods = false,
} = {}) {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`startSentinel: bad master name ${name}`);
  const s = new Sentinel({ sentinels, name, quorum, downAfterMs, failoverTimeoutMs, defaultPeriods });
  try {
    await s.start();
  } catch (err) {
    await s.stop().catch(() => {});
    throw err;
  }
  return s;
}

// ---------------------------------------------------------------- TLS

const OPENSSL_CNF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = roomcast-test
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[wrong_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
`;

async function openssl(...args) {
  const { code, out } = await run(OPENSSL, args);
  if (code !== 0) throw new Error(`openssl ${args[0]} failed (${code}): ${out}`);
}

// EC P-256 keys, 2 days; the same files as topo_harness.c's th_tls_certs.
export async function makeCerts(dir) {
  dir = resolve(dir);
  const f = (name, ext) => join(dir, `${name}.${ext}`);
  const cnf = join(dir, 'topo-openssl.cnf');
  writeFileSync(cnf, OPENSSL_CNF);
  const key = (name) => openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name, 'key'));
  const ca = async (name, subj) => {
    await key(name);
    await openssl(
      ...['req', '-new', '-x509', '-config', cnf, '-extensions', 'ca_ext', '-key', f(name, 'key')],
      ...['-subj', subj, '-days', '2', '-sha256', '-out', f(name, 'crt')],
    );
  };
  let serial = (Date.now() % 0xffffff) * 256;
  const leaf = async (name, subj, ext) => {
    await key(name);
    await openssl('req', '-new', '-config', cnf, '-key', f(name, 'key'), '-subj', subj, '-out', f(name, 'csr'));
    await openssl(
      ...['x509', '-req', '-in', f(name, 'csr'), '-CA', f('ca', 'crt'), '-CAkey', f('ca', 'key')],
      ...['-set_serial', String(serial++), '-days', '2', '-sha256'],
      ...['-extfile', cnf, '-extensions', ext, '-out', f(name, 'crt')],
    );
    rmSync(f(name, 'csr'), { force: true });
  };
  try {
    await ca('ca', '/CN=roomcast test CA');
    await ca('other-ca', '/CN=roomcast unrelated CA');
    await leaf('server', '/CN=localhost', 'server_ext');
    await leaf('wrong', '/CN=wrong.example', 'wrong_ext');
    await leaf('client', '/CN=roomcast-test-client', 'client_ext');
  } finally {
    rmSync(cnf, { force: true });
  }
  return {
    dir,
    ca: f('ca', 'crt'),
    caKey: f('ca', 'key'),
    server: f('server', 'crt'),
    serverKey: f('server', 'key'),
    client: f('client', 'crt'),
    clientKey: f('client', 'key'),
    wrong: f('wrong', 'crt'),
    wrongKey: f('wrong', 'key'),
    otherCa: f('other-ca', 'crt'),
    otherCaKey: f('other-ca', 'key'),
  };
}

// PING over TLS: resolves the first reply line, rejects on a TLS error.
export function tlsPing(port, { ca, cert, key, servername = 'localhost' } = {}, ms = 5000) {
  const p = new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, servername };
    if (ca) opts.ca = readFileSync(ca);
    if (cert) opts.cert = readFileSync(cert);
    if (key) opts.key = readFileSync(key);
    const sock = tls.connect(opts, () => sock.write('PING\r\n'));
    let buf = '';
    sock.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) {
        sock.destroy();
        resolve(buf.split('\r\n')[0]);
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error(`TLS connection to ${port} closed (got ${JSON.stringify(buf)})`)));
  });
  return bounded(p, ms, `a PING over TLS to 127.0.0.1:${port}`);
}

// A redis-server with its plain port (readiness, commands) and a TLS port.
export async function startTls({ certs, requireClientCert = false } = {}) {
  if (!certs) throw new Error('startTls: pass certs (from makeCerts)');
  for (let attempt = 1; ; attempt++) {
    const tlsPort = await freePort();
    const p = new RedisProc('tls', [
      '--tls-port', String(tlsPort),
      '--tls-cert-file', certs.server,
      '--tls-key-file', certs.serverKey,
      '--tls-ca-cert-file', certs.ca,
      '--tls-auth-clients', requireClientCert ? 'yes' : 'no',
    ]);
    try {
      await p.start();
      const client = requireClientCert ? { cert: certs.client, key: certs.clientKey } : {};
      const pong = await tlsPing(tlsPort, { ca: certs.ca, ...client });
      if (pong !== '+PONG') throw new Error(`TLS PING answered ${pong}`);
      return {
        port: p.port,
        tlsPort,
        url: `rediss://127.0.0.1:${tlsPort}`,
        plainUrl: `redis://127.0.0.1:${p.port}`,
        proc: p,
        stop: () => p.remove(),
      };
    } catch (err) {
      await p.remove();
      if (attempt >= 3) throw err; // another process may have taken tlsPort
    }
  }
}

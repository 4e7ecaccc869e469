/*
 * The Lua scripts roomcast runs in Redis, one array indexed by enum
 * rc__script. Every script takes its time from Redis (TIME), never from
 * a node, so nodes with skewed clocks behave the same. Lua never encodes
 * JSON: it joins fragments the library encoded (cjson would escape "/"
 * where JSON.stringify does not).
 *
 * Room keys share the room's hash tag: KEYS[1] is "<kp>{T}:" and the
 * script appends pc (hash conn -> token \x1f user \x1f node), pu (hash user ->
 * connections), pg (zset user -> leave deadline: the grace), pr (hash
 * user -> the pending leave's reason), pj (hash user -> the user as a
 * JSON string), pi (hash user -> info JSON), pq (hash conn -> the conn
 * as a JSON string, per-connection mode), ps (the room's presence
 * sequence), pd (a refresh is due); admission (alua.c): pm (hash: state,
 * cap, hold, ttl, code, reason), pa (zset user -> seat deadline, SEATED
 * while connected). Node-wide keys: <kp>{nodes},
 * <kp>{nodes}:token (the lease of a node id), <kp>{nodes}:live (zset token ->
 * deadline: the adapter behind a token is alive), <kp>{nodes}:rooms:<token>
 * (set of its presence rooms), <kp>{sweep} (zset room -> when it is next
 * due), <kp>{users} and <kp>{users}:<user> (who may be present where).
 *
 * On Redis Cluster a script may touch the keys of one slot only (SHEBANG,
 * lua.h, holds every script to it): room scripts touch their room's keys,
 * node-wide scripts one tag's keys ({nodes}, {sweep}, {users}, {codes},
 * {closed}, a rate bucket). Where a change spans both, the library makes
 * two calls, in the order that leaves only harmless, self-healing
 * leftovers if it stops between them; the node-wide scripts and that
 * order are below and in sweep.c.
 *
 * Presence events are v1 envelopes published on the room's channel with
 * node "" (no node's id: every node, the emitter included, delivers them)
 * and meta {"ps":N}, the room's presence sequence after the change.
 */
#include "lua.h"

/* The lease of a node id, and the liveness of this adapter's token.
 * KEYS: nodes, tokens, live. ARGV: id, token, lease ms, the liveness
 * deadline this token last set ("0": none). Returns {1, deadline,
 * took_over, lapsed} or {0, deadline, ms left, lapsed}; lapsed: the
 * token's liveness is not what it last set (reapers claimed it, or took
 * its presence away). A few expired leases of other ids are swept on the
 * way. */
static const char lease_lua[] = SHEBANG TIME_NOW
    "local lease = tonumber(ARGV[3])\n"
    "local live = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[2]) or '-1')\n"
    "local last = tonumber(ARGV[4])\n"
    "local lapsed = (last > 0 and live ~= last) and 1 or 0\n"
    "local mine = now + lease\n"
    "redis.call('ZADD', KEYS[3], string.format('%.0f', mine), ARGV[2])\n"
    "local holder = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "local dl = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')\n"
    "if holder and holder ~= ARGV[2] and dl > now then\n"
    "  return {0, mine, dl - now, lapsed}\n"
    "end\n"
    "local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,\n"
    "                       'LIMIT', 0, 16)\n"
    "for _, id in ipairs(old) do\n"
    "  if id ~= ARGV[1] then\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "    redis.call('HDEL', KEYS[2], id)\n"
    "  end\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], string.format('%.0f', now + lease),\n"
    "           ARGV[1])\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "local took = 0\n"
    "if holder and holder ~= ARGV[2] then took = 1 end\n"
    "return {1, mine, took, lapsed}\n";

/* Let go of the lease, if it is still this token's, and mark the token
 * due for reaping (whatever presence it left behind). KEYS as lease. */
static const char release_lua[] =
    SHEBANG "if redis.call('ZSCORE', KEYS[3], ARGV[2]) then\n"
            "  redis.call('ZADD', KEYS[3], 0, ARGV[2])\n"
            "end\n"
            "if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then\n"
            "  redis.call('HDEL', KEYS[2], ARGV[1])\n"
            "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
            "  return 1\n"
            "end\n"
            "return 0\n";

/* A connection joins (user "": only the snapshot). ARGV[8..13]: conn,
 * token, user, user as JSON, info, conn as JSON (the library registered
 * the room under the token, and the user, first: see below). Refused in a
 * closed room
 * ({-1, 'closed', reason}) and, in a capped one, to a user without a
 * seat ({-1, 'noseat'}). Returns the snapshot:
 * {seq, n, then n times user, connections, info; then, per connection
 * (per-connection mode), conn, user} or {seq, -1, users} (a large room),
 * with the tail (lua.h). */
static const char join_lua[] = SHEBANG ROOM_PRELUDE
    "local st = redis.call('HMGET', b .. 'pm', 'state', 'cap', 'reason')\n"
    "if st[1] == 'closed' then return {-1, 'closed', st[3]} end\n"
    "if tonumber(st[2] or '0') > 0 and\n"
    "   tonumber(redis.call('ZSCORE', b .. 'pa', ARGV[10]) or '0') <= now "
    "then\n"
    "  return {-1, 'noseat'}\n"
    "end\n"
    "if ARGV[10] ~= '' then\n"
    "  add(ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], false, ARGV[13])\n"
    "end\n"
    "return tail(snapshot())\n";

/* A connection leaves. ARGV[8..10]: conn, grace ms, reason. Returns
 * {0} (not there) or {1, tail}. */
static const char leave_lua[] = SHEBANG ROOM_PRELUDE
    "local v = redis.call('HGET', b .. 'pc', ARGV[8])\n"
    "if not v then return {0} end\n"
    "redis.call('HDEL', b .. 'pc', ARGV[8])\n"
    "drop(user_of(v), tonumber(ARGV[9]), ARGV[10], ARGV[8])\n"
    "return tail({1})\n";

/* This token's connections in the room become exactly those given:
 * ARGV[8..10]: token, grace ms, resync (1: after a reconnect; a room whose
 * state Redis lost is refilled silently); then conn, user, user JSON,
 * info, conn JSON for each. Returns the snapshot with the tail (its due is
 * the room's next deadline, whatever changed: a sync after a lost link
 * puts back a sweep that may have been lost with it); in a closed room
 * {-1, 'closed', reason}; in a capped room where some of the connections'
 * users hold no seat, {-2, those connections} and nothing changes. */
static const char sync_lua[] = SHEBANG ROOM_PRELUDE
    "local st = redis.call('HMGET', b .. 'pm', 'state', 'cap', 'reason')\n"
    "if st[1] == 'closed' then return {-1, 'closed', st[3]} end\n"
    "if tonumber(st[2] or '0') > 0 then\n"
    "  local out = {-2}\n"
    "  for i = 11, #ARGV, 5 do\n"
    "    if tonumber(redis.call('ZSCORE', b .. 'pa', ARGV[i + 1]) or '0') <=\n"
    "       now then\n"
    "      out[#out + 1] = ARGV[i]\n"
    "    end\n"
    "  end\n"
    "  if #out > 1 then return out end\n"
    "end\n"
    "local tok, grace = ARGV[8], tonumber(ARGV[9])\n"
    "local silent = ARGV[10] == '1' and redis.call('EXISTS', b .. 'ps') == 0\n"
    "local want, pre = {}, tok .. '\\31'\n"
    "for i = 11, #ARGV, 5 do want[ARGV[i]] = true end\n"
    "local pc = redis.call('HGETALL', b .. 'pc')\n"
    "for i = 1, #pc, 2 do\n"
    "  local v = pc[i + 1]\n"
    "  if string.sub(v, 1, #pre) == pre and not want[pc[i]] then\n"
    "    redis.call('HDEL', b .. 'pc', pc[i])\n"
    "    drop(user_of(v), grace, 'left', pc[i])\n"
    "  end\n"
    "end\n"
    "for i = 11, #ARGV, 5 do\n"
    "  add(ARGV[i], tok, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], silent,\n"
    "      ARGV[i + 4])\n"
    "end\n"
    "if silent then\n"
    "  redis.call('SET', b .. 'pd', ARGV[6])\n"
    "  later(1000)\n"
    "end\n"
    "return tail(snapshot())\n";

/* The snapshot alone, whatever the room's size (a query). */
static const char snapshot_lua[] = SHEBANG ROOM_PRELUDE "amax = math.huge\n"
                                                        "return snapshot()\n";

/* Every connection present: {conn, token \x1f user \x1f node, ...}. */
static const char members_lua[] =
    SHEBANG "return redis.call('HGETALL', KEYS[1] .. 'pc')\n";

/* Leaves whose grace ran out: each removed (the ZREM is the compare and
 * swap: one sweeper emits it), and a refresh due published. Returns
 * {how many left, tail}: the tail's due is the room's next deadline,
 * which the sweeper then registers (sdone, below). */
static const char sweep_lua[] = SHEBANG ROOM_PRELUDE
    "local due = redis.call('ZRANGEBYSCORE', b .. 'pg', '-inf', now)\n"
    "for _, u in ipairs(due) do\n"
    "  local why = redis.call('HGET', b .. 'pr', u) or 'left'\n"
    "  redis.call('ZREM', b .. 'pg', u)\n"
    "  gone(u, why)\n"
    "end\n"
    "refresh()\n"
    "return tail({#due})\n";

/* A dead token's connections in the room: removed as lost (with grace).
 * ARGV[8..9]: token, grace ms. Returns {how many, tail}; the tail's due
 * is the room's next deadline (a dead node's registration lost in a
 * crash is put back here). */
static const char reap_lua[] = SHEBANG ROOM_PRELUDE
    "local pre, n = ARGV[8] .. '\\31', 0\n"
    "local pc = redis.call('HGETALL', b .. 'pc')\n"
    "for i = 1, #pc, 2 do\n"
    "  local v = pc[i + 1]\n"
    "  if string.sub(v, 1, #pre) == pre then\n"
    "    redis.call('HDEL', b .. 'pc', pc[i])\n"
    "    drop(user_of(v), tonumber(ARGV[9]), 'lost', pc[i])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return tail({n})\n";

/* The rooms a user may be present in: {room, ...}. KEYS[1]:
 * <kp>{users}:<user>. (Each is then asked, in its own slot.) */
static const char user_lua[] = SHEBANG "return redis.call('HKEYS', KEYS[1])\n";

/* Everyone who may be present anywhere: {user, room, ...}. KEYS[1]:
 * <kp>{users}. */
static const char online_lua[] = SHEBANG
    "local out = {}\n"
    "local us = redis.call('HKEYS', KEYS[1])\n"
    "for _, u in ipairs(us) do\n"
    "  for _, r in ipairs(redis.call('HKEYS', KEYS[1] .. ':' .. u)) do\n"
    "    out[#out + 1] = u\n"
    "    out[#out + 1] = r\n"
    "  end\n"
    "end\n"
    "return out\n";

/* Rooms whose leave deadline passed, claimed for 2 s (so that the nodes
 * do not all sweep the same room). KEYS[1]: <kp>{sweep}. Returns {room,
 * its registration's number (<kp>{sweep}:g, "0" none), ...}: the sweeper
 * hands it back with the room's next deadline (sdone, below). */
static const char sweep_due_lua[] = SHEBANG TIME_NOW
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,\n"
    "                       'LIMIT', 0, 32)\n"
    "local out = {}\n"
    "for _, r in ipairs(due) do\n"
    "  redis.call('ZADD', KEYS[1], 'XX', now + 2000, r)\n"
    "  out[#out + 1] = r\n"
    "  out[#out + 1] = redis.call('HGET', KEYS[1] .. ':g', r) or '0'\n"
    "end\n"
    "return out\n";

/* Tokens whose adapter stopped renewing, claimed for a lease (another
 * node finishes if this one dies meanwhile), with their rooms. KEYS[1]:
 * <kp>{nodes}:live. ARGV: key prefix, lease ms. Returns {token, claim,
 * n, room1..roomn, ...}. */
static const char reap_due_lua[] = SHEBANG TIME_NOW
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,\n"
    "                       'LIMIT', 0, 4)\n"
    "local out = {}\n"
    "for _, tok in ipairs(due) do\n"
    "  local claim = now + tonumber(ARGV[2])\n"
    "  redis.call('ZADD', KEYS[1], claim, tok)\n"
    "  local rooms = redis.call('SMEMBERS', ARGV[1] .. '{nodes}:rooms:' ..\n"
    "                           tok)\n"
    "  out[#out + 1] = tok\n"
    "  out[#out + 1] = claim\n"
    "  out[#out + 1] = #rooms\n"
    "  for _, r in ipairs(rooms) do out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* A reaped token is forgotten, unless it came back meanwhile (renewed:
 * its score is no longer the claim). KEYS[1]: live. ARGV: key prefix,
 * token, claim. */
static const char reap_done_lua[] =
    SHEBANG "if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[2]) or '-1') ==\n"
            "   tonumber(ARGV[3]) then\n"
            "  redis.call('ZREM', KEYS[1], ARGV[2])\n"
            "  redis.call('DEL', ARGV[1] .. '{nodes}:rooms:' .. ARGV[2])\n"
            "  return 1\n"
            "end\n"
            "return 0\n";

/* One GCRA check: KEYS[1] the bucket (its theoretical arrival time, in
 * integer microseconds of Redis time). ARGV: the emission interval in
 * microseconds, the burst. Returns {1, 0} (allowed, and counted) or
 * {0, microseconds until it would be}. */
static const char rate_lua[] = SHEBANG GCRA
    "local wait = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))\n"
    "if wait > 0 then return {0, wait} end\n"
    "return {1, 0}\n";

/* ---- the node-wide halves of split changes ---------------------------- */

/*
 * The node-wide halves of changes that span a room's slot and a node-wide
 * one (on Redis Cluster a script touches one slot: see the top of this
 * file). Each script here touches the keys of one tag; the library calls
 * it before or after the room's script, in the order that makes a stop
 * between the two harmless (sweep.c, admit.c; a close's {closed} and
 * {codes} halves and a send's rate bucket: alua.c).
 *
 * <kp>{nodes}:rooms:<token>: registered before the join or sync that puts
 * the token's connections in the room (a room without them is skipped by
 * the reaper); deleted when the token is reaped (reap_done).
 *
 * <kp>{users} (hash user -> Redis ms of its last registration) and
 * <kp>{users}:<user> (hash room -> the same): who MAY be present where.
 * Registered before each join or sync of the user into the room, and
 * again after its answer; forgotten after a room script says the user
 * left the room, unless registered since. Queries ask each room for the
 * truth (ucount) and forget what it denies. So every present user is
 * listed, and what is listed wrongly is forgotten by the next query.
 *
 * <kp>{sweep} (zset room -> when it is next due), <kp>{sweep}:g (hash
 * room -> the number of its last registration), <kp>{sweep}:n (the
 * registrations so far): a room script hands back when its room is next
 * due, and the library registers it after (sreg: only ever earlier). A
 * sweeper claims a due room (sweep_due), sweeps it, and hands back its
 * next deadline with the number it claimed at (sdone): unchanged, the
 * deadline replaces the claim; else someone registered meanwhile and the
 * earlier of the two stays. A registration lost with a crash is put back
 * by the reaper (every reap hands back its room's next deadline) or by
 * the sync a node sends for the rooms it owes after a lost link.
 */

/* KEYS[1]: <kp>{nodes}:rooms:<token>. ARGV[1]: a room. */
const char rc__lua_troom[] = SHEBANG "redis.call('SADD', KEYS[1], ARGV[1])\n";

/* KEYS[1]: <kp>{users}. ARGV[1]: a room, then users. */
const char rc__lua_ureg[] = SHEBANG TIME_NOW
    "for i = 2, #ARGV do\n"
    "  redis.call('HSET', KEYS[1] .. ':' .. ARGV[i], ARGV[1], now)\n"
    "  redis.call('HSET', KEYS[1], ARGV[i], now)\n"
    "end\n";

/* KEYS[1]: <kp>{users}. ARGV[1]: a room, ARGV[2]: the time (Redis ms)
 * at which the users that follow were not in it. */
const char rc__lua_uunreg[] =
    SHEBANG "local t = tonumber(ARGV[2])\n"
            "for i = 3, #ARGV do\n"
            "  local k = KEYS[1] .. ':' .. ARGV[i]\n"
            "  local v = redis.call('HGET', k, ARGV[1])\n"
            "  if v and tonumber(v) <= t then\n"
            "    redis.call('HDEL', k, ARGV[1])\n"
            "    if redis.call('EXISTS', k) == 0 then\n"
            "      redis.call('HDEL', KEYS[1], ARGV[i])\n"
            "    end\n"
            "  end\n"
            "end\n";

/* KEYS[1]: <kp>{sweep}. ARGV: room, when it is due (Redis ms). */
const char rc__lua_sreg[] =
    SHEBANG "redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[1])\n"
            "redis.call('HSET', KEYS[1] .. ':g', ARGV[1],\n"
            "           redis.call('INCR', KEYS[1] .. ':n'))\n";

/* KEYS[1]: <kp>{sweep}. ARGV: room, the number sweep_due gave, the
 * room's next deadline (-1: none). */
const char rc__lua_sdone[] = SHEBANG
    "local g = redis.call('HGET', KEYS[1] .. ':g', ARGV[1]) or '0'\n"
    "local d = tonumber(ARGV[3])\n"
    "if g ~= ARGV[2] then\n"
    "  if d >= 0 then redis.call('ZADD', KEYS[1], 'LT', d, ARGV[1]) end\n"
    "elseif d >= 0 then\n"
    "  redis.call('ZADD', KEYS[1], d, ARGV[1])\n"
    "else\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[1] .. ':g', ARGV[1])\n"
    "end\n";

/* Before a close: the room is named in <kp>{closed} and the count moves
 * on, so that nodes cut off ask the room (rc__lua_closed) whether it is
 * closed. KEYS[1]: <kp>{closed}. ARGV: room, reason JSON, how long (ms)
 * the entry lives until the close's answer sets its deadline. Entries
 * past their deadline are swept, 64 at a time. */
const char rc__lua_creg[] = SHEBANG TIME_NOW
    "local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,\n"
    "                       'LIMIT', 0, 64)\n"
    "for _, r in ipairs(old) do\n"
    "  redis.call('ZREM', KEYS[1], r)\n"
    "  redis.call('HDEL', KEYS[1] .. ':why', r)\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[3]), ARGV[1])\n"
    "redis.call('HSET', KEYS[1] .. ':why', ARGV[1], ARGV[2])\n"
    "redis.call('INCR', KEYS[1] .. ':n')\n";

/* After a close: KEYS[1]: <kp>{closed}. ARGV: room, the tombstone's
 * deadline, or "" (the room did not exist: the entry goes). */
const char rc__lua_cdone[] =
    SHEBANG "if ARGV[2] ~= '' then\n"
            "  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])\n"
            "else\n"
            "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
            "  redis.call('HDEL', KEYS[1] .. ':why', ARGV[1])\n"
            "end\n";

/* After a close: the room's code is not handed out before the tombstone
 * ends. KEYS[1]: <kp>{codes}. ARGV: code, deadline. */
const char rc__lua_ctomb[] =
    SHEBANG "redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])\n";

/* A room script (ARGV[8..]: users): {now, then per user its connections
 * in the room (0: in its grace), or -1: not present}. */
const char rc__lua_ucount[] = SHEBANG TIME_NOW
    "local out = {now}\n"
    "for i = 8, #ARGV do\n"
    "  local c = redis.call('HGET', KEYS[1] .. 'pu', ARGV[i])\n"
    "  if c then\n"
    "    out[#out + 1] = tonumber(c)\n"
    "  elseif redis.call('ZSCORE', KEYS[1] .. 'pg', ARGV[i]) then\n"
    "    out[#out + 1] = 0\n"
    "  else\n"
    "    out[#out + 1] = -1\n"
    "  end\n"
    "end\n"
    "return out\n";

/* Give back one request to a GCRA bucket (a send the room refused after
 * the bucket counted it). KEYS[1]: the bucket; ARGV[1]: its emission
 * interval (us). */
const char rc__lua_rate_back[] =
    SHEBANG "local t = redis.call('TIME')\n"
            "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
            "local back = tonumber(redis.call('GET', KEYS[1]) or '0') -\n"
            "             tonumber(ARGV[1])\n"
            "if back <= now then\n"
            "  redis.call('DEL', KEYS[1])\n"
            "else\n"
            "  redis.call('SET', KEYS[1], string.format('%.0f', back), 'PX',\n"
            "             math.ceil((back - now) / 1000) + 1)\n"
            "end\n";

const char *const rc__lua[RC__SCRIPTS] = {
    lease_lua,      release_lua,    join_lua,       leave_lua,
    sync_lua,       snapshot_lua,   members_lua,    sweep_lua,
    reap_lua,       user_lua,       online_lua,     sweep_due_lua,
    reap_due_lua,   reap_done_lua,  rate_lua,       rc__lua_code,
    rc__lua_create, rc__lua_admit,  rc__lua_evict,  rc__lua_close,
    rc__lua_verify, rc__lua_send,   rc__lua_hpub,   rc__lua_hread,
    rc__lua_hfence, rc__lua_closed, rc__lua_troom,  rc__lua_ureg,
    rc__lua_uunreg, rc__lua_sreg,   rc__lua_sdone,  rc__lua_creg,
    rc__lua_cdone,  rc__lua_ctomb,  rc__lua_ucount, rc__lua_rate_back,
};

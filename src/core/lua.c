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
 * (set of its presence rooms), <kp>{sweep} (zset room -> earliest leave
 * deadline), <kp>{users} (hash user -> rooms present in), <kp>{users}:<user>
 * (hash room -> connections).
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
static const char lease_lua[] = TIME_NOW
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
    "if redis.call('ZSCORE', KEYS[3], ARGV[2]) then\n"
    "  redis.call('ZADD', KEYS[3], 0, ARGV[2])\n"
    "end\n"
    "if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then\n"
    "  redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "  redis.call('ZREM', KEYS[1], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* A connection joins (user "": only the snapshot). ARGV[7..12]: conn,
 * token, user, user as JSON, info, conn as JSON. Refused in a closed room
 * ({-1, 'closed', reason}) and, in a capped one, to a user without a
 * seat ({-1, 'noseat'}). Returns the snapshot:
 * {seq, n, then n times user, connections, info; then, per connection
 * (per-connection mode), conn, user} or {seq, -1, users} (a large room). */
static const char join_lua[] = ROOM_PRELUDE
    "local st = redis.call('HMGET', b .. 'pm', 'state', 'cap', 'reason')\n"
    "if st[1] == 'closed' then return {-1, 'closed', st[3]} end\n"
    "if tonumber(st[2] or '0') > 0 and\n"
    "   tonumber(redis.call('ZSCORE', b .. 'pa', ARGV[9]) or '0') <= now then\n"
    "  return {-1, 'noseat'}\n"
    "end\n"
    "if ARGV[9] ~= '' then\n"
    "  redis.call('SADD', kp .. '{nodes}:rooms:' .. ARGV[8], room)\n"
    "  add(ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], false, ARGV[12])\n"
    "end\n"
    "return snapshot()\n";

/* A connection leaves. ARGV[7..9]: conn, grace ms, reason. */
static const char leave_lua[] =
    ROOM_PRELUDE "local v = redis.call('HGET', b .. 'pc', ARGV[7])\n"
                 "if not v then return 0 end\n"
                 "redis.call('HDEL', b .. 'pc', ARGV[7])\n"
                 "drop(user_of(v), tonumber(ARGV[8]), ARGV[9], ARGV[7])\n"
                 "return 1\n";

/* This token's connections in the room become exactly those given:
 * ARGV[7..9]: token, grace ms, resync (1: after a reconnect; a room whose
 * state Redis lost is refilled silently); then conn, user, user JSON,
 * info, conn JSON for each. Returns the snapshot; in a closed room
 * {-1, 'closed', reason}; in a capped room where some of the connections'
 * users hold no seat, {-2, those connections} and nothing changes. */
static const char sync_lua[] = ROOM_PRELUDE
    "local st = redis.call('HMGET', b .. 'pm', 'state', 'cap', 'reason')\n"
    "if st[1] == 'closed' then return {-1, 'closed', st[3]} end\n"
    "if tonumber(st[2] or '0') > 0 then\n"
    "  local out = {-2}\n"
    "  for i = 10, #ARGV, 5 do\n"
    "    if tonumber(redis.call('ZSCORE', b .. 'pa', ARGV[i + 1]) or '0') <=\n"
    "       now then\n"
    "      out[#out + 1] = ARGV[i]\n"
    "    end\n"
    "  end\n"
    "  if #out > 1 then return out end\n"
    "end\n"
    "local tok, grace = ARGV[7], tonumber(ARGV[8])\n"
    "local silent = ARGV[9] == '1' and redis.call('EXISTS', b .. 'ps') == 0\n"
    "local want, pre = {}, tok .. '\\31'\n"
    "for i = 10, #ARGV, 5 do want[ARGV[i]] = true end\n"
    "local pc = redis.call('HGETALL', b .. 'pc')\n"
    "for i = 1, #pc, 2 do\n"
    "  local v = pc[i + 1]\n"
    "  if string.sub(v, 1, #pre) == pre and not want[pc[i]] then\n"
    "    redis.call('HDEL', b .. 'pc', pc[i])\n"
    "    drop(user_of(v), grace, 'left', pc[i])\n"
    "  end\n"
    "end\n"
    "if #ARGV >= 10 then\n"
    "  redis.call('SADD', kp .. '{nodes}:rooms:' .. tok, room)\n"
    "end\n"
    "for i = 10, #ARGV, 5 do\n"
    "  add(ARGV[i], tok, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], silent,\n"
    "      ARGV[i + 4])\n"
    "end\n"
    "if silent then\n"
    "  redis.call('SET', b .. 'pd', ARGV[6])\n"
    "  later(1000)\n"
    "end\n"
    "return snapshot()\n";

/* The snapshot alone, whatever the room's size (a query). */
static const char snapshot_lua[] = ROOM_PRELUDE "amax = math.huge\n"
                                                "return snapshot()\n";

/* Every connection present: {conn, token \x1f user \x1f node, ...}. */
static const char members_lua[] =
    "return redis.call('HGETALL', KEYS[1] .. 'pc')\n";

/* Leaves whose grace ran out: each removed (the ZREM is the compare and
 * swap: one sweeper emits it), then the room's registration moved to its
 * next deadline. Returns how many left. */
static const char sweep_lua[] = ROOM_PRELUDE
    "local due = redis.call('ZRANGEBYSCORE', b .. 'pg', '-inf', now)\n"
    "for _, u in ipairs(due) do\n"
    "  local why = redis.call('HGET', b .. 'pr', u) or 'left'\n"
    "  redis.call('ZREM', b .. 'pg', u)\n"
    "  gone(u, why)\n"
    "end\n"
    "refresh()\n"
    "local nxt = redis.call('ZRANGE', b .. 'pg', 0, 0, 'WITHSCORES')\n"
    "if #nxt > 0 then\n"
    "  redis.call('ZADD', kp .. '{sweep}', nxt[2], room)\n"
    "else\n"
    "  redis.call('ZREM', kp .. '{sweep}', room)\n"
    "end\n"
    "return #due\n";

/* A dead token's connections in the room: removed as lost (with grace).
 * ARGV[7..8]: token, grace ms. Returns how many. */
static const char reap_lua[] =
    ROOM_PRELUDE "local pre, n = ARGV[7] .. '\\31', 0\n"
                 "local pc = redis.call('HGETALL', b .. 'pc')\n"
                 "for i = 1, #pc, 2 do\n"
                 "  local v = pc[i + 1]\n"
                 "  if string.sub(v, 1, #pre) == pre then\n"
                 "    redis.call('HDEL', b .. 'pc', pc[i])\n"
                 "    drop(user_of(v), tonumber(ARGV[8]), 'lost', pc[i])\n"
                 "    n = n + 1\n"
                 "  end\n"
                 "end\n"
                 "return n\n";

/* A user's rooms: {room, connections, ...}. KEYS[1]: <kp>{users}:<user>. */
static const char user_lua[] =
    "local rs = redis.call('HGETALL', KEYS[1])\n"
    "for i = 2, #rs, 2 do rs[i] = tonumber(rs[i]) end\n"
    "return rs\n";

/* Everyone present anywhere: {user, room, connections, ...}. KEYS[1]:
 * <kp>{users}. */
static const char online_lua[] =
    "local out = {}\n"
    "local us = redis.call('HKEYS', KEYS[1])\n"
    "for _, u in ipairs(us) do\n"
    "  local rs = redis.call('HGETALL', KEYS[1] .. ':' .. u)\n"
    "  for i = 1, #rs, 2 do\n"
    "    out[#out + 1] = u\n"
    "    out[#out + 1] = rs[i]\n"
    "    out[#out + 1] = tonumber(rs[i + 1])\n"
    "  end\n"
    "end\n"
    "return out\n";

/* Rooms whose leave deadline passed, claimed for 2 s (so that the nodes
 * do not all sweep the same room). KEYS[1]: <kp>{sweep}. */
static const char sweep_due_lua[] =
    TIME_NOW "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,\n"
             "                       'LIMIT', 0, 32)\n"
             "for _, r in ipairs(due) do\n"
             "  redis.call('ZADD', KEYS[1], 'XX', now + 2000, r)\n"
             "end\n"
             "return due\n";

/* Tokens whose adapter stopped renewing, claimed for a lease (another
 * node finishes if this one dies meanwhile), with their rooms. KEYS[1]:
 * <kp>{nodes}:live. ARGV: key prefix, lease ms. Returns {token, claim,
 * n, room1..roomn, ...}. */
static const char reap_due_lua[] = TIME_NOW
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
    "if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[2]) or '-1') ==\n"
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
static const char rate_lua[] =
    GCRA "local wait = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))\n"
         "if wait > 0 then return {0, wait} end\n"
         "return {1, 0}\n";

const char *const rc__lua[RC__SCRIPTS] = {
    lease_lua,      release_lua,   join_lua,      leave_lua,
    sync_lua,       snapshot_lua,  members_lua,   sweep_lua,
    reap_lua,       user_lua,      online_lua,    sweep_due_lua,
    reap_due_lua,   reap_done_lua, rate_lua,      rc__lua_code,
    rc__lua_create, rc__lua_admit, rc__lua_evict, rc__lua_close,
    rc__lua_verify, rc__lua_send,  rc__lua_hpub,  rc__lua_hread,
    rc__lua_hfence,
};

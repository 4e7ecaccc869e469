/* What the Lua sources share (lua.c, alua.c); not installed. */
#ifndef RC_LUA_H
#define RC_LUA_H

#include "internal.h"

/* The first line of every script: Redis 7 then holds it to the keys of
 * one cluster slot (the declared keys' slot), even on a single node that
 * owns every slot; a script without it may touch any local key. */
#define SHEBANG "#!lua\n"

#define TIME_NOW                                                               \
    "local t = redis.call('TIME')\n"                                           \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* One GCRA check on the bucket key (its theoretical arrival time, in
 * integer microseconds of Redis time), emission interval T us, burst:
 * 0 (allowed, and counted) or the microseconds until it would be. */
#define GCRA                                                                   \
    "local function gcra(key, T, burst)\n"                                     \
    "  local t = redis.call('TIME')\n"                                         \
    "  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                \
    "  local tat = tonumber(redis.call('GET', key) or '0')\n"                  \
    "  if tat < now then tat = now end\n"                                      \
    "  local wait = tat + T - T * burst - now\n"                               \
    "  if wait > 0 then return wait end\n"                                     \
    "  redis.call('SET', key, string.format('%.0f', tat + T), 'PX',\n"         \
    "             math.ceil((tat + T - now) / 1000) + 1)\n"                    \
    "  return 0\n"                                                             \
    "end\n"

/* The admission scripts (alua.c). */
extern const char rc__lua_code[], rc__lua_create[], rc__lua_admit[],
    rc__lua_evict[], rc__lua_close[], rc__lua_verify[], rc__lua_send[];
extern const char rc__lua_closed[];
/* The history scripts (hlua.c). */
extern const char rc__lua_hpub[], rc__lua_hread[], rc__lua_hfence[];
/* The node-wide halves of split changes, and the queries' room half
 * (lua.c). */
extern const char rc__lua_troom[], rc__lua_ureg[], rc__lua_uunreg[],
    rc__lua_sreg[], rc__lua_sdone[], rc__lua_creg[], rc__lua_cdone[],
    rc__lua_ctomb[], rc__lua_ucount[], rc__lua_rate_back[];

/* A seat's score while its user is connected: never due. */
#define SEATED "9000000000000000"
#define SEATED_Q "'" SEATED "'"

/* What the room scripts share. KEYS[1]: the room's key base. ARGV[1]:
 * the key prefix, ARGV[2]: the room, ARGV[3]: its channel, ARGV[4]: the
 * calling node's id, ARGV[5]: announce_max (a room with more users gets
 * counts, not per-user events), led by "c" in per-connection mode (events
 * per connection, no grace), ARGV[6]: the room as a JSON string, ARGV[7]:
 * the verb that publishes on the channel (PUBLISH, or SPUBLISH on a
 * sharded cluster). Their own arguments start at ARGV[8].
 * A room script touches its room's keys only (one cluster slot): what the
 * node-wide keys need is handed back in the reply's tail (tail() below),
 * and the library makes those calls itself (sweep.c).
 * A large room's changes mark it (pd) and ask for a sweep, which
 * publishes one rc:presence {"room":R,"count":N,"users":[]}; so does a
 * room refilled silently after Redis lost it (a second later, so that
 * every node's sync is in), with the whole user list. */
#define ROOM_PRELUDE                                                           \
    TIME_NOW                                                                   \
    "local b, kp, room, chan = KEYS[1], ARGV[1], ARGV[2], ARGV[3]\n"           \
    "local due, left = -1, {}\n"                                               \
    "local percon = string.sub(ARGV[5], 1, 1) == 'c'\n"                        \
    "local amax = tonumber(percon and string.sub(ARGV[5], 2) or ARGV[5])\n"    \
    "local function users()\n"                                                 \
    "  return redis.call('HLEN', b .. 'pu') + redis.call('ZCARD', b .. "       \
    "'pg')\n"                                                                  \
    "end\n"                                                                    \
    "local function user_of(v) return string.match(v, "                        \
    "'^[^\\31]*\\31([^\\31]*)')\n"                                             \
    "end\n"                                                                    \
    "local function publish(ev, data)\n"                                       \
    "  local s = redis.call('INCR', b .. 'ps')\n"                              \
    "  redis.call(ARGV[7], chan, '{\"v\":1,\"m\":{\"event\":\"' .. ev ..\n"    \
    "    '\",\"data\":' .. data .. '},\"n\":\"\",\"meta\":{\"ps\":' .. s ..\n" \
    "    '}}')\n"                                                              \
    "end\n"                                                                    \
    "local function later(ms)\n"                                               \
    "  if due < 0 or due > now + ms then due = now + ms end\n"                 \
    "end\n"                                                                    \
    "local function emit(ev, data)\n"                                          \
    "  if users() <= amax then return publish(ev, data) end\n"                 \
    "  redis.call('SET', b .. 'pd', ARGV[6])\n"                                \
    "  later(0)\n"                                                             \
    "end\n"                                                                    \
    "local function refresh()\n"                                               \
    "  local q = redis.call('GET', b .. 'pd')\n"                               \
    "  if not q then return end\n"                                             \
    "  redis.call('DEL', b .. 'pd')\n"                                         \
    "  local n = users()\n"                                                    \
    "  if n > amax then\n"                                                     \
    "    return publish('rc:presence', '{\"room\":' .. q .. ',\"count\":' "    \
    "..\n"                                                                     \
    "                   n .. ',\"users\":[]}')\n"                              \
    "  end\n"                                                                  \
    "  local parts = {}\n"                                                     \
    "  local function put(u, c)\n"                                             \
    "    local i = redis.call('HGET', b .. 'pi', u)\n"                         \
    "    parts[#parts + 1] = '{\"user\":' ..\n"                                \
    "      (redis.call('HGET', b .. 'pj', u) or '\"\"') ..\n"                  \
    "      ',\"connections\":' .. c .. (i and (',\"info\":' .. i) or '') .. "  \
    "'}'\n"                                                                    \
    "  end\n"                                                                  \
    "  local pu = redis.call('HGETALL', b .. 'pu')\n"                          \
    "  for i = 1, #pu, 2 do put(pu[i], pu[i + 1]) end\n"                       \
    "  for _, u in ipairs(redis.call('ZRANGE', b .. 'pg', 0, -1)) do\n"        \
    "    put(u, 0)\n"                                                          \
    "  end\n"                                                                  \
    "  local conns = ''\n"                                                     \
    "  if percon then\n"                                                       \
    "    local cs, pc = {}, redis.call('HGETALL', b .. 'pc')\n"                \
    "    for i = 1, #pc, 2 do\n"                                               \
    "      cs[#cs + 1] = '{\"connection\":' ..\n"                              \
    "        (redis.call('HGET', b .. 'pq', pc[i]) or '\"\"') .. "             \
    "',\"user\":' ..\n"                                                        \
    "        (redis.call('HGET', b .. 'pj', user_of(pc[i + 1])) or '\"\"') "   \
    "..\n"                                                                     \
    "        '}'\n"                                                            \
    "    end\n"                                                                \
    "    conns = ',\"connections\":[' .. table.concat(cs, ',') .. ']'\n"       \
    "  end\n"                                                                  \
    "  publish('rc:presence', '{\"room\":' .. q .. ',\"users\":[' ..\n"        \
    "          table.concat(parts, ',') .. ']' .. conns .. '}')\n"             \
    "end\n"                                                                    \
    "local function gone(user, reason)\n"                                      \
    "  redis.call('ZREM', b .. 'pa', user)\n"                                  \
    "  local q = redis.call('HGET', b .. 'pj', user) or '\"\"'\n"              \
    "  redis.call('HDEL', b .. 'pj', user)\n"                                  \
    "  redis.call('HDEL', b .. 'pi', user)\n"                                  \
    "  redis.call('HDEL', b .. 'pr', user)\n"                                  \
    "  left[#left + 1] = user\n"                                               \
    "  if not percon then\n"                                                   \
    "    emit('rc:leave', '{\"user\":' .. q .. ',\"reason\":\"' .. reason "    \
    "..\n"                                                                     \
    "         '\"}')\n"                                                        \
    "  end\n"                                                                  \
    "  if redis.call('HLEN', b .. 'pu') == 0 and\n"                            \
    "     redis.call('ZCARD', b .. 'pg') == 0 then\n"                          \
    "    redis.call('PEXPIRE', b .. 'ps', 86400000)\n"                         \
    "  end\n"                                                                  \
    "end\n"                                                                    \
    "local function drop(user, grace, reason, conn)\n"                         \
    "  if percon then\n"                                                       \
    "    local cq = redis.call('HGET', b .. 'pq', conn) or '\"\"'\n"           \
    "    redis.call('HDEL', b .. 'pq', conn)\n"                                \
    "    emit('rc:leave', '{\"user\":' .. (redis.call('HGET', b .. 'pj', "     \
    "user)\n"                                                                  \
    "         or '\"\"') .. ',\"connection\":' .. cq .. ',\"reason\":\"' ..\n" \
    "         reason .. '\"}')\n"                                              \
    "    grace = 0\n"                                                          \
    "  end\n"                                                                  \
    "  local c = redis.call('HINCRBY', b .. 'pu', user, -1)\n"                 \
    "  if c > 0 then return end\n"                                             \
    "  redis.call('HDEL', b .. 'pu', user)\n"                                  \
    "  if grace <= 0 then return gone(user, reason) end\n"                     \
    "  local dl = now + grace\n"                                               \
    "  redis.call('ZADD', b .. 'pa', 'XX', dl, user)\n"                        \
    "  redis.call('ZADD', b .. 'pg', dl, user)\n"                              \
    "  redis.call('HSET', b .. 'pr', user, reason)\n"                          \
    "end\n"                                                                    \
    "local function add(conn, tok, user, q, info, silent, cq)\n"               \
    "  if redis.call('HSETNX', b .. 'pc', conn,\n"                             \
    "                tok .. '\\31' .. user .. '\\31' .. ARGV[4]) == 0 then\n"  \
    "    return\n"                                                             \
    "  end\n"                                                                  \
    "  redis.call('HSET', b .. 'pj', user, q)\n"                               \
    "  redis.call('ZADD', b .. 'pa', 'XX', " SEATED_Q ", user)\n"              \
    "  if info ~= '' then redis.call('HSET', b .. 'pi', user, info) end\n"     \
    "  if percon then redis.call('HSET', b .. 'pq', conn, cq) end\n"           \
    "  local first = redis.call('HINCRBY', b .. 'pu', user, 1) == 1\n"         \
    "  if first and redis.call('ZREM', b .. 'pg', user) == 1 then\n"           \
    "    redis.call('HDEL', b .. 'pr', user)\n"                                \
    "    first = false\n"                                                      \
    "  end\n"                                                                  \
    "  if first then redis.call('PERSIST', b .. 'ps') end\n"                   \
    "  if silent then return end\n"                                            \
    "  if percon then\n"                                                       \
    "    emit('rc:join', '{\"user\":' .. q .. ',\"connection\":' .. cq .. "    \
    "'}')\n"                                                                   \
    "  elseif first then\n"                                                    \
    "    emit('rc:join', '{\"user\":' .. q .. '}')\n"                          \
    "  end\n"                                                                  \
    "end\n"                                                                    \
    "local function snapshot()\n"                                              \
    "  local seq = tonumber(redis.call('GET', b .. 'ps') or '0')\n"            \
    "  if users() > amax then return {seq, -1, users()} end\n"                 \
    "  local out = {seq, 0}\n"                                                 \
    "  local info = redis.call('EXISTS', b .. 'pi') == 1\n"                    \
    "  local function put(u, n)\n"                                             \
    "    out[#out + 1] = u\n"                                                  \
    "    out[#out + 1] = n\n"                                                  \
    "    out[#out + 1] = info and (redis.call('HGET', b .. 'pi', u) or '')\n"  \
    "                    or ''\n"                                              \
    "  end\n"                                                                  \
    "  local pu = redis.call('HGETALL', b .. 'pu')\n"                          \
    "  for i = 1, #pu, 2 do put(pu[i], tonumber(pu[i + 1])) end\n"             \
    "  for _, u in ipairs(redis.call('ZRANGE', b .. 'pg', 0, -1)) do\n"        \
    "    put(u, 0)\n"                                                          \
    "  end\n"                                                                  \
    "  out[2] = (#out - 2) / 3\n"                                              \
    "  if percon then\n"                                                       \
    "    local pc = redis.call('HGETALL', b .. 'pc')\n"                        \
    "    for i = 1, #pc, 2 do\n"                                               \
    "      out[#out + 1] = pc[i]\n"                                            \
    "      out[#out + 1] = user_of(pc[i + 1])\n"                               \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  return out\n"                                                           \
    "end\n"                                                                    \
    "local function tail(out)\n"                                               \
    "  local s, d = #out, due\n"                                               \
    "  local g = redis.call('ZRANGE', b .. 'pg', 0, 0, 'WITHSCORES')\n"        \
    "  if #g > 0 and (d < 0 or tonumber(g[2]) < d) then d = tonumber(g[2]) "   \
    "end\n"                                                                    \
    "  out[s + 1] = d\n"                                                       \
    "  out[s + 2] = now\n"                                                     \
    "  for _, u in ipairs(left) do out[#out + 1] = u end\n"                    \
    "  out[#out + 1] = s\n"                                                    \
    "  return out\n"                                                           \
    "end\n"

/* The tail of a room script's reply that changed presence: {..., due,
 * now, users gone..., s}, s the index (from 0) of due, the last element.
 * due: when the room next needs a sweep (its earliest grace deadline, or
 * a refresh asked for; -1 none), now: the script's time, then the users
 * who stopped being present in the room. */

#endif /* RC_LUA_H */

/*
 * The admission scripts (see roomcast.h, "Admission"). Room scripts run
 * on the room's keys with the presence prelude (lua.h); their extra
 * arguments start at ARGV[8]. Each returns {code, ...} where code is 0 or
 * an RC_E* value, so that the library passes it on as is.
 *
 * Node-wide keys: <kp>{codes} (zset code -> the deadline until which it
 * is not handed out), <kp>{closed} (zset room -> tombstone deadline),
 * <kp>{closed}:why (hash room -> reason JSON), <kp>{closed}:n (closes so
 * far: what nodes verify against). Room scripts never touch them (one
 * cluster slot per script): the code script and verify are node-wide
 * calls of their own, and a close is registered in <kp>{closed} before
 * its room script runs and its code tombstoned after (lua.c, admit.c).
 * The room's meta (pm) is what counts: a code whose room exists is not
 * created again (RC_EEXIST: another code is drawn), and a node verifying
 * a close reads the room's state before ending anything.
 */
#include "lua.h"

#define E_EXIST "-16"
#define E_FULL "-22"
#define E_CLOSED "-23"
#define E_NOROOM "-24"
#define E_NOTMEMBER "-26"
#define E_NOCODE "-27"

/* What a room script needs when it changes no presence: defining the
 * presence prelude's functions costs more than these scripts' work. */
#define LIGHT_PRELUDE                                                          \
    TIME_NOW                                                                   \
    "local b, kp, room, chan = KEYS[1], ARGV[1], ARGV[2], ARGV[3]\n"

/* The room's meta, and its seats with the lapsed ones (holds and graces
 * run out) taken away. */
#define META(prelude)                                                          \
    prelude                                                                    \
        "local m = redis.call('HMGET', b .. 'pm', 'state', 'cap', 'hold',\n"   \
        "                     'ttl', 'code')\n"                                \
        "if not m[1] then return {" E_NOROOM "} end\n"                         \
        "if m[1] == 'closed' then return {" E_CLOSED "} end\n"                 \
        "redis.call('ZREMRANGEBYSCORE', b .. 'pa', '-inf', now)\n"             \
        "local function seat(u)\n"                                             \
        "  return tonumber(redis.call('ZSCORE', b .. 'pa', u) or '-1')\n"      \
        "end\n"                                                                \
        "local function keep()\n"                                              \
        "  redis.call('PEXPIRE', b .. 'pm', m[4])\n"                           \
        "  redis.call('PEXPIRE', b .. 'pa', m[4])\n"                           \
        "end\n"

/* A code for a new room. KEYS[1]: <kp>{codes}. ARGV: ttl ms, alphabet,
 * length, a random integer, a code found taken meanwhile ("" none: it is
 * marked taken for ttl), then candidates drawn uniformly. The first free
 * candidate is taken; if none is and the space is small, a free code is
 * picked uniformly by enumeration. Returns {0, code} or {E_NOCODE}. */
const char rc__lua_code[] = SHEBANG TIME_NOW
    "local ttl, abc, len = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "if ARGV[5] ~= '' then redis.call('ZADD', KEYS[1], now + ttl, ARGV[5]) "
    "end\n"
    "local function take(c)\n"
    "  redis.call('ZADD', KEYS[1], now + ttl, c)\n"
    "  return {0, c}\n"
    "end\n"
    "for i = 6, #ARGV do\n"
    "  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then return "
    "take(ARGV[i]) end\n"
    "end\n"
    "local space = (#abc) ^ len\n"
    "if space > 65536 then return {" E_NOCODE "} end\n"
    "local free = space - redis.call('ZCARD', KEYS[1])\n"
    "if free <= 0 then return {" E_NOCODE "} end\n"
    "local k = tonumber(ARGV[4]) % free\n"
    "for i = 0, space - 1 do\n"
    "  local c, v = {}, i\n"
    "  for j = len, 1, -1 do\n"
    "    local d = v % #abc\n"
    "    c[j] = string.sub(abc, d + 1, d + 1)\n"
    "    v = (v - d) / #abc\n"
    "  end\n"
    "  c = table.concat(c)\n"
    "  if not redis.call('ZSCORE', KEYS[1], c) then\n"
    "    if k == 0 then return take(c) end\n"
    "    k = k - 1\n"
    "  end\n"
    "end\n"
    "return {" E_NOCODE "}\n";

/* Make the room. ARGV[8..12]: cap, ttl ms, hold ms, the first user (""
 * none), its code (""). Returns {0} or {E_EXIST}. */
const char rc__lua_create[] = SHEBANG LIGHT_PRELUDE
    "if redis.call('EXISTS', b .. 'pm') == 1 then return {" E_EXIST "} end\n"
    "redis.call('HSET', b .. 'pm', 'state', 'open', 'cap', ARGV[8],\n"
    "           'ttl', ARGV[9], 'hold', ARGV[10], 'code', ARGV[12])\n"
    "redis.call('PEXPIRE', b .. 'pm', ARGV[9])\n"
    "redis.call('DEL', b .. 'pa')\n"
    "if ARGV[11] ~= '' then\n"
    "  redis.call('ZADD', b .. 'pa', now + tonumber(ARGV[10]), ARGV[11])\n"
    "  redis.call('PEXPIRE', b .. 'pa', ARGV[9])\n"
    "end\n"
    "return {0}\n";

/* Seat a user. ARGV[8..9]: user, "m" (only tell whether it holds a seat)
 * or "". A new seat of a user present already is held as its presence
 * is (connected, or in its grace); a held seat not connected is held
 * hold ms more. Returns {0} or an error. */
const char rc__lua_admit[] = SHEBANG META(
    LIGHT_PRELUDE) "local u, s = ARGV[8], seat(ARGV[8])\n"
                   "local hold = now + tonumber(m[3])\n"
                   "if s < 0 then\n"
                   "  if ARGV[9] == 'm' then return {" E_NOTMEMBER "} end\n"
                   "  local cap = tonumber(m[2])\n"
                   "  if cap > 0 and redis.call('ZCARD', b .. 'pa') >= "
                   "cap then\n"
                   "    return {" E_FULL "}\n"
                   "  end\n"
                   "  local g = redis.call('ZSCORE', b .. 'pg', u)\n"
                   "  if redis.call('HEXISTS', b .. 'pu', u) == 1 then g "
                   "= " SEATED_Q " end\n"
                   "  redis.call('ZADD', b .. 'pa', g or hold, u)\n"
                   "  keep()\n"
                   "elseif s < hold then\n"
                   "  redis.call('ZADD', b .. 'pa', hold, u)\n"
                   "end\n"
                   "return {0}\n";

/* Take a user out: its seat, its connections (no grace), and every node
 * ends its streams (rc:evict, which nodes do not deliver). ARGV[8..9]:
 * user, user as JSON. Returns {0, tail} or an error. */
const char rc__lua_evict[] = SHEBANG META(
    ROOM_PRELUDE) "local u = ARGV[8]\n"
                  "local had = seat(u) >= 0\n"
                  "redis.call('ZREM', b .. 'pa', u)\n"
                  "local pc = redis.call('HGETALL', b .. 'pc')\n"
                  "for i = 1, #pc, 2 do\n"
                  "  if user_of(pc[i + 1]) == u then\n"
                  "    redis.call('HDEL', b .. 'pc', pc[i])\n"
                  "    drop(u, 0, 'left', pc[i])\n"
                  "    had = true\n"
                  "  end\n"
                  "end\n"
                  "if redis.call('ZREM', b .. 'pg', u) == 1 then gone(u, "
                  "'left') end\n"
                  "if not had then return {" E_NOTMEMBER "} end\n"
                  "redis.call(ARGV[7], chan, "
                  "'{\"v\":1,\"m\":{\"event\":\"rc:evict\",' "
                  "..\n"
                  "  '\"data\":{\"user\":' .. ARGV[9] .. '}},\"n\":\"\"}')\n"
                  "return tail({0})\n";

/* Close the room: everyone present leaves ("closed"), the seats and the
 * presence go, the meta stays closed for ttl (the tombstone, and the
 * code's), and rc:closed goes out. ARGV[8]: the reason JSON. Returns
 * {0, the tombstone's deadline, the room's code ("" none), tail} or an
 * error. */
const char rc__lua_close[] = SHEBANG META(
    ROOM_PRELUDE) "local dl = now + tonumber(m[4])\n"
                  "for _, u in ipairs(redis.call('HKEYS', b .. 'pu')) do\n"
                  "  redis.call('HDEL', b .. 'pu', u)\n"
                  "  gone(u, 'closed')\n"
                  "end\n"
                  "for _, u in ipairs(redis.call('ZRANGE', b .. 'pg', 0, -1)) "
                  "do\n"
                  "  redis.call('ZREM', b .. 'pg', u)\n"
                  "  gone(u, 'closed')\n"
                  "end\n"
                  "redis.call('DEL', b .. 'pc', b .. 'pq', b .. 'pd', b .. "
                  "'pa')\n"
                  "redis.call('HSET', b .. 'pm', 'state', 'closed', 'reason', "
                  "ARGV[8])\n"
                  "redis.call('PEXPIRE', b .. 'pm', m[4])\n"
                  "publish('rc:closed', '{\"reason\":' .. ARGV[8] .. '}')\n"
                  "return tail({0, dl, m[5] or ''})\n";

/* Is the room closed? {state ("" none), reason JSON ("")}: what a node
 * verifying closes acts on. */
const char rc__lua_closed[] =
    SHEBANG "return {redis.call('HGET', KEYS[1] .. 'pm', 'state') or '',\n"
            "        redis.call('HGET', KEYS[1] .. 'pm', 'reason') or ''}\n";

/* Closes since the node last looked. KEYS[1]: <kp>{closed}. ARGV[1]:
 * the count the node last saw ("": tell for
 * every room), then rooms. Returns {count} when it is unchanged, else
 * {count, then per room: its reason JSON or ""}. A room named here may
 * not be closed (its close failed, or has not run yet): the node reads
 * the room's own state before it acts (rc__lua_closed). */
const char rc__lua_verify[] = SHEBANG TIME_NOW
    "local n = redis.call('GET', KEYS[1] .. ':n') or '0'\n"
    "if n == ARGV[1] then return {n} end\n"
    "local out = {n}\n"
    "for i = 2, #ARGV do\n"
    "  local s = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]) or '0')\n"
    "  out[i] = s > now and (redis.call('HGET', KEYS[1] .. ':why', ARGV[i]) "
    "or\n"
    "                        '\"closed\"') or ''\n"
    "end\n"
    "return out\n";

/* A publish behind checks. ARGV[8..9]: a member ("" none), the envelope.
 * Returns {0} or an error. (A rate bucket is another slot: the library
 * takes from it first, with the rate script, and gives back what a
 * refused send took.) */
const char rc__lua_send[] = SHEBANG LIGHT_PRELUDE
    "local st = redis.call('HGET', b .. 'pm', 'state')\n"
    "if st == 'closed' then return {" E_CLOSED "} end\n"
    "if ARGV[8] ~= '' and tonumber(redis.call('ZSCORE', b .. 'pa', ARGV[8])\n"
    "                                or '0') <= now then\n"
    "  return {" E_NOTMEMBER "}\n"
    "end\n"
    "redis.call(ARGV[7], chan, ARGV[9])\n"
    "return {0}\n";

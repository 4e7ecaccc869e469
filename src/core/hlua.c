/*
 * The history scripts (see roomcast.h, "History and resume"). Room
 * scripts on the room's keys, extra arguments from ARGV[8]: hm (hash:
 * e, the epoch, Redis' ms when it began; s, the last sequence) and hs
 * (stream of envelopes, ids "S-0", field d).
 */
#include "lua.h"

#define HIST_PRELUDE                                                           \
    TIME_NOW                                                                   \
    "local b, chan = KEYS[1], ARGV[3]\n"                                       \
    "local function epoch(after)\n"                                            \
    "  local e = math.max(now, after + 1)\n"                                   \
    "  redis.call('DEL', b .. 'hs')\n"                                         \
    "  redis.call('HSET', b .. 'hm', 'e', string.format('%.0f', e), 's', 0)\n" \
    "  return string.format('%.0f', e)\n"                                      \
    "end\n"

/* Append, number, publish. ARGV[8..11]: max length, ttl ms, the envelope
 * before its id's value, and after it. Returns {e, s}. Lean on purpose:
 * each call made or function defined here costs every publish (no TIME
 * but for a new epoch; the meta's TTL renewed every 64th). */
const char rc__lua_hpub[] = SHEBANG
    "local b, chan = KEYS[1], ARGV[3]\n"
    "local e = redis.call('HGET', b .. 'hm', 'e')\n"
    "if not e then\n"
    "  local t = redis.call('TIME')\n"
    "  e = string.format('%.0f', tonumber(t[1]) * 1000 +\n"
    "                          math.floor(tonumber(t[2]) / 1000))\n"
    "  redis.call('DEL', b .. 'hs')\n"
    "  redis.call('HSET', b .. 'hm', 'e', e, 's', 0)\n"
    "end\n"
    "local s = redis.call('HINCRBY', b .. 'hm', 's', 1)\n"
    "local env = ARGV[10] .. e .. '-' .. s .. ARGV[11]\n"
    "redis.call('XADD', b .. 'hs', 'MAXLEN', '~', ARGV[8], s .. '-0', 'd',\n"
    "           env)\n"
    "if s % 64 == 1 then redis.call('PEXPIRE', b .. 'hm', 2592000000) end\n"
    "redis.call('PEXPIRE', b .. 'hs', ARGV[9])\n"
    "redis.call(ARGV[7], chan, env)\n"
    "return {e, s}\n";

/* Read. ARGV[8..12]: after this sequence ("": from the oldest kept), at
 * most this many, up to this sequence ("": the latest), and a client's
 * cursor (epoch, sequence; "" none): one ahead of the room (Redis rolled
 * back) fences it first, here, so that the answer names the new epoch.
 * Returns {e, s, first kept (s + 1: none), fenced (0/1), then per message
 * its sequence and envelope}; {"", 0, 1, 0} for a room without history. */
const char rc__lua_hread[] = SHEBANG HIST_PRELUDE
    "local e = redis.call('HGET', b .. 'hm', 'e')\n"
    "local top = tonumber(redis.call('HGET', b .. 'hm', 's') or '0')\n"
    "local fenced = 0\n"
    "if e and ARGV[11] ~= '' and (tonumber(ARGV[11]) > tonumber(e) or\n"
    "   (ARGV[11] == e and tonumber(ARGV[12]) > top)) then\n"
    "  e = epoch(math.max(tonumber(e), tonumber(ARGV[11])))\n"
    "  top, fenced = 0, 1\n"
    "end\n"
    "if not e then return {'', 0, 1, 0} end\n"
    "local f = redis.call('XRANGE', b .. 'hs', '-', '+', 'COUNT', 1)\n"
    "local out = {e, top, top + 1, fenced}\n"
    "if #f > 0 then out[3] = tonumber(string.match(f[1][1], '^%d+')) end\n"
    "local from = ARGV[8] == '' and '-' or ('(' .. ARGV[8] .. '-0')\n"
    "local to = ARGV[10] == '' and '+' or (ARGV[10] .. '-0')\n"
    "for _, r in ipairs(redis.call('XRANGE', b .. 'hs', from, to, 'COUNT',\n"
    "                              ARGV[9])) do\n"
    "  out[#out + 1] = tonumber(string.match(r[1], '^%d+'))\n"
    "  out[#out + 1] = r[2][2]\n"
    "end\n"
    "return out\n";

/* Fence: the room's sequence went back (ARGV[8..9]: the epoch and the
 * sequence a node saw in it, above the room's), or its history is gone: a
 * new epoch. Returns {the new epoch} or {""}. */
const char rc__lua_hfence[] = SHEBANG HIST_PRELUDE
    "local e = redis.call('HGET', b .. 'hm', 'e')\n"
    "local s = tonumber(redis.call('HGET', b .. 'hm', 's') or '0')\n"
    "if e and (e ~= ARGV[8] or s >= tonumber(ARGV[9])) then return {''} end\n"
    "local n = epoch(tonumber(ARGV[8]))\n"
    "redis.call('PEXPIRE', b .. 'hm', 2592000000)\n"
    "return {n}\n";

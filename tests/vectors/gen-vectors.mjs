#!/usr/bin/env node
// Generates valid.vec and malformed.vec, the roomcast envelope test vectors.
//
//   node tests/vectors/gen-vectors.mjs           write both files
//   node tests/vectors/gen-vectors.mjs --check   exit 1 if they are stale
//
// No dependencies. Deterministic: the only randomness is a seeded PRNG.
//
// Every vector is checked here before it is written:
// - envelopes built with JSON.stringify must re-encode to themselves, and
//   their SSE frame is computed twice, once the way @fastify/sse does it
//   (JSON.stringify(data).split('\n')) and once the way roomcast does it
//   (data text split at CRLF, CR or LF); both must be byte-identical;
// - a small strict reference decoder below (written from the rules in
//   roomcast.h and the vector README, independent of the C code) decodes
//   every envelope; valid ones must decode to the expected fields and
//   malformed ones must fail with exactly the stated reason. The decoder
//   refuses to answer for inputs whose outcome the rules leave open, so no
//   such input can slip into the files.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAX_SAFE = 9007199254740991n;
const DEFAULT_MAX_DATA = 1048576;
const DEFAULT_MAX_DEPTH = 64;
const SLACK = 65536;

function check(cond, msg) {
    if (!cond) throw new Error('generator self-check failed: ' + msg);
}

// ---- bytes helpers -----------------------------------------------------

/** Concatenate strings (as UTF-8) and Buffers into one Buffer. */
function cat(...parts) {
    return Buffer.concat(parts.map((x) => (Buffer.isBuffer(x) ? x : utf8(x))));
}

/** UTF-8 of a JS string that must be well formed (no lone surrogates). */
function utf8(s) {
    check(typeof s === 'string', 'utf8() of a non-string');
    check(wellFormed(s), 'lone surrogate in ' + JSON.stringify(s));
    return Buffer.from(s, 'utf8');
}

function hex(h) {
    return Buffer.from(h.replace(/\s+/g, ''), 'hex');
}

function wellFormed(s) {
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0xd800 && c <= 0xdbff) {
            const d = s.charCodeAt(i + 1);
            if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
            i++;
        } else if (c >= 0xdc00 && c <= 0xdfff) {
            return false;
        }
    }
    return true;
}

// ---- seeded PRNG (xorshift32 plus a 32-bit mixer) -------------------------

function makeRng(seed) {
    let s = seed >>> 0 || 1;
    const next = () => {
        s ^= s << 13;
        s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5;
        s >>>= 0;
        let z = Math.imul(s ^ (s >>> 16), 0x45d9f3b) >>> 0;
        z = Math.imul(z ^ (z >>> 16), 0x45d9f3b) >>> 0;
        return (z ^ (z >>> 16)) >>> 0;
    };
    const below = (k) => next() % k;
    return { next, below, pick: (arr) => arr[below(arr.length)] };
}

// ---- reference decoder -------------------------------------------------

class RefErr extends Error {
    constructor(code) {
        super(code);
        this.code = code;
    }
}

const IS_WS = (c) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const IS_DIGIT = (c) => c >= 0x30 && c <= 0x39;
const SIMPLE_ESC = new Map([
    [0x22, 0x22], [0x5c, 0x5c], [0x2f, 0x2f], [0x62, 0x08],
    [0x66, 0x0c], [0x6e, 0x0a], [0x72, 0x0d], [0x74, 0x09],
]);

function pushCodePoint(out, cp) {
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
    else if (cp < 0x10000)
        out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
    else
        out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63),
                 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
}

/** Is the JSON number text exactly the value 1? */
function exactlyOne(text) {
    const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
    check(m, 'number text ' + text);
    if (m[1]) return false;
    const frac = m[3] || '';
    let digits = (m[2] + frac).replace(/^0+/, '');
    let exp = BigInt(m[4] || '0') - BigInt(frac.length);
    if (digits === '') return false;
    while (digits.endsWith('0')) {
        digits = digits.slice(0, -1);
        exp += 1n;
    }
    return digits === '1' && exp === 0n;
}

/**
 * Decode buf like rc_envelope_decode. Returns {err} or {fields}. Throws a
 * plain Error when the rules do not settle the outcome ("AMBIG").
 */
function refDecode(buf, limits = {}) {
    const maxData = limits.max_data || DEFAULT_MAX_DATA;
    const maxDepth = Math.min(limits.max_depth || DEFAULT_MAX_DEPTH, 1024);
    if (buf.length > maxData + SLACK) return { err: 'ETOOBIG' };
    const n = buf.length;
    let p = 0;
    const E = (code) => {
        throw new RefErr(code);
    };
    const skip = () => {
        while (p < n && IS_WS(buf[p])) p++;
    };
    const hex4 = (q) => {
        if (q + 4 > n) return -1;
        let v = 0;
        for (let i = 0; i < 4; i++) {
            const c = buf[q + i];
            let d;
            if (c >= 0x30 && c <= 0x39) d = c - 0x30;
            else if (c >= 0x41 && c <= 0x46) d = c - 0x37;
            else if (c >= 0x61 && c <= 0x66) d = c - 0x57;
            else return -2;
            v = v * 16 + d;
        }
        return v;
    };

    // strict: a lone surrogate escape is EUTF8 (event, id, n, e values).
    function parseString(strict) {
        const start = p;
        p++;
        const out = [];
        for (;;) {
            if (p >= n) E('EJSON');
            const c = buf[p];
            if (c === 0x22) {
                p++;
                return { type: 'string', start, end: p, bytes: Buffer.from(out) };
            }
            if (c < 0x20) E('EJSON');
            if (c === 0x5c) {
                if (p + 1 >= n) E('EJSON');
                const e = buf[p + 1];
                if (SIMPLE_ESC.has(e)) {
                    out.push(SIMPLE_ESC.get(e));
                    p += 2;
                    continue;
                }
                if (e !== 0x75) E('EJSON');
                const u = hex4(p + 2);
                if (u < 0) E('EJSON');
                p += 6;
                let cp = u;
                let lone = false;
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (strict && p + 6 > n && (p >= n || buf[p] === 0x5c)) E('AMBIG');
                    if (p + 6 <= n && buf[p] === 0x5c && buf[p + 1] === 0x75) {
                        const lo = hex4(p + 2);
                        if (strict && lo === -2) E('AMBIG');
                        if (lo >= 0xdc00 && lo <= 0xdfff) {
                            cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                            p += 6;
                        }
                    }
                    lone = cp === u;
                } else if (u >= 0xdc00 && u <= 0xdfff) {
                    lone = true;
                }
                if (lone && strict) E('EUTF8');
                pushCodePoint(out, cp); // a lone one as WTF-8: matches no key
                continue;
            }
            if (c < 0x80) {
                out.push(c);
                p++;
                continue;
            }
            let len;
            let lo = 0x80;
            let hi = 0xbf;
            if (c >= 0xc2 && c <= 0xdf) len = 2;
            else if (c === 0xe0) { len = 3; lo = 0xa0; }
            else if (c >= 0xe1 && c <= 0xec) len = 3;
            else if (c === 0xed) { len = 3; hi = 0x9f; }
            else if (c >= 0xee && c <= 0xef) len = 3;
            else if (c === 0xf0) { len = 4; lo = 0x90; }
            else if (c >= 0xf1 && c <= 0xf3) len = 4;
            else if (c === 0xf4) { len = 4; hi = 0x8f; }
            else E('EUTF8');
            for (let i = 1; i < len; i++) {
                if (p + i >= n) E('AMBIG'); // input ends inside a sequence
                const d = buf[p + i];
                if (d < (i === 1 ? lo : 0x80) || d > (i === 1 ? hi : 0xbf)) E('EUTF8');
            }
            for (let i = 0; i < len; i++) out.push(buf[p + i]);
            p += len;
        }
    }

    function parseNumber() {
        const start = p;
        if (buf[p] === 0x2d) p++;
        if (p >= n) E('EJSON');
        if (buf[p] === 0x30) p++;
        else if (buf[p] >= 0x31 && buf[p] <= 0x39) while (p < n && IS_DIGIT(buf[p])) p++;
        else E('EJSON');
        if (p < n && buf[p] === 0x2e) {
            p++;
            if (!(p < n && IS_DIGIT(buf[p]))) E('EJSON');
            while (p < n && IS_DIGIT(buf[p])) p++;
        }
        if (p < n && (buf[p] === 0x65 || buf[p] === 0x45)) {
            p++;
            if (p < n && (buf[p] === 0x2b || buf[p] === 0x2d)) p++;
            if (!(p < n && IS_DIGIT(buf[p]))) E('EJSON');
            while (p < n && IS_DIGIT(buf[p])) p++;
        }
        return { type: 'number', start, end: p, text: buf.toString('latin1', start, p) };
    }

    function parseLiteral(word, type) {
        const start = p;
        for (let i = 0; i < word.length; i++) {
            if (p >= n || buf[p] !== word.charCodeAt(i)) E('EJSON');
            p++;
        }
        return { type, start, end: p };
    }

    // Generic object: valueOf(key) parses the member value.
    function parseObject(valueOf) {
        const start = p;
        p++;
        const members = [];
        skip();
        if (p < n && buf[p] === 0x7d) {
            p++;
            return { type: 'object', start, end: p, members };
        }
        for (;;) {
            skip();
            if (p >= n || buf[p] !== 0x22) E('EJSON');
            const key = parseString(false).bytes.toString('latin1');
            skip();
            if (p >= n || buf[p] !== 0x3a) E('EJSON');
            p++;
            skip();
            members.push([key, valueOf(key)]);
            skip();
            if (p >= n) E('EJSON');
            if (buf[p] === 0x2c) {
                p++;
                continue;
            }
            if (buf[p] === 0x7d) {
                p++;
                return { type: 'object', start, end: p, members };
            }
            E('EJSON');
        }
    }

    function parseArray(depth, ambig) {
        const start = p;
        p++;
        skip();
        if (p < n && buf[p] === 0x5d) {
            p++;
            return { type: 'array', start, end: p };
        }
        for (;;) {
            skip();
            parseValue(depth, false, ambig);
            skip();
            if (p >= n) E('EJSON');
            if (buf[p] === 0x2c) {
                p++;
                continue;
            }
            if (buf[p] === 0x5d) {
                p++;
                return { type: 'array', start, end: p };
            }
            E('EJSON');
        }
    }

    // depth: nesting of the enclosing counted containers. ambig: the rules
    // do not say whether this value's nesting counts (v, m, n, e, event,
    // id, retry, a non-object root), so EDEPTH there is not settled.
    function parseValue(depth, strict, ambig) {
        if (p >= n) E('EJSON');
        const c = buf[p];
        if (c === 0x7b || c === 0x5b) {
            if (depth + 1 > maxDepth) E(ambig ? 'AMBIG' : 'EDEPTH');
            if (c === 0x5b) return parseArray(depth + 1, ambig);
            return parseObject(() => parseValue(depth + 1, false, ambig));
        }
        if (c === 0x22) return parseString(strict);
        if (c === 0x2d || IS_DIGIT(c)) return parseNumber();
        if (c === 0x74) return parseLiteral('true', 'true');
        if (c === 0x66) return parseLiteral('false', 'false');
        if (c === 0x6e) return parseLiteral('null', 'null');
        E('EJSON');
    }

    const inM = (key) =>
        parseValue(0, key === 'event' || key === 'id',
                   key === 'event' || key === 'id' || key === 'retry');
    const atTop = (key) => {
        if (key === 'm' && p < n && buf[p] === 0x7b) return parseObject(inM);
        const known = key === 'm' || key === 'v' || key === 'n' || key === 'e';
        return parseValue(0, key === 'n' || key === 'e', known);
    };

    let root;
    try {
        skip();
        if (p < n && buf[p] === 0x7b) root = parseObject(atTop);
        else root = parseValue(0, false, true);
        skip();
        if (p !== n) E('EJSON');
    } catch (e) {
        if (!(e instanceof RefErr)) throw e;
        if (e.code === 'AMBIG') throw new Error('AMBIG: outcome not settled by the rules');
        return { err: e.code };
    }

    const lastOf = (members) => new Map(members);
    if (root.type !== 'object') return { err: 'ENOTENV' };
    const top = lastOf(root.members);
    const v = top.get('v');
    if (!v || v.type !== 'number' || !exactlyOne(v.text)) return { err: 'EVERSION' };
    const mv = top.get('m');
    if (!mv || mv.type !== 'object') return { err: 'ENOMSG' };
    const m = lastOf(mv.members);
    const data = m.get('data');
    if (!data) return { err: 'ENODATA' };
    const event = m.get('event');
    const id = m.get('id');
    const retry = m.get('retry');
    const node = top.get('n');
    const except = top.get('e');
    const meta = top.get('meta');
    if (event && event.type !== 'string') return { err: 'ETYPE' };
    if (id && id.type !== 'string') return { err: 'ETYPE' };
    if (!node || node.type !== 'string') return { err: 'ETYPE' };
    if (except && except.type !== 'string') return { err: 'ETYPE' };
    if (retry) {
        if (retry.type !== 'number' || !/^(0|[1-9][0-9]*)$/.test(retry.text) ||
            BigInt(retry.text) > MAX_SAFE)
            return { err: 'ERETRY' };
    }
    for (const s of [event, id, node, except]) {
        if (s && (s.bytes.includes(0x0a) || s.bytes.includes(0x0d) || s.bytes.includes(0)))
            return { err: 'ECHAR' };
    }
    if (data.end - data.start > maxData) return { err: 'ETOOBIG' };
    return {
        fields: {
            data: buf.subarray(data.start, data.end),
            event: event && event.bytes,
            id: id && id.bytes,
            retry: retry && retry.text,
            node: node.bytes,
            except: except && except.bytes,
            meta: meta && buf.subarray(meta.start, meta.end),
        },
    };
}

// ---- encoder and SSE framing -------------------------------------------

/** JSON.stringify of a UTF-8 string given as bytes. */
function jsonString(bytes) {
    const s = bytes.toString('utf8');
    check(Buffer.from(s, 'utf8').equals(bytes), 'string is not valid UTF-8');
    return Buffer.from(JSON.stringify(s), 'utf8');
}

/** What rc_envelope_encode writes for these decoded fields. */
function encode(f) {
    const parts = ['{"v":1,"m":{'];
    if (f.event) parts.push('"event":', jsonString(f.event), ',');
    parts.push('"data":', f.data);
    if (f.id) parts.push(',"id":', jsonString(f.id));
    if (f.retry !== undefined) parts.push(',"retry":', f.retry);
    parts.push('},"n":', jsonString(f.node));
    if (f.except) parts.push(',"e":', jsonString(f.except));
    if (f.meta) parts.push(',"meta":', f.meta);
    parts.push('}');
    return cat(...parts);
}

/** Lines of the data text, ended by CRLF, CR or LF (roomcast's rule). */
function splitLines(bytes) {
    const lines = [];
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
        if (bytes[i] === 0x0d || bytes[i] === 0x0a) {
            lines.push(bytes.subarray(start, i));
            if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a) i++;
            start = i + 1;
        }
    }
    lines.push(bytes.subarray(start));
    return lines;
}

/** roomcast's SSE frame for decoded fields (bytes). */
function sseFrame(f) {
    const parts = [];
    if (f.id && f.id.length) parts.push('id: ', f.id, '\n');
    if (f.event && f.event.length) parts.push('event: ', f.event, '\n');
    for (const line of splitLines(f.data)) parts.push('data: ', line, '\n');
    if (f.retry !== undefined && BigInt(f.retry) > 0n) parts.push('retry: ', f.retry, '\n');
    parts.push('\n');
    return cat(...parts);
}

/** The frame as @fastify/sse's formatSSEMessage writes it for a message
 *  object {id, event, data, retry} with the default JSON.stringify. */
function referenceFrame(msg) {
    let out = '';
    if (msg.id) out += 'id: ' + msg.id + '\n';
    if (msg.event) out += 'event: ' + msg.event + '\n';
    if (msg.data !== undefined) {
        for (const line of JSON.stringify(msg.data).split('\n')) out += 'data: ' + line + '\n';
    }
    if (msg.retry) out += 'retry: ' + msg.retry + '\n';
    if (out) out += '\n';
    return Buffer.from(out, 'utf8');
}

// ---- vector collections ------------------------------------------------

const valid = [];
const malformed = [];
const names = new Set();

function uniqueName(name) {
    check(/^[\x21-\x7e]+$/.test(name), 'name must be printable ASCII: ' + name);
    check(!names.has(name), 'duplicate vector name ' + name);
    names.add(name);
}

function fieldsEqual(a, b) {
    for (const k of ['data', 'event', 'id', 'node', 'except', 'meta']) {
        if ((a[k] === undefined) !== (b[k] === undefined)) return false;
        if (a[k] !== undefined && !Buffer.from(a[k]).equals(Buffer.from(b[k]))) return false;
    }
    return a.retry === b.retry;
}

function pushValid(name, envelope, fields, comment) {
    uniqueName(name);
    const sse = sseFrame(fields);
    const reencode = encode(fields);
    // The data span and the envelope must be JSON for JSON.parse too.
    JSON.parse(fields.data.toString('latin1'));
    const parsed = JSON.parse(envelope.toString('utf8'));
    check(parsed && typeof parsed === 'object' && 'm' in parsed, name + ': JSON.parse');
    valid.push({ name, envelope, fields, sse, reencode, comment });
}

/**
 * A valid vector built the way the Node reference builds a payload:
 * JSON.stringify of {v, m: {event, data, id, retry}, n, e, meta}.
 * msg: {event?, data, id?, retry?}; node; opt: {except?, meta?}.
 */
function V(name, msg, node = 'node-1', opt = {}) {
    const m = {};
    if (msg.event !== undefined) m.event = msg.event;
    m.data = msg.data;
    if (msg.id !== undefined) m.id = msg.id;
    if (msg.retry !== undefined) m.retry = msg.retry;
    const envObj = { v: 1, m, n: node };
    if (opt.except !== undefined) envObj.e = opt.except;
    if (opt.meta !== undefined) envObj.meta = opt.meta;
    const envelope = Buffer.from(JSON.stringify(envObj), 'utf8');
    const expect = {
        data: Buffer.from(JSON.stringify(msg.data), 'utf8'),
        event: msg.event === undefined ? undefined : utf8(msg.event),
        id: msg.id === undefined ? undefined : utf8(msg.id),
        retry: msg.retry === undefined ? undefined : String(msg.retry),
        node: utf8(node),
        except: opt.except === undefined ? undefined : utf8(opt.except),
        meta: opt.meta === undefined ? undefined : Buffer.from(JSON.stringify(opt.meta), 'utf8'),
    };
    const got = refDecode(envelope);
    check(got.fields, name + ': reference decoder says ' + got.err);
    check(fieldsEqual(got.fields, expect), name + ': decoded fields differ');
    check(encode(expect).equals(envelope), name + ': re-encoding differs from JSON.stringify');
    // Byte identity with @fastify/sse.
    const ours = sseFrame(expect);
    const theirs = referenceFrame(msg);
    check(ours.equals(theirs), name + ': SSE frame differs from the reference');
    pushValid(name, envelope, expect);
}

/** A hand-written valid envelope; the fields come from the reference
 *  decoder, and `want` (optional) pins some of them by hand. */
function H(name, envelope, want = {}) {
    envelope = Buffer.isBuffer(envelope) ? envelope : utf8(envelope);
    const got = refDecode(envelope);
    check(got.fields, name + ': reference decoder says ' + got.err);
    for (const [k, v] of Object.entries(want)) {
        const have = got.fields[k];
        if (v === undefined) check(have === undefined, name + ': ' + k + ' should be absent');
        else if (k === 'retry') check(have === v, name + ': retry ' + have);
        else check(have !== undefined && Buffer.from(have).equals(cat(v)), name + ': field ' + k);
    }
    pushValid(name, envelope, got.fields);
}

/** A malformed envelope and its reason. */
function M(name, envelope, error, limits = {}) {
    uniqueName(name);
    envelope = Buffer.isBuffer(envelope) ? envelope : utf8(envelope);
    const got = refDecode(envelope, limits);
    check(got.err === error,
          name + ': reference decoder says ' + (got.err || 'valid') + ', vector says ' + error);
    // Cross-check the grammar with JSON.parse (latin1 keeps bytes 1:1 and
    // JSON.parse only cares about ASCII structure).
    const preCheck = envelope.length > (limits.max_data || DEFAULT_MAX_DATA) + SLACK;
    if (!preCheck && error !== 'EDEPTH' && error !== 'EUTF8') {
        let ok = true;
        try {
            JSON.parse(envelope.toString('latin1'));
        } catch {
            ok = false;
        }
        check(ok === (error !== 'EJSON'), name + ': JSON.parse disagrees on grammar');
    }
    malformed.push({ name, envelope, error, limits });
}

// ---- valid vectors: built with JSON.stringify ---------------------------

// A realistic message first.
V('basic/chat-message',
  { event: 'message', data: { type: 'chat', user: 'ada', text: 'hello, room' }, id: 'msg-000123' },
  'node-7f3a9c', { except: 'conn-42', meta: { room: 'room:lobby' } });
V('basic/data-only', { data: { ok: true } });
V('basic/all-fields',
  { event: 'update', data: [1, 2, 3], id: 'e-1', retry: 3000 },
  'n1', { except: 'c1', meta: { rooms: ['a', 'b'], sender: { id: 7 } } });

// Data: every JSON value type.
const dataValues = [
    ['null', null], ['true', true], ['false', false],
    ['empty-string', ''], ['string', 'plain text'],
    ['empty-array', []], ['empty-object', {}],
    ['array-of-empties', [[], {}, '', [[]], [{}]]],
    ['object-empty-key', { '': 1 }],
    ['object-many-keys', Object.fromEntries(Array.from({ length: 40 }, (_, i) => ['k' + i, i]))],
    ['nested-mixed', { a: [1, { b: [null, true, false, 'x', { c: {} }] }], d: { e: { f: [[[]]] } } }],
    ['array-of-all-types', [null, true, false, 0, -1, 2.5, 's', [], {}]],
];
for (const [label, value] of dataValues) V('data-type/' + label, { data: value });

// Data: numbers in every form JSON.stringify produces.
const numbers = [
    ['zero', 0], ['negative-zero', -0], ['one', 1], ['minus-one', -1],
    ['int-100', 100], ['int-123456789', 123456789], ['fraction-0.1', 0.1],
    ['fraction-0.5', 0.5], ['sum-0.1+0.2', 0.1 + 0.2], ['minus-1.5', -1.5],
    ['1e20', 1e20], ['1e21', 1e21], ['1.5e300', 1.5e300], ['minus-1e21', -1e21],
    ['1e-6', 1e-6], ['1e-7', 1e-7], ['1.2345e-7', 1.2345e-7], ['123e-20', 123e-20],
    ['max-value', Number.MAX_VALUE], ['min-value', Number.MIN_VALUE],
    ['minus-1.5e-300', -1.5e-300], ['epsilon', Number.EPSILON],
    ['2pow53', 2 ** 53], ['2pow53-plus-2', 2 ** 53 + 2], ['minus-2pow53-plus-2', -(2 ** 53 + 2)],
    ['max-safe', Number.MAX_SAFE_INTEGER], ['min-safe', Number.MIN_SAFE_INTEGER],
    ['2pow64', 2 ** 64], ['123456.789', 123456.789], ['pi', Math.PI],
    ['nan-becomes-null', NaN], ['infinity-becomes-null', Infinity],
];
for (const [label, value] of numbers) V('number/' + label, { data: value });
V('number/all-in-one-array', { data: numbers.map(([, x]) => x) });
{
    const rng = makeRng(0x5eed0001);
    const f64 = new Float64Array(1);
    const u32 = new Uint32Array(f64.buffer);
    const list = [];
    while (list.length < 200) {
        u32[0] = rng.next();
        u32[1] = rng.next();
        if (Number.isFinite(f64[0])) list.push(f64[0]);
        list.push(rng.next() - 2 ** 31, rng.next() / 2 ** 32);
    }
    V('number/random-doubles', { data: list });
}

// Strings in data: every control character, quotes, backslashes, slashes.
const allControls = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('');
V('data-string/all-controls-00-1f', { data: allControls });
V('data-string/each-control-in-array', { data: Array.from(allControls) });
V('data-string/controls-as-keys', { data: Object.fromEntries(Array.from(allControls, (c) => [c, c])) });
V('data-string/nul-at-both-ends', { data: '\u0000mid\u0000' });
V('data-string/quotes-backslashes-slashes', { data: { '"q"': '\\', 'a/b': '</script>', 'x\\"y': '\\\\"' } });
V('data-string/del-and-c1', { data: '\u007f\u0080\u0085\u009f\u00a0' });
V('data-string/lone-surrogates-escaped', { data: ['\ud800', '\udfff', '\udc00\ud800', 'a\ud83d', '\ude00b'] });

// Unicode in every string field.
const unicode = [
    ['emoji', '😀🎉👍🏽 👨‍👩‍👧‍👦 🇯🇵'],
    ['cjk', '日本語テキスト 中文 한국어'],
    ['combining', 'e\u0301 n\u0303 Z\u0351\u0360\u0489\u0335'],
    ['line-separators', 'a\u2028b\u2029c'],
    ['bom-and-zwsp', '\ufeffx\u200by\ufeff'],
    ['del', 'a\u007fb'],
    ['rtl', 'שלום مرحبا \u202eabc\u202c'],
    ['encoding-boundaries', '\u007f\u0080\u07ff\u0800\ud7ff\ue000\ufffd\ufffe\uffff\u{10000}\u{10ffff}'],
    ['nel-nbsp', 'a\u0085b\u00a0c'],
];
for (const [label, s] of unicode) {
    V('unicode/' + label + '/data', { data: { text: s, [s]: [s] } });
    V('unicode/' + label + '/event-id', { event: s, data: 1, id: s });
    V('unicode/' + label + '/node-except', { data: 1 }, s, { except: s });
    V('unicode/' + label + '/meta', { data: 1 }, 'n', { meta: { s } });
}

// Every control character but CR and LF in event, id, node and except.
for (let c = 1; c < 32; c++) {
    if (c === 10 || c === 13) continue;
    const ch = String.fromCharCode(c);
    const h = c.toString(16).padStart(2, '0');
    V('control/' + h + '/event-id', { event: 'ev' + ch + 'x', data: 0, id: ch + 'id' + ch });
    V('control/' + h + '/node-except', { data: 0 }, 'n' + ch, { except: ch });
}
{
    const noCrLf = allControls.slice(1).replace(/[\r\n]/g, '');
    V('control/all-but-cr-lf/every-field', { event: noCrLf, data: noCrLf, id: noCrLf }, noCrLf,
      { except: noCrLf, meta: noCrLf });
}
V('strings/quotes-backslashes-slashes', { event: 'a"b\\c/d', data: '/', id: '\\' }, '"', { except: '/\\/' });
V('strings/json-in-strings', { event: '{"x":1}', data: '{"x":1}', id: '[1]' }, '{}', { except: 'null' });
V('strings/sse-field-lookalikes', { event: 'data: x', data: 'id: 1\\n', id: 'event: y' });

// event, id and retry: absent, empty, present.
V('fields/event-empty', { event: '', data: 1 });
V('fields/id-empty', { data: 1, id: '' });
V('fields/event-id-empty', { event: '', data: 1, id: '' });
V('fields/event-only', { event: 'tick', data: 1 });
V('fields/id-only', { data: 1, id: 'x' });
V('fields/event-0-id-0', { event: '0', data: 0, id: '0' });
V('fields/event-space-id-space', { event: ' ', data: ' ', id: ' ' });
V('fields/retry-0', { data: 1, retry: 0 });
V('fields/retry-1', { data: 1, retry: 1 });
V('fields/retry-3000', { data: 1, retry: 3000 });
V('fields/retry-2pow31', { data: 1, retry: 2 ** 31 });
V('fields/retry-2pow32', { data: 1, retry: 2 ** 32 });
V('fields/retry-max-safe', { data: 1, retry: Number.MAX_SAFE_INTEGER });
V('fields/retry-0-with-event-id', { event: 'e', data: 1, id: 'i', retry: 0 });
V('fields/node-empty', { data: 1 }, '');
V('fields/except-empty', { data: 1 }, 'n', { except: '' });
V('fields/except-present', { data: 1 }, 'n', { except: 'conn-1' });
V('fields/meta-null', { data: 1 }, 'n', { meta: null });
V('fields/meta-false', { data: 1 }, 'n', { meta: false });
V('fields/meta-zero', { data: 1 }, 'n', { meta: 0 });
V('fields/meta-string', { data: 1 }, 'n', { meta: 'm' });
V('fields/meta-empty-object', { data: 1 }, 'n', { meta: {} });
V('fields/meta-array', { data: 1 }, 'n', { meta: [1, 'two', null] });
V('fields/meta-nested', { data: 1 }, 'n', { meta: { a: { b: { c: [1, { d: [] }] } }, e: 'f' } });
V('fields/except-and-meta', { data: null }, 'n', { except: 'x', meta: { k: 'v' } });

// Depth: exactly at the limit (64) in data and meta.
function nestArrays(d, inner = []) {
    let v = inner;
    for (let i = 1; i < d; i++) v = [v];
    return v;
}
function nestObjects(d) {
    let v = {};
    for (let i = 1; i < d; i++) v = { a: v };
    return v;
}
function nestMixed(d) {
    let v = [];
    for (let i = 1; i < d; i++) v = i % 2 ? { k: v } : [0, v];
    return v;
}
V('depth/data-arrays-64', { data: nestArrays(64) });
V('depth/data-arrays-64-with-scalar', { data: nestArrays(63, [1]) });
V('depth/data-objects-64', { data: nestObjects(64) });
V('depth/data-mixed-64', { data: nestMixed(64) });
V('depth/meta-arrays-64', { data: 1 }, 'n', { meta: nestArrays(64) });
V('depth/data-and-meta-64', { data: nestObjects(64) }, 'n', { meta: nestMixed(64) });
V('depth/data-arrays-63', { data: nestArrays(63) });
V('depth/data-siblings-at-64', { data: [nestArrays(63), { a: nestObjects(62) }, nestMixed(63)] });
V('depth/data-many-shallow-siblings', { data: Array.from({ length: 100 }, (_, i) => (i % 2 ? [[[]]] : { a: { b: [{}] } })) });
V('data-type/envelope-lookalike-object', { data: { v: 2, m: null, n: 5, data: null, event: 7, id: [], retry: -1 } });
V('data-type/envelope-lookalike-string', { data: '{"v":1,"m":{"data":2},"n":"x"}' });

// Big payloads: data texts of exactly 64 KiB and 1 MiB.
function randomString(rng, len) {
    const pools = [
        () => String.fromCharCode(0x20 + rng.below(95)),
        () => String.fromCharCode(0x20 + rng.below(95)),
        () => String.fromCharCode(0x20 + rng.below(95)),
        () => String.fromCharCode(rng.below(32)),
        () => String.fromCharCode(0x80 + rng.below(0x780)),
        () => String.fromCharCode(0x4e00 + rng.below(0x5000)),
        () => String.fromCodePoint(0x1f300 + rng.below(0x300)),
        () => String.fromCodePoint(0x10000 + rng.below(0x100000)),
        () => rng.pick(['\u2028', '\u2029', '\ufeff', '\u007f', '"', '\\', '/', '\u0301']),
        () => String.fromCharCode(0xd800 + rng.below(0x800)), // lone surrogate: escaped
    ];
    let s = '';
    for (let i = 0; i < len; i++) s += rng.pick(pools)();
    return s;
}
function randomValue(rng, depth) {
    const k = rng.below(depth > 3 ? 5 : 8);
    if (k === 0) return randomString(rng, rng.below(24));
    if (k === 1) return rng.next() / 7 - 2 ** 28;
    if (k === 2) return rng.pick([null, true, false, 0, -0, 1e21, 5e-324]);
    if (k === 3 || k === 4) return rng.below(1000);
    if (k === 5 || k === 6) {
        const a = [];
        for (let i = rng.below(5); i > 0; i--) a.push(randomValue(rng, depth + 1));
        return a;
    }
    const o = {};
    for (let i = rng.below(5); i > 0; i--) o[randomString(rng, 1 + rng.below(6))] = randomValue(rng, depth + 1);
    return o;
}
/** {"kind":..,"items":[..],"pad":"xx.."} whose JSON text is exactly size bytes. */
function sizedData(size, seed) {
    const rng = makeRng(seed);
    const items = [];
    let est = 0;
    while (est < size - 4096) {
        const it = randomValue(rng, 0);
        items.push(it);
        est += Buffer.byteLength(JSON.stringify(it)) + 1;
    }
    const obj = { kind: 'bulk', items, pad: '' };
    const base = Buffer.byteLength(JSON.stringify(obj));
    check(base <= size, 'sizedData overshoot');
    obj.pad = 'x'.repeat(size - base);
    check(Buffer.byteLength(JSON.stringify(obj)) === size, 'sizedData size');
    return obj;
}
V('size/data-64KiB', { event: 'bulk', data: sizedData(65536, 0x5eed0002), id: 'big-1', retry: 10 },
  'node-big', { except: 'c', meta: { size: '64KiB' } });
V('size/data-1MiB-exact-limit', { event: 'bulk', data: sizedData(1048576, 0x5eed0003), id: 'big-2' },
  'node-big', { meta: { size: '1MiB' } });

// ---- valid vectors: hand-written (re-encoding differs) -----------------

H('order/keys-reversed',
  '{"meta":{"a":1},"e":"x","n":"node","m":{"retry":5,"id":"i","data":[1],"event":"e"},"v":1}',
  { event: 'e', id: 'i', retry: '5', except: 'x', meta: '{"a":1}' });
H('order/v-last', '{"m":{"data":1},"n":"a","v":1}');
H('order/n-first', '{"n":"a","v":1,"m":{"data":2,"event":"x"}}');
H('order/data-last-in-m', '{"v":1,"m":{"id":"1","retry":0,"event":"e","data":{"k":[]}},"n":"a"}');

H('unknown/top-level-nested',
  '{"v":1,"x":{"deep":[1,{"y":null}],"z":"s"},"m":{"data":1},"n":"a","t":[[[]]],"zz":false}');
H('unknown/in-m-nested',
  '{"v":1,"m":{"foo":{"bar":[1,2,{"baz":null}]},"data":"d","qux":[[]],"DATA":5},"n":"a"}',
  { data: '"d"' });
H('unknown/known-names-at-wrong-level',
  '{"v":1,"event":5,"id":null,"retry":-1,"data":"top","m":{"data":1,"v":2,"n":5,"e":[],"meta":"x","m":7},"n":"a"}',
  { data: '1', event: undefined, id: undefined, retry: undefined, except: undefined, meta: undefined });
H('unknown/bad-strings-at-wrong-level',
  '{"v":1,"event":"\\ud800","id":"a\\nb","m":{"data":1,"n":"\\udc00","e":"\\r","x":"\\u0000"},"n":"a","y":{"n":"\\ud800","e":"\\n"}}');
H('unknown/case-differs', '{"v":1,"V":2,"M":3,"N":4,"m":{"data":1,"Event":5,"ID":6,"Retry":"x"},"n":"a"}');
H('unknown/empty-key', '{"":1,"v":1,"m":{"":[],"data":1},"n":"a"}');
H('unknown/key-with-lone-surrogate', '{"\\ud800":1,"v":1,"m":{"\\udc00x":2,"data":1},"n":"a"}');
H('unknown/key-with-nul', '{"v\\u0000":2,"v":1,"m":{"data\\u0000":2,"data":1},"n":"a"}', { data: '1' });
H('unknown/depth-64-in-m', cat('{"v":1,"m":{"x":', JSON.stringify(nestArrays(64)), ',"data":1},"n":"a"}'));
H('unknown/depth-64-at-top', cat('{"v":1,"x":', JSON.stringify(nestObjects(64)), ',"m":{"data":1},"n":"a"}'));
H('unknown/many-keys',
  cat('{"v":1,', Array.from({ length: 300 }, (_, i) => `"u${i}":${i}`).join(','), ',"m":{"data":1},"n":"a"}'));

H('duplicate/v-2-then-1', '{"v":2,"v":1,"m":{"data":1},"n":"a"}');
H('duplicate/m-replaced-whole',
  '{"v":1,"m":{"event":"x","id":"y","retry":9,"data":1},"n":"a","m":{"data":2}}',
  { data: '2', event: undefined, id: undefined, retry: undefined });
H('duplicate/m-string-then-object', '{"v":1,"m":"x","m":{"data":3},"n":"a"}', { data: '3' });
H('duplicate/data', '{"v":1,"m":{"data":1,"data":[2]},"n":"a"}', { data: '[2]' });
H('duplicate/event-with-lf-overridden', '{"v":1,"m":{"event":"a\\nb","data":1,"event":"ok"},"n":"a"}',
  { event: 'ok' });
H('duplicate/event-number-overridden', '{"v":1,"m":{"event":5,"data":1,"event":"ok"},"n":"a"}');
H('duplicate/id', '{"v":1,"m":{"id":"1","data":1,"id":"2"},"n":"a"}', { id: '2' });
H('duplicate/retry', '{"v":1,"m":{"retry":-1,"data":1,"retry":1.5,"retry":7},"n":"a"}', { retry: '7' });
H('duplicate/n-number-then-string', '{"v":1,"n":5,"m":{"data":1},"n":"b"}', { node: 'b' });
H('duplicate/n-nul-overridden', '{"v":1,"n":"\\u0000","m":{"data":1},"n":"b"}', { node: 'b' });
H('duplicate/e-null-then-string', '{"v":1,"m":{"data":1},"n":"a","e":null,"e":"c"}', { except: 'c' });
H('duplicate/meta', '{"v":1,"m":{"data":1},"n":"a","meta":1,"meta":{"x":2}}', { meta: '{"x":2}' });

H('escaped-keys/lowercase-hex',
  '{"\\u0076":1,"\\u006d":{"\\u0065\\u0076\\u0065\\u006e\\u0074":"e","\\u0064\\u0061\\u0074\\u0061":1,' +
  '"\\u0069\\u0064":"i","\\u0072etry":2},"\\u006e":"n","\\u0065":"x","\\u006d\\u0065\\u0074\\u0061":0}',
  { event: 'e', id: 'i', retry: '2', node: 'n', except: 'x', meta: '0' });
H('escaped-keys/uppercase-hex', '{"\\u0076":1,"\\u006D":{"d\\u0061t\\u0061":1},"\\u006E":"n"}');
H('escaped-keys/solidus', '{"v":1,"m":{"data":1,"a\\/b":2},"n":"\\/"}', { node: '/' });

H('escaped-values/simple-escapes',
  '{"v":1,"m":{"event":"\\"\\\\\\/\\b\\f\\t","data":1,"id":"\\u0041\\u00e9"},"n":"\\u4e2d","e":"\\u007f"}',
  { event: '"\\/\b\f\t', id: 'Aé', node: '中', except: '\u007f' });
H('escaped-values/surrogate-pairs',
  '{"v":1,"m":{"event":"\\ud83d\\ude00","data":1,"id":"\\uD83D\\uDE00"},"n":"\\ud800\\udc00","e":"\\udbff\\udfff"}',
  { event: '😀', id: '😀', node: '\u{10000}', except: '\u{10ffff}' });
H('escaped-values/utf8-length-boundaries',
  '{"v":1,"m":{"event":"\\u0080\\u07ff\\u0800\\uffff\\ud800\\udc00\\udbff\\udfff","data":1,' +
  '"id":"\\u00ff\\u0100\\u007f\\u0001"},"n":"\\uAbCd\\uD7FF\\uE000","e":"\\ufeff\\ufffd"}',
  { event: '\u0080\u07ff\u0800\uffff\u{10000}\u{10ffff}', id: '\u00ff\u0100\u007f\u0001',
    node: '\uabcd\ud7ff\ue000', except: '\ufeff\ufffd' });
H('escaped-keys/surrogate-pair-key', '{"\\ud83d\\ude00":1,"v":1,"m":{"data":1},"n":"a"}');
H('unknown/decoy-envelope-in-strings',
  '{"v":1,"x":"},\\"m\\":{\\"data\\":2},\\"n\\":\\"evil\\"}","m":{"y":"\\"}","data":"\\\\","z":"\\\\\\""},"n":"a"}',
  { data: '"\\\\"', node: 'a' });
H('escaped-values/line-separators', '{"v":1,"m":{"event":"\\u2028","data":1,"id":"\\u2029"},"n":"\\ufeff"}');
H('escaped-values/controls-not-cr-lf', '{"v":1,"m":{"event":"\\u0001\\u001f\\u000b\\u000c","data":1},"n":"\\t"}');
H('raw-values/del-and-utf8-boundaries',
  cat('{"v":1,"m":{"event":"', hex('7f c280 dfbf e0a080 ed9fbf ee8080 efbfbf f0908080 f48fbfbf'),
      '","data":"', hex('c280 efbfbf f48fbfbf'), '"},"n":"', hex('f09f9880'), '"}'));

H('whitespace/everywhere',
  ' \t\r\n{ \t\r\n"v" \t\r\n: \t\r\n1 \t\r\n, \t\r\n"m" \t\r\n: \t\r\n{ \t\r\n"event" \t\r\n: \t\r\n"e" \t\r\n,' +
  ' \t\r\n"data" \t\r\n: \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ \t\r\n"k" \t\r\n: \t\r\nnull \t\r\n} \t\r\n] \t\r\n,' +
  ' \t\r\n"retry" \t\r\n: \t\r\n5 \t\r\n} \t\r\n, \t\r\n"n" \t\r\n: \t\r\n"a" \t\r\n, \t\r\n"meta" \t\r\n:' +
  ' \t\r\n{ \t\r\n} \t\r\n} \t\r\n',
  { data: '[ \t\r\n1 \t\r\n, \t\r\n{ \t\r\n"k" \t\r\n: \t\r\nnull \t\r\n} \t\r\n]', meta: '{ \t\r\n}', retry: '5' });
H('whitespace/crlf-between-tokens', '{\r\n"v":1,\r\n"m":{\r\n"data":true\r\n},\r\n"n":"a"\r\n}\r\n', { data: 'true' });
H('whitespace/empty-containers', '{"v":1,"m":{"data":[ ],"x":{ }},"n":"a","meta":{\t}}', { data: '[ ]', meta: '{\t}' });
H('whitespace/trailing-only', '{"v":1,"m":{"data":0},"n":"a"}\n\n\n');
H('whitespace/leading-only', '\n\t {"v":1,"m":{"data":0},"n":"a"}');

for (const num of ['1E5', '-0.0e-0', '1.50', '0e0', '-0', '1E+5', '1e-0', '0.000', '10.0e-1',
                   '123456789012345678901234567890', '1e400', '-1e-400', '1.7976931348623157e309',
                   '0.0000000000000000000000000000001', '9007199254740993'])
    H('noncanonical-number/' + num, `{"v":1,"m":{"data":${num}},"n":"a"}`, { data: num });
H('noncanonical-number/array', '{"v":1,"m":{"data":[1E5,-0.0e-0,1.50]},"n":"a","meta":2E-1}',
  { data: '[1E5,-0.0e-0,1.50]', meta: '2E-1' });

H('data-string/all-escape-forms',
  '{"v":1,"m":{"data":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u001F\\u00e9\\uD83D\\uDE00\\ud800\\udc00"},"n":"a"}');
H('data-string/lone-surrogates', '{"v":1,"m":{"data":["\\ud800","\\udfff","\\udc00\\ud800","\\ud800x"]},"n":"a"}');
H('meta/lone-surrogates-and-controls', '{"v":1,"m":{"data":1},"n":"a","meta":{"s":"\\ud800\\u0000\\r\\n"}}');
H('data/null-hand-written', '{"v":1,"m":{"data":null},"n":"a"}', { data: 'null' });

H('multiline/pretty-lf', '{"v":1,"m":{"data":{\n  "a": [\n    1,\n    2\n  ],\n  "b": "x"\n}},"n":"a"}');
H('multiline/pretty-crlf', '{"v":1,"m":{"data":{\r\n  "a": 1,\r\n  "b": [\r\n    true\r\n  ]\r\n}},"n":"a"}');
H('multiline/pretty-lone-cr', '{"v":1,"m":{"data":{\r  "a": 1,\r  "b": 2\r}},"n":"a"}');
H('multiline/blank-line-lf', '{"v":1,"m":{"data":[1,\n\n2]},"n":"a"}');
H('multiline/blank-line-crlf', '{"v":1,"m":{"data":[1,\r\n\r\n2]},"n":"a"}');
H('multiline/blank-line-cr-cr', '{"v":1,"m":{"data":[1,\r\r2]},"n":"a"}');
H('multiline/lf-then-cr-is-two-breaks', '{"v":1,"m":{"data":[1,\n\r2]},"n":"a"}');
H('multiline/mixed-breaks', '{"v":1,"m":{"event":"e","data":[\r\n1,\r2,\n3\r\n],"id":"i","retry":1},"n":"a"}');
H('multiline/tab-is-not-a-break', '{"v":1,"m":{"data":[1,\t2]},"n":"a"}');
H('multiline/with-event-id-retry', '{"v":1,"m":{"event":"ev","data":{\n"k":\n"v"\n},"id":"7","retry":250},"n":"a"}');

for (const v of ['1.0', '1e0', '10e-1', '0.1e1', '1E0', '1e+0', '1.000', '100e-2', '0.01e2', '1e-0', '0.00001e5', '1000000000000000000000e-21'])
    H('version/' + v, `{"v":${v},"m":{"data":1},"n":"a"}`);
H('version/1e-many-zeros', '{"v":1e-000000000000000000000000000000,"m":{"data":1},"n":"a"}');
H('version/1-then-many-zeros-and-exponent', '{"v":1000000000000000000000000000000e-30,"m":{"data":1},"n":"a"}');
H('retry/whitespace-around', '{"v":1,"m":{"data":1,"retry" :  3000  },"n":"a"}', { retry: '3000' });
H('retry/zero-hand-written', '{"v":1,"m":{"retry":0,"data":1},"n":"a"}', { retry: '0' });

// ---- malformed vectors -------------------------------------------------

const envD = (data) => cat('{"v":1,"m":{"data":', data, '},"n":"node"}');
const envM = (inner) => cat('{"v":1,"m":{', inner, '},"n":"node"}');
const envTop = (rest) => cat('{"v":1,"m":{"data":1},', rest, '}');
const BASE = '{"v":1,"m":{"event":"chat","data":{"text":"hi","n":[1,2.5e3,true,null]},' +
    '"id":"42","retry":3000},"n":"node-a","e":"conn-1","meta":{"room":"r1"}}';
check(refDecode(utf8(BASE)).fields, 'BASE must be valid');

// Truncations: every proper prefix of an all-ASCII envelope.
for (let k = 0; k < BASE.length; k++)
    M('truncated/base/' + String(k).padStart(3, '0'), BASE.slice(0, k), 'EJSON');
// ...and of one with escapes and multibyte text, at character boundaries.
{
    const u = cat('{"v":1,"m":{"data":["\\u00e9\\ud83d\\ude00\\n", "', hex('c3a9 f09f9880'), '", 1.5e-3]},"n":"n"}');
    check(refDecode(u).fields, 'truncation source must be valid');
    for (let k = 0; k < u.length; k++) {
        if (k < u.length && (u[k] & 0xc0) === 0x80) continue; // inside a sequence
        M('truncated/unicode/' + String(k).padStart(3, '0'), u.subarray(0, k), 'EJSON');
    }
}

// Structural syntax errors.
const syntax = [
    ['empty-input', ''],
    ['only-whitespace', ' \t\r\n'],
    ['only-open-brace', '{'],
    ['bom-prefix', cat(hex('efbbbf'), '{"v":1,"m":{"data":1},"n":"a"}')],
    ['garbage-after-object', '{"v":1,"m":{"data":1},"n":"a"}x'],
    ['second-object-after', '{"v":1,"m":{"data":1},"n":"a"}{}'],
    ['number-after-object', '{"v":1,"m":{"data":1},"n":"a"} 1'],
    ['nul-after-object', cat('{"v":1,"m":{"data":1},"n":"a"}', hex('00'))],
    ['nul-before-object', cat(hex('00'), '{"v":1,"m":{"data":1},"n":"a"}')],
    ['raw-nul-between-tokens', cat('{"v":1,', hex('00'), '"m":{"data":1},"n":"a"}')],
    ['raw-ff-outside-string', cat('{"v":1,"m":{"data":1}', hex('ff'), ',"n":"a"}')],
    ['raw-utf8-outside-string', cat('{"v":1,"m":{"data":1},', hex('c3a9'), '"n":"a"}')],
    ['form-feed-whitespace', '{"v":1,\f"m":{"data":1},"n":"a"}'],
    ['vertical-tab-whitespace', '{"v":1,\v"m":{"data":1},"n":"a"}'],
    ['nbsp-whitespace', cat('{"v":1,', hex('c2a0'), '"m":{"data":1},"n":"a"}')],
    ['u2028-whitespace', cat('{"v":1,', hex('e280a8'), '"m":{"data":1},"n":"a"}')],
    ['trailing-comma-top', '{"v":1,"m":{"data":1},"n":"a",}'],
    ['trailing-comma-m', '{"v":1,"m":{"data":1,},"n":"a"}'],
    ['trailing-comma-array', envD('[1,2,]')],
    ['trailing-comma-object-in-data', envD('{"a":1,}')],
    ['leading-comma-array', envD('[,1]')],
    ['double-comma-array', envD('[1,,2]')],
    ['double-comma-object', '{"v":1,,"m":{"data":1},"n":"a"}'],
    ['missing-comma-object', '{"v":1 "m":{"data":1},"n":"a"}'],
    ['missing-comma-array', envD('[1 2]')],
    ['missing-colon', '{"v" 1,"m":{"data":1},"n":"a"}'],
    ['double-colon', '{"v"::1,"m":{"data":1},"n":"a"}'],
    ['missing-value', '{"v":,"m":{"data":1},"n":"a"}'],
    ['missing-value-at-end', '{"v":1,"m":{"data":1},"n":}'],
    ['single-quoted-key', "{'v':1,\"m\":{\"data\":1},\"n\":\"a\"}"],
    ['single-quoted-string', envD("'x'")],
    ['unquoted-key', '{v:1,"m":{"data":1},"n":"a"}'],
    ['number-key', '{1:1,"v":1,"m":{"data":1},"n":"a"}'],
    ['line-comment', '{"v":1,//c\n"m":{"data":1},"n":"a"}'],
    ['block-comment', '{"v":1,/*c*/"m":{"data":1},"n":"a"}'],
    ['hash-comment', '{"v":1,#c\n"m":{"data":1},"n":"a"}'],
    ['unclosed-array', envD('[1,2')],
    ['unclosed-object-in-data', envD('{"a":1')],
    ['mismatched-brackets', envD('[1}')],
    ['mismatched-braces', envD('{"a":1]')],
    ['extra-close-bracket', envD('[1]]')],
    ['array-as-key', '{["v"]:1,"m":{"data":1},"n":"a"}'],
    ['key-without-value-in-array', envD('["a":1]')],
    ['nan', envD('NaN')],
    ['infinity', envD('Infinity')],
    ['minus-infinity', envD('-Infinity')],
    ['undefined', envD('undefined')],
    ['literal-True', envD('True')],
    ['literal-NULL', envD('NULL')],
    ['literal-tru', envD('tru')],
    ['literal-nul', '{"v":1,"m":{"data":nul},"n":"a"}'],
    ['literal-nulll', envD('nulll')],
    ['literal-falsey', envD('falsey')],
    ['leading-zero-01', envD('01')],
    ['leading-zero-minus-01', envD('-01')],
    ['leading-zero-00', envD('00')],
    ['leading-zero-in-v', '{"v":01,"m":{"data":1},"n":"a"}'],
    ['plus-sign', envD('+1')],
    ['leading-dot', envD('.5')],
    ['trailing-dot', envD('1.')],
    ['trailing-dot-exponent', envD('1.e5')],
    ['exponent-without-digits', envD('1e')],
    ['exponent-sign-without-digits', envD('1e+')],
    ['minus-alone', envD('-')],
    ['double-minus', envD('--1')],
    ['minus-space-digit', envD('- 1')],
    ['hex-number', envD('0x10')],
    ['underscore-number', envD('1_000')],
    ['number-with-letters', envD('12ab')],
    ['double-dot', envD('1.2.3')],
    ['unterminated-string', '{"v":1,"m":{"data":"abc},"n":"a"}'],
    ['unterminated-key', '{"v":1,"m":{"data":1},"n'],
    ['string-ends-with-backslash', '{"v":1,"m":{"data":"abc\\'],
];
for (const [label, env] of syntax) M('syntax/' + label, env, 'EJSON');

// Bad escapes and raw control characters in strings (data, event, n, key).
const badEscapes = [
    ['x', '\\x41'], ['u-2-digits', '\\u12'], ['u-3-digits', '\\u123'], ['u-non-hex', '\\uZZZZ'],
    ['u-partly-hex', '\\u12G4'], ['U-capital', '\\U0041'], ['a', '\\a'], ['zero', '\\0'],
    ['single-quote', "\\'"], ['space', '\\ '], ['v', '\\v'], ['newline-after-backslash', '\\\n'],
    ['u-plus-sign', '\\u+123'], ['u-braces', '\\u{41}'], ['e', '\\e'], ['utf8-after-backslash', '\\é'],
];
for (const [label, esc] of badEscapes) {
    M('bad-escape/' + label + '/in-data', envD('"a' + esc + 'z"'), 'EJSON');
}
M('bad-escape/x/in-event', envM('"event":"\\x41","data":1'), 'EJSON');
M('bad-escape/u-non-hex/in-id', envM('"data":1,"id":"\\uZZZZ"'), 'EJSON');
M('bad-escape/u-2-digits/in-n', '{"v":1,"m":{"data":1},"n":"\\u12"}', 'EJSON');
M('bad-escape/x/in-key', '{"v":1,"m":{"data":1,"\\x":1},"n":"a"}', 'EJSON');
M('bad-escape/x/in-meta', envTop('"n":"a","meta":"\\x"'), 'EJSON');
for (let c = 0; c < 32; c++) {
    const h = c.toString(16).padStart(2, '0');
    M('raw-control/' + h + '/in-data', envD(cat('"a', Buffer.from([c]), 'b"')), 'EJSON');
}
for (const c of [0x00, 0x09, 0x0a, 0x0d, 0x1f]) {
    const h = c.toString(16).padStart(2, '0');
    const r = Buffer.from([c]);
    M('raw-control/' + h + '/in-event', envM(cat('"event":"a', r, 'b","data":1')), 'EJSON');
    M('raw-control/' + h + '/in-id', envM(cat('"data":1,"id":"', r, '"')), 'EJSON');
    M('raw-control/' + h + '/in-n', cat('{"v":1,"m":{"data":1},"n":"', r, '"}'), 'EJSON');
    M('raw-control/' + h + '/in-e', envTop(cat('"n":"a","e":"', r, '"')), 'EJSON');
    M('raw-control/' + h + '/in-key', cat('{"v":1,"m":{"data":1},"k', r, '":1,"n":"a"}'), 'EJSON');
    M('raw-control/' + h + '/in-meta', envTop(cat('"n":"a","meta":["', r, '"]')), 'EJSON');
}

// Depth.
const open = (k, s = '[') => s.repeat(k);
M('depth/data-arrays-65', envD(JSON.stringify(nestArrays(65))), 'EDEPTH');
M('depth/data-objects-65', envD(JSON.stringify(nestObjects(65))), 'EDEPTH');
M('depth/data-mixed-65', envD(JSON.stringify(nestMixed(65))), 'EDEPTH');
M('depth/meta-arrays-65', envTop(cat('"n":"a","meta":', JSON.stringify(nestArrays(65)))), 'EDEPTH');
M('depth/unknown-in-m-65', envM(cat('"data":1,"x":', JSON.stringify(nestArrays(65)))), 'EDEPTH');
M('depth/unknown-at-top-65', envTop(cat('"n":"a","x":', JSON.stringify(nestObjects(65)))), 'EDEPTH');
M('depth/data-arrays-100000-closed', envD(open(100000) + open(100000, ']')), 'EDEPTH');
M('depth/data-arrays-100000-unclosed', cat('{"v":1,"m":{"data":', open(100000)), 'EDEPTH');
M('depth/data-objects-20000-unclosed', cat('{"v":1,"m":{"data":', open(20000, '{"":')), 'EDEPTH');
M('depth/meta-arrays-100000-unclosed', cat('{"v":1,"m":{"data":1},"n":"a","meta":', open(100000)), 'EDEPTH');
M('depth/unknown-in-m-100000-unclosed', cat('{"v":1,"m":{"x":', open(100000)), 'EDEPTH');
M('depth/unknown-top-100000-unclosed', cat('{"x":', open(100000)), 'EDEPTH');
M('depth/max-depth-1-data-2', envD('[[1]]'), 'EDEPTH', { max_depth: 1 });
M('depth/max-depth-1-meta-2', envTop('"n":"a","meta":{"a":{}}'), 'EDEPTH', { max_depth: 1 });
M('depth/max-depth-3-data-4', envD('[{"a":[{}]}]'), 'EDEPTH', { max_depth: 3 });
M('depth/max-depth-1024-data-1025', envD(open(1025) + open(1025, ']')), 'EDEPTH', { max_depth: 1024 });
M('depth/max-depth-5000-clamped-to-1024', envD(open(1025) + open(1025, ']')), 'EDEPTH', { max_depth: 5000 });

// Invalid UTF-8 in strings.
const badUtf8 = [
    ['ff', 'ff'], ['fe', 'fe'], ['lone-continuation-80', '80'], ['lone-continuation-bf', 'bf'],
    ['overlong-c0-af', 'c0af'], ['overlong-c1-bf', 'c1bf'], ['overlong-e0-80-af', 'e080af'],
    ['overlong-f0-80-80-af', 'f08080af'], ['surrogate-ed-a0-80', 'eda080'],
    ['surrogate-ed-bf-bf', 'edbfbf'], ['surrogate-pair-encoded', 'eda0bdedb880'],
    ['truncated-2-byte', 'c3'], ['truncated-3-byte', 'e282'], ['truncated-4-byte', 'f09f98'],
    ['above-10ffff-f4-90', 'f4908080'], ['f5', 'f5808080'], ['f8-5-byte', 'f888808080'],
    ['fc-6-byte', 'fc8480808080'], ['missing-continuation', 'e228a1'], ['c3-then-ascii', 'c328'],
];
for (const [label, bytes] of badUtf8) {
    M('utf8/' + label + '/in-data-string', envD(cat('"a', hex(bytes), 'b"')), 'EUTF8');
    M('utf8/' + label + '/in-event', envM(cat('"event":"', hex(bytes), '","data":1')), 'EUTF8');
}
M('utf8/ff/in-id', envM(cat('"data":1,"id":"', hex('ff'), '"')), 'EUTF8');
M('utf8/ff/in-n', cat('{"v":1,"m":{"data":1},"n":"', hex('ff'), '"}'), 'EUTF8');
M('utf8/ff/in-e', envTop(cat('"n":"a","e":"', hex('ff'), '"')), 'EUTF8');
M('utf8/ff/in-meta', envTop(cat('"n":"a","meta":{"k":"', hex('ff'), '"}')), 'EUTF8');
M('utf8/ff/in-key', cat('{"v":1,"m":{"data":1},"', hex('ff'), '":1,"n":"a"}'), 'EUTF8');
M('utf8/ff/in-unknown-value', envM(cat('"data":1,"x":["', hex('ff'), '"]')), 'EUTF8');
M('utf8/ff/in-data-object-key', envD(cat('{"', hex('ff'), '":1}')), 'EUTF8');
M('utf8/overlong-nul-c0-80/in-n', cat('{"v":1,"m":{"data":1},"n":"', hex('c080'), '"}'), 'EUTF8');

// Lone surrogate escapes in event, id, n and e.
const lone = [
    ['high-alone', '\\ud800'], ['low-alone', '\\udc00'], ['reversed-pair', '\\udc00\\ud800'],
    ['high-then-ascii', '\\ud83dx'], ['high-then-bmp-escape', '\\ud800\\u0041'],
    ['high-then-high', '\\ud800\\ud800'], ['max-high-alone', '\\udbff'], ['max-low-alone', '\\udfff'],
    ['uppercase-high-alone', '\\uD800'], ['pair-then-low', '\\ud83d\\ude00\\ude00'],
];
for (const [label, s] of lone) {
    M('lone-surrogate/' + label + '/in-event', envM('"event":"a' + s + '","data":1'), 'EUTF8');
    M('lone-surrogate/' + label + '/in-id', envM('"data":1,"id":"' + s + 'b"'), 'EUTF8');
    M('lone-surrogate/' + label + '/in-n', '{"v":1,"m":{"data":1},"n":"' + s + '"}', 'EUTF8');
    M('lone-surrogate/' + label + '/in-e', envTop('"n":"a","e":"' + s + '"'), 'EUTF8');
}

// Root not an object.
const roots = [
    ['empty-array', '[]'], ['array', '[1,2]'], ['array-holding-envelope', '[{"v":1,"m":{"data":1},"n":"a"}]'],
    ['string', '"x"'], ['envelope-as-string', JSON.stringify('{"v":1,"m":{"data":1},"n":"a"}')],
    ['number', '1'], ['negative-zero', '-0'], ['true', 'true'], ['false', 'false'], ['null', 'null'],
    ['padded-number', ' 42 '],
];
for (const [label, env] of roots) M('not-envelope/' + label, env, 'ENOTENV');

// Version.
const versions = [
    ['2', '2'], ['0', '0'], ['minus-1', '-1'], ['minus-0', '-0'], ['1.5', '1.5'], ['0.1', '0.1'],
    ['1e1', '1e1'], ['11e-1', '11e-1'], ['string-1', '"1"'], ['true', 'true'], ['null', 'null'],
    ['array-1', '[1]'], ['object', '{"v":1}'], ['minus-1.0', '-1.0'],
    ['just-above-1', '1.0000000000000000000000001'], ['just-below-1', '0.99999999999999999999999999'],
    ['1e-huge-exponent', '1e99999999999999999999999'], ['10e0', '10e0'], ['0.1e0', '0.1e0'],
    ['1e-1', '1e-1'], ['100e-1', '100e-1'], ['2e0', '2e0'], ['1.1e0', '1.1e0'],
];
for (const [label, v] of versions) M('version/' + label, `{"v":${v},"m":{"data":1},"n":"a"}`, 'EVERSION');
M('version/missing', '{"m":{"data":1},"n":"a"}', 'EVERSION');
M('version/missing-empty-object', '{}', 'EVERSION');
M('version/only-inside-m', '{"m":{"v":1,"data":1},"n":"a"}', 'EVERSION');
M('version/1-then-2', '{"v":1,"m":{"data":1},"n":"a","v":2}', 'EVERSION');
M('version/uppercase-key', '{"V":1,"m":{"data":1},"n":"a"}', 'EVERSION');
M('version/key-with-nul', '{"v\\u0000":1,"m":{"data":1},"n":"a"}', 'EVERSION');

// Message object.
const msgs = [['array', '[]'], ['string', '"x"'], ['null', 'null'], ['number', '1'], ['true', 'true'],
              ['array-of-object', '[{"data":1}]']];
for (const [label, m] of msgs) M('no-message/m-' + label, `{"v":1,"m":${m},"n":"a"}`, 'ENOMSG');
M('no-message/m-missing', '{"v":1,"n":"a"}', 'ENOMSG');
M('no-message/data-at-top-level', '{"v":1,"data":1,"n":"a"}', 'ENOMSG');
M('no-message/m-object-then-string', '{"v":1,"m":{"data":1},"n":"a","m":"x"}', 'ENOMSG');
M('no-message/uppercase-key', '{"v":1,"M":{"data":1},"n":"a"}', 'ENOMSG');

// Data.
M('no-data/m-empty', '{"v":1,"m":{},"n":"a"}', 'ENODATA');
M('no-data/m-event-only', '{"v":1,"m":{"event":"e","id":"i","retry":1},"n":"a"}', 'ENODATA');
M('no-data/uppercase-key', '{"v":1,"m":{"Data":1},"n":"a"}', 'ENODATA');
M('no-data/key-with-space', '{"v":1,"m":{"data ":1},"n":"a"}', 'ENODATA');
M('no-data/key-with-nul', '{"v":1,"m":{"data\\u0000":1},"n":"a"}', 'ENODATA');
M('no-data/key-prefix', '{"v":1,"m":{"dat":1},"n":"a"}', 'ENODATA');
M('no-data/last-m-has-none', '{"v":1,"m":{"data":1},"n":"a","m":{"event":"e"}}', 'ENODATA');
M('no-data/only-in-top-level', '{"v":1,"m":{},"data":1,"n":"a"}', 'ENODATA');

// Types.
const typeCases = [
    ['event-number', envM('"event":5,"data":1')], ['event-null', envM('"event":null,"data":1')],
    ['event-true', envM('"event":true,"data":1')], ['event-array', envM('"event":[],"data":1')],
    ['event-object', envM('"event":{},"data":1')], ['event-string-in-array', envM('"event":["e"],"data":1')],
    ['id-null', envM('"data":1,"id":null')], ['id-number', envM('"data":1,"id":5')],
    ['id-false', envM('"data":1,"id":false')],
    ['n-missing', '{"v":1,"m":{"data":1}}'], ['n-number', '{"v":1,"m":{"data":1},"n":5}'],
    ['n-null', '{"v":1,"m":{"data":1},"n":null}'], ['n-array', '{"v":1,"m":{"data":1},"n":["a"]}'],
    ['n-object', '{"v":1,"m":{"data":1},"n":{}}'], ['n-only-inside-m', '{"v":1,"m":{"data":1,"n":"a"}}'],
    ['n-uppercase-key', '{"v":1,"m":{"data":1},"N":"a"}'],
    ['n-string-then-number', '{"v":1,"m":{"data":1},"n":"a","n":1}'],
    ['e-array', envTop('"n":"a","e":[]')], ['e-number', envTop('"n":"a","e":1')],
    ['e-null', envTop('"n":"a","e":null')], ['e-false', envTop('"n":"a","e":false')],
];
for (const [label, env] of typeCases) M('type/' + label, env, 'ETYPE');

// Retry.
const retries = [
    ['1.0', '1.0'], ['1e3', '1e3'], ['1E3', '1E3'], ['3000.0', '3000.0'], ['minus-1', '-1'],
    ['minus-0', '-0'], ['0.0', '0.0'], ['0e0', '0e0'], ['1.5', '1.5'], ['string-5', '"5"'],
    ['null', 'null'], ['true', 'true'], ['array', '[5]'], ['object', '{}'],
    ['2pow53', '9007199254740992'], ['2pow53-plus-1', '9007199254740993'], ['2pow63', '9223372036854775808'],
    ['2pow64', '18446744073709551616'], ['2pow64-plus-5', '18446744073709551621'],
    ['huge', '99999999999999999999999999999999999999'], ['max-safe-as-float', '9007199254740991.0'],
];
for (const [label, r] of retries) M('retry/' + label, envM('"data":1,"retry":' + r), 'ERETRY');

// CR, LF, NUL in event, id, n and e.
const badChars = [['cr', '\\r'], ['lf', '\\n'], ['crlf', '\\r\\n'], ['nul', '\\u0000'],
                  ['cr-u000d', '\\u000d'], ['lf-u000A', '\\u000A'], ['lf-at-start', '\\nx'], ['nul-at-end', 'x\\u0000']];
for (const [label, s] of badChars) {
    M('char/' + label + '/in-event', envM('"event":"a' + s + 'b","data":1'), 'ECHAR');
    M('char/' + label + '/in-id', envM('"data":1,"id":"' + s + '"'), 'ECHAR');
    M('char/' + label + '/in-n', '{"v":1,"m":{"data":1},"n":"' + s + '"}', 'ECHAR');
    M('char/' + label + '/in-e', envTop('"n":"a","e":"' + s + '"'), 'ECHAR');
}

// Size limits.
M('size/data-2000-max-1024', envD(JSON.stringify('x'.repeat(1998))), 'ETOOBIG', { max_data: 1024 });
M('size/data-1025-max-1024', envD(JSON.stringify('x'.repeat(1023))), 'ETOOBIG', { max_data: 1024 });
M('size/data-2-max-1', envD('10'), 'ETOOBIG', { max_data: 1 });
M('size/meta-pushes-total-over', envTop(cat('"n":"a","meta":"', 'm'.repeat(70000), '"')), 'ETOOBIG',
  { max_data: 16 });
{
    // Total length exactly max_data + 65536 is allowed, one more is not.
    const fill = (total, v) => {
        const head = `{"v":${v},"m":{"data":1},"n":"a","pad":"`;
        return cat(head, 'p'.repeat(total - head.length - 2), '"}');
    };
    const atLimit = fill(1 + SLACK, 2);
    check(atLimit.length === 1 + SLACK, 'atLimit length');
    M('size/total-at-limit-then-version-error', atLimit, 'EVERSION', { max_data: 1 });
    M('size/total-one-over-limit', fill(2 + SLACK, 2), 'ETOOBIG', { max_data: 1 });
    M('size/total-over-limit-garbage-not-parsed', 'x'.repeat(2 + SLACK), 'ETOOBIG', { max_data: 1 });
}

// Checks keyed on escaped key names.
M('escaped-key/m-event-lone-surrogate', '{"v":1,"\\u006d":{"\\u0065vent":"\\ud800","data":1},"n":"a"}', 'EUTF8');
M('escaped-key/n-lone-surrogate', '{"v":1,"m":{"data":1},"\\u006e":"\\udc00"}', 'EUTF8');
M('escaped-key/event-lf', '{"v":1,"m":{"\\u0065vent":"a\\nb","data":1},"n":"a"}', 'ECHAR');
M('escaped-key/retry-bad', '{"v":1,"m":{"data":1,"r\\u0065try":1.5},"n":"a"}', 'ERETRY');
M('escaped-key/e-number', '{"v":1,"m":{"data":1},"n":"a","\\u0065":1}', 'ETYPE');
M('escaped-key/v-2', '{"\\u0076":2,"m":{"data":1},"n":"a"}', 'EVERSION');
M('escaped-key/data-depth-65', cat('{"v":1,"m":{"d\\u0061ta":', JSON.stringify(nestArrays(65)), '},"n":"a"}'), 'EDEPTH');
M('depth/data-sibling-65-after-64', envD(JSON.stringify([nestArrays(63), nestArrays(64)])), 'EDEPTH');
M('size/duplicate-data-last-too-big', '{"v":1,"m":{"data":1,"data":[1,2,3,4,5]},"n":"a"}', 'ETOOBIG', { max_data: 4 });
for (const [label, num] of [['exponent-then-dot', '1e5.5'], ['minus-dot', '-.5'], ['double-e', '1ee5'],
                            ['two-exponents', '1e5e5'], ['zero-dot', '0.'], ['dot-exponent', '1.e1'],
                            ['leading-zero-fraction', '00.5'], ['minus-leading-zero-int', '-00']])
    M('syntax/number-' + label, envD(num), 'EJSON');
M('syntax/retry-leading-zero', envM('"data":1,"retry":03000'), 'EJSON');

// Precedence between reasons.
M('precedence/ejson-beats-version', '{"v":2,}', 'EJSON');
M('precedence/utf8-before-later-syntax-error', cat('{"v":1,"m":{"data":"', hex('ff'), '"},"n":"a",}'), 'EUTF8');
M('precedence/syntax-error-before-later-utf8', cat('{"v":1,,"m":{"data":"', hex('ff'), '"},"n":"a"}'), 'EJSON');
M('precedence/depth-before-later-syntax-error', cat('{"v":1,"m":{"data":', JSON.stringify(nestArrays(65)), '},"n":"a",}'), 'EDEPTH');
M('precedence/syntax-error-before-later-depth', cat('{"v":1 x,"m":{"data":', JSON.stringify(nestArrays(65)), '},"n":"a"}'), 'EJSON');
M('precedence/utf8-before-later-depth', cat('{"v":1,"m":{"event":"', hex('ff'), '","data":', JSON.stringify(nestArrays(65)), '},"n":"a"}'), 'EUTF8');
M('precedence/depth-before-later-utf8', cat('{"v":1,"m":{"data":', JSON.stringify(nestArrays(65)), ',"event":"', hex('ff'), '"},"n":"a"}'), 'EDEPTH');
M('precedence/lone-surrogate-before-later-truncation', '{"v":1,"n":"\\ud800","m":{"data":', 'EUTF8');
M('precedence/lone-surrogate-before-later-raw-control', '{"v":1,"m":{"event":"\\udc00","data":"\t"},"n":"a"}', 'EUTF8');
M('precedence/utf8-beats-version', cat('{"v":2,"m":{"data":"', hex('ff'), '"},"n":"a"}'), 'EUTF8');
M('precedence/lone-surrogate-beats-version', '{"v":2,"m":{"event":"\\ud800","data":1},"n":"a"}', 'EUTF8');
M('precedence/depth-beats-version', cat('{"v":2,"x":', JSON.stringify(nestArrays(65)), '}'), 'EDEPTH');
M('precedence/version-beats-no-message', '{"n":"a"}', 'EVERSION');
M('precedence/version-beats-type', '{"v":"1","m":{"data":1},"n":5}', 'EVERSION');
M('precedence/no-message-beats-type', '{"v":1,"n":5}', 'ENOMSG');
M('precedence/no-data-beats-type', '{"v":1,"m":{"event":5},"n":5}', 'ENODATA');
M('precedence/type-beats-retry', '{"v":1,"m":{"data":1,"retry":-1},"n":5}', 'ETYPE');
M('precedence/type-e-beats-char-in-event', '{"v":1,"m":{"event":"\\n","data":1},"n":"a","e":0}', 'ETYPE');
M('precedence/retry-beats-char', '{"v":1,"m":{"event":"a\\nb","data":1,"retry":1.5},"n":"a"}', 'ERETRY');
M('precedence/char-beats-data-too-big', '{"v":1,"m":{"data":[1,2,3]},"n":"a\\n"}', 'ECHAR', { max_data: 4 });
M('precedence/version-beats-data-too-big', '{"v":3,"m":{"data":[1,2,3]},"n":"a"}', 'EVERSION', { max_data: 4 });
M('precedence/retry-beats-data-too-big', '{"v":1,"m":{"data":[1,2,3],"retry":"1"},"n":"a"}', 'ERETRY', { max_data: 4 });
M('precedence/not-envelope-beats-size-of-data', '[1,2,3,4,5,6,7,8,9]', 'ENOTENV', { max_data: 4 });

// ---- writing -----------------------------------------------------------

function fieldBytes(key, value) {
    const b = Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8');
    return [Buffer.from(`${key} ${b.length}\n`, 'latin1'), b, Buffer.from('\n')];
}

function render(header, records) {
    const out = [Buffer.from(header)];
    for (const rec of records) {
        if (rec.comment) out.push(Buffer.from('# ' + rec.comment + '\n'));
        for (const [k, v] of rec.fields) out.push(...fieldBytes(k, v));
        out.push(...fieldBytes('end', ''), Buffer.from('\n'));
    }
    return Buffer.concat(out);
}

const HEADER = (what) =>
    `# roomcast ${what} envelope vectors. Generated by gen-vectors.mjs: do not edit.\n` +
    '# Format: fields "<key> <byte length>\\n<bytes>\\n"; a record runs from "name" to "end 0".\n\n';

const validRecords = valid.map((v) => {
    const f = [['name', v.name], ['envelope', v.envelope], ['data', v.fields.data]];
    for (const k of ['event', 'id', 'retry', 'node', 'except', 'meta']) {
        if (v.fields[k] !== undefined) f.push([k, v.fields[k]]);
    }
    f.push(['sse', v.sse]);
    if (!v.reencode.equals(v.envelope)) f.push(['reencode', v.reencode]);
    return { fields: f };
});
const malformedRecords = malformed.map((v) => {
    const f = [['name', v.name], ['envelope', v.envelope], ['error', v.error]];
    if (v.limits.max_data) f.push(['max_data', String(v.limits.max_data)]);
    if (v.limits.max_depth) f.push(['max_depth', String(v.limits.max_depth)]);
    return { fields: f };
});

const outputs = [
    ['valid.vec', render(HEADER('valid'), validRecords)],
    ['malformed.vec', render(HEADER('malformed'), malformedRecords)],
];

const checkOnly = process.argv.includes('--check');
let stale = false;
for (const [file, bytes] of outputs) {
    const path = join(HERE, file);
    if (checkOnly) {
        let old = null;
        try {
            old = readFileSync(path);
        } catch {
            old = null;
        }
        if (!old || !old.equals(bytes)) {
            console.error(`${file} is stale: run node ${join('tests', 'vectors', 'gen-vectors.mjs')}`);
            stale = true;
        }
    } else {
        writeFileSync(path, bytes);
    }
}
const byError = {};
for (const m of malformed) byError[m.error] = (byError[m.error] || 0) + 1;
console.log(`valid: ${valid.length} vectors (${valid.filter((v) => !v.reencode.equals(v.envelope)).length} with reencode)`);
console.log(`malformed: ${malformed.length} vectors: ` +
            Object.entries(byError).map(([k, n]) => `${k} ${n}`).join(', '));
process.exit(stale ? 1 : 0);

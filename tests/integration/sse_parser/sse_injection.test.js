// SSE field injection (reliability catalogue S4, and R10 on the receiving
// side): envelopes built here are piped to `rc-envelope decode`, and every
// frame it prints is read back with an independent parser, the npm package
// eventsource-parser (pinned in package.json).
//
// Run from this directory:  RC_ENVELOPE=/path/to/rc-envelope node --test
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {describe, test} from 'node:test'

import {createParser} from 'eventsource-parser'

const TOOL = process.env.RC_ENVELOPE
const ECHAR = 'CR, LF or NUL in event, id, node or except'
const EJSON = 'not valid JSON'
const KIB64 = 64 * 1024

if (!TOOL || !existsSync(TOOL)) {
  throw new Error(
    'set RC_ENVELOPE to the built rc-envelope tool, e.g. ' +
      'RC_ENVELOPE=build/examples/rc-envelope node --test',
  )
}

// ---- running the tool --------------------------------------------------

function run(args, input) {
  const r = spawnSync(TOOL, args, {
    input: input === undefined ? undefined : Buffer.from(input, 'utf8'),
    maxBuffer: 64 * 1024 * 1024,
    timeout: 20000,
  })
  if (r.error) throw r.error
  return {status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8')}
}

function decode(envelope) {
  return run(['decode'], envelope)
}

// ---- reading frames -----------------------------------------------------

// Parse a frame with eventsource-parser, fed whole and again one character
// at a time (so that a CR at a chunk end meets the parser's deferral path).
// Both readings must agree. Comments, unknown fields and invalid retry lines
// are collected: a roomcast frame must hold none.
function parseFrame(frame) {
  const readings = [[frame], Array.from(frame)].map((chunks) => {
    const out = {events: [], retries: [], comments: [], errors: []}
    const parser = createParser({
      onEvent: (ev) => out.events.push(ev),
      onRetry: (ms) => out.retries.push(ms),
      onComment: (c) => out.comments.push(c),
      onError: (err) => out.errors.push(err.type ?? String(err)),
    })
    for (const c of chunks) parser.feed(c)
    // Anything still buffered (data lines after the last blank line, or an
    // unterminated line) would be dispatched by another blank line.
    const before = out.events.length
    parser.feed('\n\n')
    out.leftover = out.events.length - before
    out.events.length = before
    return out
  })
  assert.deepEqual(readings[1], readings[0], 'whole and chunked parses differ')
  return readings[0]
}

// Every frame: LF line ends only, fields from the documented set in the
// documented order, exactly one blank line and it is the last line.
function checkFrameShape(frame) {
  assert.ok(frame.endsWith('\n\n'), 'frame does not end with a blank line')
  assert.ok(!frame.includes('\r'), 'frame holds a CR')
  const lines = frame.slice(0, -2).split('\n')
  const order = {id: 0, event: 1, data: 2, retry: 3}
  let last = -1
  let dataLines = 0
  for (const line of lines) {
    const m = /^(id|event|data|retry): /.exec(line)
    assert.ok(m, `stray line in frame: ${JSON.stringify(line.slice(0, 80))}`)
    const rank = order[m[1]]
    assert.ok(rank > last || (rank === 2 && last === 2), `field out of order: ${m[1]}`)
    last = rank
    if (m[1] === 'data') dataLines++
    if (m[1] === 'retry') assert.match(line, /^retry: [1-9][0-9]*$/)
  }
  assert.ok(dataLines >= 1, 'frame has no data line')
}

// Decode an envelope that must be accepted; check the frame and return the
// single event eventsource-parser reads from it.
function acceptOne(envelope) {
  const r = decode(envelope)
  assert.equal(r.stderr, '', 'unexpected stderr')
  assert.equal(r.status, 0, 'decode failed')
  checkFrameShape(r.stdout)
  const p = parseFrame(r.stdout)
  assert.equal(p.events.length, 1, 'want exactly one event')
  assert.equal(p.leftover, 0, 'bytes left after the event')
  assert.deepEqual(p.comments, [])
  assert.deepEqual(p.errors, [])
  return {event: p.events[0], retries: p.retries, frame: r.stdout}
}

function reject(envelope, reason) {
  const r = decode(envelope)
  assert.equal(r.status, 1, `want exit 1, got ${r.status}; stdout ${JSON.stringify(r.stdout)}`)
  assert.equal(r.stdout, '', 'a rejected envelope printed a frame')
  assert.equal(r.stderr, `error: ${reason}\n`)
}

// ---- building envelopes ------------------------------------------------

// With JSON.stringify throughout (data as a JSON value).
function envelopeOf({event, id, data, retry}) {
  const m = {}
  if (event !== undefined) m.event = event
  m.data = data
  if (id !== undefined) m.id = id
  if (retry !== undefined) m.retry = retry
  return JSON.stringify({v: 1, m, n: 'node-a'})
}

// By hand, for data given as raw JSON text (whitespace inside kept).
function envelopeRaw({event, id, dataText, retry}) {
  const m = []
  if (event !== undefined) m.push(`"event":${JSON.stringify(event)}`)
  m.push(`"data":${dataText}`)
  if (id !== undefined) m.push(`"id":${JSON.stringify(id)}`)
  if (retry !== undefined) m.push(`"retry":${retry}`)
  return `{"v":1,"m":{${m.join(',')}},"n":"node-a"}`
}

// ---- the table ---------------------------------------------------------

// Values for event and id. `reject` marks the ones a decoder must refuse.
const FIELD_VALUES = [
  {name: 'LF', value: 'a\ndata: injected\n\nevent: x', reject: ECHAR},
  {name: 'CR', value: 'a\rdata: injected\r\rid: 666', reject: ECHAR},
  {name: 'CRLF', value: 'a\r\ndata: injected\r\n\r\n', reject: ECHAR},
  {name: 'lone LF', value: '\n', reject: ECHAR},
  {name: 'NUL', value: 'a\u0000b', reject: ECHAR},
  {name: 'leading space', value: ' lead'},
  {name: 'two leading spaces', value: '  lead'},
  {name: ':-prefixed', value: ':colon'},
  {name: 'data:-like', value: 'data: not data'},
  {name: 'empty', value: ''},
  {name: '64 KiB', value: 'e'.repeat(KIB64)},
  {name: 'non-ASCII', value: 'caf\u00e9 \u2028 \u{1f600}'},
]

// Data given as a JSON value (JSON.stringify escapes the characters, so the
// data text itself holds none of them raw).
const DATA_VALUES = [
  {name: 'LF', value: 'a\ndata: injected\n\nevent: x'},
  {name: 'CR', value: 'a\rdata: injected\r\r'},
  {name: 'CRLF', value: 'a\r\ndata: injected\r\n\r\n'},
  {name: 'NUL', value: 'a\u0000b'},
  {name: 'leading space', value: ' lead'},
  {name: ':-prefixed', value: ':colon'},
  {name: 'empty string', value: ''},
  {name: 'empty array', value: []},
  {name: 'empty object', value: {}},
  {name: '64 KiB', value: 'x'.repeat(KIB64)},
  {name: 'object with hostile keys', value: {'a\nb': '\r', ':': ' ', 'data: x': [null, '\n\n']}},
]

// Data given as raw JSON text with CR/LF (and other) whitespace between
// tokens: every line of it becomes one data: line.
const RAW_DATA = [
  {name: 'LF between tokens', text: '{"a":\n1,\n"b":[\n2]}'},
  {name: 'CR between tokens', text: '[1,\r2,\r3]'},
  {name: 'CRLF between tokens', text: '{\r\n"a"\r\n:\r\n1\r\n}'},
  {name: 'mixed line ends', text: '[1,\r\n2,\r3,\n4,\n\r5]'},
  {name: 'blank lines inside (LF)', text: '[1,\n\n2]'},
  {name: 'blank lines inside (CR)', text: '[1,\r\r2]'},
  {name: 'blank lines inside (CRLF)', text: '[1,\r\n\r\n\r\n2]'},
  {name: 'lines with a leading space', text: '[\n 1,\n  2,\n\t3\n]'},
  {name: ':-prefixed line', text: '{"a"\n:1,"b"\r\n:\r\n2}'},
  {name: 'line that looks like a field', text: '{"x":1\n,"data: y":2}'},
  {name: '64 KiB of lines', text: `[${'1,\n'.repeat(KIB64 / 3)}1]`},
  {name: '64 KiB on one line', text: `[${'1,'.repeat(KIB64 / 2)}1]`},
]

describe('event and id values', () => {
  for (const field of ['event', 'id']) {
    for (const c of FIELD_VALUES) {
      test(`${field}: ${c.name}`, () => {
        const env = envelopeOf({[field]: c.value, data: {ok: true}})
        if (c.reject) {
          reject(env, c.reject)
          return
        }
        const {event} = acceptOne(env)
        assert.deepEqual(JSON.parse(event.data), {ok: true})
        const want = c.value === '' ? undefined : c.value
        if (field === 'event') {
          assert.equal(event.event, want)
          assert.equal(event.id, undefined)
        } else {
          assert.equal(event.id, want)
          assert.equal(event.event, undefined)
        }
      })
    }
  }
})

describe('data as a JSON value', () => {
  for (const c of DATA_VALUES) {
    test(`data: ${c.name}`, () => {
      const {event} = acceptOne(envelopeOf({event: 'ev', id: '7', data: c.value}))
      assert.deepEqual(JSON.parse(event.data), c.value)
      assert.equal(event.event, 'ev')
      assert.equal(event.id, '7')
    })
  }
})

describe('data as raw JSON text', () => {
  for (const c of RAW_DATA) {
    test(`data: ${c.name}`, () => {
      const {event} = acceptOne(envelopeRaw({event: 'ev', id: '7', dataText: c.text}))
      assert.deepEqual(JSON.parse(event.data), JSON.parse(c.text))
      // Byte for byte, up to line ends: the frame carries the text as is.
      assert.equal(event.data, c.text.replace(/\r\n|\r/g, '\n'))
      assert.equal(event.event, 'ev')
      assert.equal(event.id, '7')
    })
  }

  test('data: whitespace around the value is dropped', () => {
    const env = `{"v":1,"m":{"data": \r\n\t[1,\n2] \r\n},"n":"node-a"}`
    const {event} = acceptOne(env)
    assert.equal(event.data, '[1,\n2]')
  })

  test('data: raw NUL between tokens is not JSON', () => {
    reject(envelopeRaw({dataText: '[1,\u00002]'}), EJSON)
  })

  test('data: raw LF inside a string is not JSON', () => {
    reject(envelopeRaw({dataText: '"a\nb"'}), EJSON)
  })

  test('data: raw CR inside a string is not JSON', () => {
    reject(envelopeRaw({dataText: '"a\rdata: x"'}), EJSON)
  })

  test('data: empty text is not JSON', () => {
    reject(envelopeRaw({dataText: ''}), EJSON)
  })
})

describe('retry', () => {
  test('retry 1500 is sent as digits', () => {
    const {retries, frame} = acceptOne(envelopeOf({data: 1, retry: 1500}))
    assert.deepEqual(retries, [1500])
    assert.match(frame, /\nretry: 1500\n\n$/)
  })

  test('retry 0 is left out', () => {
    const {retries, frame} = acceptOne(envelopeOf({data: 1, retry: 0}))
    assert.deepEqual(retries, [])
    assert.ok(!frame.includes('retry'))
  })

  for (const bad of ['-1', '1.5', '"100"', 'null', '9007199254740992']) {
    test(`retry ${bad} is refused`, () => {
      reject(envelopeRaw({dataText: '1', retry: bad}), 'retry is not a non-negative integer')
    })
  }
})

describe('routing fields', () => {
  for (const [key, value] of [
    ['n', 'node\nb'],
    ['n', 'node\r'],
    ['e', 'conn\r\n1'],
    ['e', 'conn\u00001'],
  ]) {
    test(`${key} with ${JSON.stringify(value)} is refused`, () => {
      const env = {v: 1, m: {data: 1}, n: 'node-a'}
      env[key] = value
      reject(JSON.stringify(env), ECHAR)
    })
  }
})

describe('rc-envelope encode | rc-envelope decode', () => {
  test('round trip with every option', () => {
    const data = '{\r\n"text": "hi\\nthere",\r"n": [1,\n2]\n}'
    const enc = run([
      'encode',
      '--data', data,
      '--event', ' chat:message',
      '--id', ':42',
      '--retry', '2500',
      '--node', 'node-b',
      '--except', 'conn-9',
      '--meta', '{"trace": [1, 2]}',
    ])
    assert.equal(enc.stderr, '')
    assert.equal(enc.status, 0)
    assert.ok(enc.stdout.endsWith('}\n'), 'envelope and a newline')
    const env = JSON.parse(enc.stdout)
    assert.deepEqual(Object.keys(env), ['v', 'm', 'n', 'e', 'meta'])
    assert.deepEqual(Object.keys(env.m), ['event', 'data', 'id', 'retry'])
    assert.equal(env.v, 1)
    assert.equal(env.n, 'node-b')
    assert.equal(env.e, 'conn-9')
    assert.deepEqual(env.meta, {trace: [1, 2]})
    assert.deepEqual(env.m.data, JSON.parse(data))

    // The envelope is piped as printed, trailing newline included.
    const {event, retries} = acceptOne(enc.stdout)
    assert.equal(event.event, ' chat:message')
    assert.equal(event.id, ':42')
    assert.deepEqual(retries, [2500])
    assert.equal(event.data, data.replace(/\r\n|\r/g, '\n'))
    assert.deepEqual(JSON.parse(event.data), JSON.parse(data))
  })

  test('round trip of hostile data values', () => {
    for (const c of DATA_VALUES) {
      const enc = run(['encode', '--data', JSON.stringify(c.value)])
      assert.equal(enc.status, 0, c.name)
      const {event} = acceptOne(enc.stdout)
      assert.deepEqual(JSON.parse(event.data), c.value, c.name)
    }
  })

  for (const opt of ['--event', '--id', '--node', '--except']) {
    for (const ch of ['\n', '\r', '\r\n']) {
      test(`encode refuses ${opt} with ${JSON.stringify(ch)}`, () => {
        const args = ['encode', '--data', '1', opt, `a${ch}data: x`]
        const r = run(args)
        assert.equal(r.status, 1)
        assert.equal(r.stdout, '')
        assert.equal(r.stderr, `error: ${ECHAR}\n`)
      })
    }
  }
})

// The SSE frame a client of the reference node receives for one room
// message. The reference (opinionated-machine on @fastify/sse) writes room
// messages with @fastify/sse's internal formatSSEMessage and its default
// serializer, JSON.stringify. That function is not exported, so its rule is
// restated here:
//   string message -> each line as `data: <line>\n`
//   object message -> `id: <id>\n`       if id is truthy
//                     `event: <event>\n` if event is truthy
//                     `data: <line>\n`   for each line of JSON.stringify(data),
//                                        only if data !== undefined
//                     `retry: <retry>\n` if retry is truthy
//   then one `\n`, unless nothing at all was written (empty result).
// Returns null for a message the formatter could not take (null, undefined,
// or data that JSON.stringify maps to undefined, such as a function).

export function sseFrame(message) {
  if (message === null || message === undefined) {
    return null;
  }
  let out = '';
  if (typeof message === 'string') {
    for (const line of message.split('\n')) {
      out += `data: ${line}\n`;
    }
  } else {
    if (message.id) {
      out += `id: ${message.id}\n`;
    }
    if (message.event) {
      out += `event: ${message.event}\n`;
    }
    if (message.data !== undefined) {
      const text = JSON.stringify(message.data);
      if (typeof text !== 'string') {
        return null;
      }
      for (const line of text.split('\n')) {
        out += `data: ${line}\n`;
      }
    }
    if (message.retry) {
      out += `retry: ${message.retry}\n`;
    }
  }
  if (out) {
    out += '\n';
  }
  return out;
}

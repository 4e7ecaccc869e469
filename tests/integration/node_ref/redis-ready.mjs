// Connect ioredis clients created with lazyConnect and wait until every one
// is ready, or reject after ms. Shared by ref-node.mjs and
// bench/ref-server.mjs.
//
// It waits for 'ready' rather than connect()'s promise, which fails on the
// first refused attempt while ioredis keeps retrying (Redis may still be
// starting up).
export function redisReady(clients, ms) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis not ready within ${ms} ms`)), ms);
    timer.unref();
  });
  const ready = (client) =>
    new Promise((resolve, reject) => {
      client.once('ready', resolve);
      client.once('end', () => reject(new Error('gave up connecting')));
      client.connect().catch(() => {});
    });
  return Promise.race([Promise.all(clients.map(ready)), limit]).finally(() => clearTimeout(timer));
}

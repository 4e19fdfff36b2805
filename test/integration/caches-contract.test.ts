import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createHealthStore } from '../../src/core/health-store.ts';
import { memoryKeyValueCache, redisKeyValueCache, type KeyValueCache } from '../../src/core/key-value-cache.ts';
import { createRegistry } from '../../src/core/registry.ts';
import { memoryResultCache, redisResultCache, type ResultCache } from '../../src/core/result-cache.ts';
import { createTestDb, REDIS_TEST_URL, type TestDb } from '../support/test-db.ts';

interface CacheKind {
  name: string;
  before(): Promise<void>;
  after(): Promise<void>;
  keyValue(): KeyValueCache;
  results(): ResultCache;
}

function redisKind(): CacheKind {
  let redis: Redis;
  return {
    name: 'Redis',
    async before() {
      redis = new Redis(REDIS_TEST_URL);
    },
    async after() {
      const keys = await redis.keys('test:caches:*');
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    },
    keyValue: () => redisKeyValueCache(redis),
    results: () => redisResultCache(redis),
  };
}

function memoryKind(): CacheKind {
  return { name: 'in process', before: async () => undefined, after: async () => undefined, keyValue: () => memoryKeyValueCache(), results: () => memoryResultCache() };
}

// One contract, two stores: the registry, health and result caches expire and invalidate alike in both.
for (const kind of [redisKind(), memoryKind()]) {
  describe(`caches contract (${kind.name})`, () => {
    let t: TestDb;
    const prefix = () => `test:caches:${randomBytes(4).toString('hex')}:`;

    before(async () => {
      t = await createTestDb('caches');
      await kind.before();
    });

    after(async () => {
      await kind.after();
      await t.drop();
    });

    it('keeps a value for its TTL, replaces it with its own TTL, and counts counters from 0', async () => {
      const cache = kind.keyValue();
      const p = prefix();
      assert.equal(await cache.get(`${p}a`), undefined);
      await cache.set(`${p}a`, 'one', 1);
      await cache.set(`${p}b`, 'long', 60);
      assert.equal(await cache.get(`${p}a`), 'one');
      assert.deepEqual([await cache.incr(`${p}n`), await cache.incr(`${p}n`), await cache.incr(`${p}n`)], [1, 2, 3]);
      await sleep(1150);
      assert.equal(await cache.get(`${p}a`), undefined, 'expired after its TTL');
      assert.equal(await cache.get(`${p}b`), 'long');
      assert.equal(await cache.incr(`${p}n`), 4, 'a counter does not expire');
      await cache.set(`${p}b`, 'short', 1);
      await sleep(1150);
      assert.equal(await cache.get(`${p}b`), undefined, 'a new set brings its own TTL');
      await cache.set(`${p}s`, 'text', 60);
      await assert.rejects(cache.incr(`${p}s`), /not an integer/);
    });

    it('health: reads the last probe with its age until the record expires', async () => {
      const health = createHealthStore({ cache: kind.keyValue(), keyPrefix: prefix(), ttlSeconds: 1 });
      await health.record('srv', 'oracle', { healthy: false, latencyMs: 12 });
      await health.record('srv', 'oracle', { healthy: true, latencyMs: 7 });
      await health.record('srv', 'space', { healthy: false }, 'project-1');
      const oracle = await health.read('srv', 'oracle');
      assert.equal(oracle?.healthy, true);
      assert.equal(oracle?.latencyMs, 7);
      assert.ok(oracle!.ageMs >= 0 && oracle!.ageMs < 1000);
      assert.equal((await health.read('srv', 'space', 'project-1'))?.healthy, false);
      assert.equal(await health.read('srv', 'space'), undefined, 'a Space record is per project');
      await sleep(1150);
      assert.equal(await health.read('srv', 'oracle'), undefined);
    });

    it('registry: serves tool lookups from the cache until a change invalidates them or the TTL ends', async () => {
      const user = await t.db.insertInto('users').values({ login: `u-${randomBytes(4).toString('hex')}` }).returning('id').executeTakeFirstOrThrow();
      const registry = createRegistry({
        db: t.db,
        cache: kind.keyValue(),
        keyPrefix: prefix(),
        cacheTtlSeconds: 1,
        discover: async () => assert.fail('no discovery: tools are declared'),
        checkTarget: async () => undefined,
        projectMembers: async () => [user.id],
      });
      const actor = { userId: user.id, isAdmin: false };
      const tool = `echo-${randomBytes(4).toString('hex')}`;
      const declare = (name: string) => registry.register(actor, { name, tools: [{ name: tool, inputSchema: { type: 'object' } }] });
      const a = await declare(`a-${tool}`);
      assert.deepEqual((await registry.offerings(tool, 'p')).map((o) => o.server.id), [a.id]);
      const b = await declare(`b-${tool}`);
      assert.deepEqual((await registry.offerings(tool, 'p')).map((o) => o.server.id).sort(), [a.id, b.id].sort(), 'a registration invalidates');
      // Behind the registry's back: the cached lookup stands until its TTL ends.
      await t.db.deleteFrom('mcp_servers').where('id', '=', b.id).execute();
      assert.equal((await registry.offerings(tool, 'p')).length, 2);
      await sleep(1150);
      assert.deepEqual((await registry.offerings(tool, 'p')).map((o) => o.server.id), [a.id]);
    });

    it('results: replaces an entry whole, forgets it on remove and after its TTL', async () => {
      const cache = kind.results();
      const key = `${prefix()}result`;
      const entry = (text: string) => ({ content: Buffer.from(text), size: text.length, sha256: `sha-${text}`, mediaType: 'text/plain' });
      assert.equal(await cache.read(key), undefined);
      await cache.write(key, entry('first'), 60);
      await cache.write(key, entry('second'), 1);
      const hit = await cache.read(key);
      assert.equal(hit?.content.toString(), 'second');
      assert.deepEqual({ ...hit, content: undefined }, { ...entry('second'), content: undefined });
      await cache.remove(key);
      assert.equal(await cache.read(key), undefined);
      await cache.write(key, entry('third'), 1);
      await sleep(1150);
      assert.equal(await cache.read(key), undefined);
    });
  });
}

describe('in-process result cache bound', () => {
  it('drops the least recently used entries to stay under its byte budget', async () => {
    const cache = memoryResultCache({ maxBytes: 10 });
    const entry = (n: number) => ({ content: Buffer.alloc(n, 1), size: n, sha256: 'x', mediaType: 'application/octet-stream' });
    await cache.write('a', entry(4), 60);
    await cache.write('b', entry(4), 60);
    assert.ok(await cache.read('a'), 'reading a makes b the least recently used');
    await cache.write('c', entry(4), 60);
    assert.equal(await cache.read('b'), undefined);
    assert.ok(await cache.read('a'));
    assert.ok(await cache.read('c'));
    await cache.write('huge', entry(11), 60);
    assert.equal(await cache.read('huge'), undefined, 'an entry larger than the budget is not kept');
    assert.ok(await cache.read('a'));
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { memoryLimitStore, redisLimitStore, type LimitStore } from '../../src/core/limit-store.ts';
import { createLimits, type LimitSettings } from '../../src/core/limits.ts';
import { REDIS_TEST_URL } from '../support/test-db.ts';

interface LimitStoreKind {
  name: string;
  before(): Promise<void>;
  store(): LimitStore;
  close(): Promise<void>;
}

function redisKind(): LimitStoreKind {
  let redis: Redis;
  return {
    name: 'Redis',
    async before() {
      // Limits fail open while their connection is not ready: wait for it, as createWorld does.
      redis = new Redis(REDIS_TEST_URL);
      await redis.ping();
    },
    store: () => redisLimitStore(redis),
    async close() {
      const keys = await redis.keys('test:limits-contract:*');
      if (keys.length) await redis.del(...keys);
      await redis.quit();
    },
  };
}

function memoryKind(): LimitStoreKind {
  return { name: 'in process', before: async () => undefined, store: () => memoryLimitStore(), close: async () => undefined };
}

const base: LimitSettings = {
  enabled: true,
  windowSeconds: 1,
  requestsPerUser: 3,
  submissionsPerUser: 3,
  anonymousPerIp: 2,
  activeTasksPerProject: 2,
  streamsPerUser: 2,
  streamLeaseMs: 30_000,
};

// One contract, two stores: limits in one process count as they do in Redis.
for (const kind of [redisKind(), memoryKind()]) {
  describe(`limits store contract (${kind.name})`, () => {
    before(() => kind.before());
    after(() => kind.close());

    function limits(settings: Partial<LimitSettings> = {}) {
      const rejected: string[] = [];
      const storeErrors: unknown[] = [];
      const l = createLimits({
        store: kind.store(),
        keyPrefix: `test:limits-contract:${randomBytes(4).toString('hex')}:`,
        settings: { ...base, ...settings },
        onRejected: (name) => rejected.push(name),
        onStoreError: (_name, err) => storeErrors.push(err),
      });
      return { l, rejected, storeErrors };
    }

    it('allows the quota of requests in a window, refuses the next with Retry-After, and only for that user', async () => {
      const { l, rejected, storeErrors } = limits();
      const decisions = [await l.request('u1'), await l.request('u1'), await l.request('u1')];
      assert.deepEqual(decisions.map((d) => d.allowed), [true, true, true]);
      assert.deepEqual(decisions.map((d) => (d.allowed ? d.remaining : -1)), [2, 1, 0]);
      const refused = await l.request('u1');
      assert.equal(refused.allowed, false);
      assert.equal(refused.allowed === false && refused.retryAfterSeconds, 1);
      assert.equal(refused.policy.name, 'requests');
      assert.equal((await l.request('u2')).allowed, true, 'another user has a window of their own');
      assert.deepEqual(rejected, ['requests']);
      assert.deepEqual(storeErrors, []);
    });

    it('opens a new window once the old one ends', async () => {
      const { l, storeErrors } = limits();
      for (let i = 0; i < 3; i++) assert.equal((await l.anonymous('10.0.0.1')).allowed, i < 2);
      await sleep(1100);
      assert.equal((await l.anonymous('10.0.0.1')).allowed, true);
      assert.deepEqual(storeErrors, []);
    });

    it('counts a bulk submission by the tasks it creates', async () => {
      const { l, storeErrors } = limits();
      assert.equal((await l.submission('u1', 2)).allowed, true);
      assert.equal((await l.submission('u1', 2)).allowed, false);
      assert.equal((await l.submission('u1', 1)).allowed, false, 'a refused attempt still counts in its window');
      assert.equal((await l.submission('u2', 3)).allowed, true);
      assert.deepEqual(storeErrors, []);
    });

    it('holds at most the quota of event streams per user, and a released one frees its slot', async () => {
      const { l, rejected, storeErrors } = limits();
      const a = await l.openStream('u1');
      const b = await l.openStream('u1');
      const c = await l.openStream('u1');
      assert.deepEqual([a, b, c].map((s) => s.decision.allowed), [true, true, false]);
      assert.equal((await l.openStream('u2')).decision.allowed, true, 'another user has slots of their own');
      await a.release();
      assert.equal((await l.openStream('u1')).decision.allowed, true);
      assert.equal((await l.openStream('u1')).decision.allowed, false);
      assert.deepEqual(rejected, ['streams', 'streams']);
      assert.deepEqual(storeErrors, []);
    });

    it('frees the slot of a stream nobody renews once its lease ends, and keeps a renewed one', async () => {
      const { l } = limits({ streamLeaseMs: 300 });
      const renewed = await l.openStream('u1');
      const abandoned = await l.openStream('u1');
      assert.equal(renewed.decision.allowed && abandoned.decision.allowed, true);
      for (let i = 0; i < 5; i++) {
        await sleep(100);
        await renewed.renew();
      }
      const third = await l.openStream('u1');
      assert.equal(third.decision.allowed, true, 'the abandoned lease ended');
      assert.equal((await l.openStream('u1')).decision.allowed, false, 'the renewed lease still counts');
    });
  });
}

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createConcurrencySlots, SlotLostError } from '../../src/core/concurrency-slots.ts';
import { memorySlotStore, redisSlotStore, type SlotStore } from '../../src/core/slot-store.ts';
import { REDIS_TEST_URL } from '../support/test-db.ts';

/** A slot store as several workers see it: each entry is one worker's view of one shared store. */
interface SlotStoreKind {
  name: string;
  before(): Promise<void>;
  after(): Promise<void>;
  shared(workers: number): SlotStore[];
}

function redisKind(): SlotStoreKind {
  const runPrefix = `test:slots:${randomBytes(4).toString('hex')}:`;
  let n = 0;
  // Several connections stand in for several workers.
  let clients: Redis[] = [];
  return {
    name: 'Redis',
    async before() {
      clients = Array.from({ length: 5 }, () => new Redis(REDIS_TEST_URL));
    },
    async after() {
      const keys = await clients[0]!.keys(`${runPrefix}*`);
      if (keys.length) await clients[0]!.del(...keys);
      await Promise.all(clients.map((c) => c.quit()));
    },
    shared(workers) {
      const keyPrefix = `${runPrefix}${n++}:`;
      return clients.slice(0, workers).map((redis) => redisSlotStore(redis, keyPrefix));
    },
  };
}

function memoryKind(): SlotStoreKind {
  return {
    name: 'in process',
    before: async () => undefined,
    after: async () => undefined,
    shared(workers) {
      const store = memorySlotStore();
      return Array.from({ length: workers }, () => store);
    },
  };
}

// One contract, two stores: the in-process slots must behave exactly as the Redis ones.
for (const kind of [redisKind(), memoryKind()]) {
  describe(`concurrency slots (${kind.name})`, () => {
    before(() => kind.before());
    after(() => kind.after());

    function slotsPerWorker(opts: { maxGlobal: number; leaseMs?: number }) {
      return kind.shared(5).map((store) => createConcurrencySlots({ store, maxGlobal: opts.maxGlobal, leaseMs: opts.leaseMs ?? 30_000 }));
    }

    it('admits exactly maxGlobal of 50 concurrent holders across workers', async () => {
      const workers = slotsPerWorker({ maxGlobal: 7 });
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => workers[i % workers.length]!.tryAcquire(`task-${i}`)));
      assert.equal(results.filter(Boolean).length, 7);
      assert.equal(await workers[0]!.inFlight(), 7);
    });

    it('never holds more than maxGlobal while holders come and go concurrently', async () => {
      const workers = slotsPerWorker({ maxGlobal: 3 });
      let holding = 0;
      let most = 0;
      let served = 0;
      await Promise.all(
        Array.from({ length: 30 }, async (_, i) => {
          const slots = workers[i % workers.length]!;
          while (!(await slots.tryAcquire(`job-${i}`))) await sleep(1);
          holding++;
          most = Math.max(most, holding, await slots.inFlight());
          await sleep(2);
          holding--;
          await slots.release(`job-${i}`);
          served++;
        }),
      );
      assert.equal(served, 30);
      assert.equal(most, 3, 'the cap was reached and never passed');
      assert.equal(await workers[0]!.inFlight(), 0);
    });

    it('counts a holder that acquires again once, even when full', async () => {
      const [a, b] = slotsPerWorker({ maxGlobal: 2 });
      assert.equal(await a!.tryAcquire('task-1', { serverId: 's1', serverMax: 1 }), true);
      assert.equal(await b!.tryAcquire('task-1', { serverId: 's1', serverMax: 1 }), true, 'a retried dispatch re-enters its slot');
      assert.equal(await a!.inFlight(), 1);
      assert.equal(await a!.inFlight('s1'), 1);
      assert.equal(await a!.tryAcquire('task-2'), true);
      assert.equal(await a!.tryAcquire('task-3'), false);
      assert.equal(await b!.tryAcquire('task-2'), true);
      assert.equal(await a!.inFlight(), 2);
    });

    it('enforces a per-server cap under the global one', async () => {
      const workers = slotsPerWorker({ maxGlobal: 10 });
      const onA = await Promise.all(Array.from({ length: 20 }, (_, i) => workers[i % 5]!.tryAcquire(`a-${i}`, { serverId: 'A', serverMax: 3 })));
      assert.equal(onA.filter(Boolean).length, 3);
      assert.equal(await workers[0]!.tryAcquire('b-1', { serverId: 'B', serverMax: 3 }), true);
      assert.equal(await workers[0]!.tryAcquire('c-1', { serverId: 'C' }), true, 'no serverMax means only the global cap');
      assert.equal(await workers[0]!.inFlight('A'), 3);
      assert.equal(await workers[0]!.inFlight('B'), 1);
      assert.equal(await workers[0]!.inFlight(), 5);
    });

    it('takes neither slot when the per-server cap refuses', async () => {
      const [a] = slotsPerWorker({ maxGlobal: 5 });
      assert.equal(await a!.tryAcquire('t1', { serverId: 'z', serverMax: 1 }), true);
      assert.equal(await a!.tryAcquire('t2', { serverId: 'z', serverMax: 1 }), false);
      assert.equal(await a!.inFlight(), 1, 'the refused holder took no global slot');
      assert.equal(await a!.tryAcquire('t3', { serverId: 'none', serverMax: 0 }), false, 'a cap of 0 admits nobody');
    });

    it('frees the slot of a holder that stops renewing once its lease expires', async () => {
      const [a, b] = slotsPerWorker({ maxGlobal: 1, leaseMs: 300 });
      assert.equal(await a!.tryAcquire('renewing', { serverId: 's' }), true);
      for (let i = 0; i < 4; i++) {
        await sleep(120);
        assert.equal(await a!.renew('renewing', { serverId: 's' }), true);
      }
      assert.equal(await b!.tryAcquire('waiting'), false, 'a renewed lease outlives leaseMs');

      await sleep(400);
      assert.equal(await b!.inFlight(), 0);
      assert.equal(await b!.inFlight('s'), 0);
      assert.equal(await b!.tryAcquire('waiting'), true);
      assert.equal(await a!.renew('renewing', { serverId: 's' }), false, 'the crashed holder lost its slot');
      assert.equal(await a!.inFlight(), 1);
    });

    it('reports an expired lease as lost even when nobody took the slot', async () => {
      const [a] = slotsPerWorker({ maxGlobal: 1, leaseMs: 150 });
      assert.equal(await a!.tryAcquire('late'), true);
      await sleep(250);
      assert.equal(await a!.renew('late'), false);
      assert.equal(await a!.inFlight(), 0, 'a lost lease is not brought back by renewing it');
    });

    it('frees global and per-server slots on release', async () => {
      const [a] = slotsPerWorker({ maxGlobal: 1 });
      const scope = { serverId: 'x', serverMax: 1 };
      assert.equal(await a!.tryAcquire('t1', scope), true);
      assert.equal(await a!.tryAcquire('t2', scope), false);
      await a!.release('t1', scope);
      assert.equal(await a!.inFlight(), 0);
      assert.equal(await a!.inFlight('x'), 0);
      assert.equal(await a!.tryAcquire('t2', scope), true);
      await a!.release('never-held');
      assert.equal(await a!.inFlight(), 1);
    });

    it('keeps a slot held while work renews it, and signals a lease lost to someone else', async () => {
      const [a, b] = slotsPerWorker({ maxGlobal: 1, leaseMs: 300 });
      assert.equal(await a!.tryAcquire('worker-a'), true);
      const held = a!.keepHeld('worker-a', undefined, { everyMs: 80 });
      try {
        await sleep(700);
        assert.equal(held.signal.aborted, false, 'renewed for more than two leases');
        assert.equal(await b!.tryAcquire('worker-b'), false);
        // An operator (or an expiry while the holder was stalled) takes the lease away.
        await b!.release('worker-a');
        assert.equal(await b!.tryAcquire('worker-b'), true);
        for (let i = 0; i < 50 && !held.signal.aborted; i++) await sleep(20);
        assert.equal(held.signal.aborted, true);
        assert.ok(held.signal.reason instanceof SlotLostError);
        assert.match((held.signal.reason as Error).message, /lost/);
      } finally {
        held.stop();
      }
    });
  });
}

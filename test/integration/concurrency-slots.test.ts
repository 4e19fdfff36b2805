import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createConcurrencySlots } from '../../src/core/concurrency-slots.ts';
import { REDIS_TEST_URL } from '../support/test-db.ts';

describe('concurrency slots', () => {
  const runPrefix = `test:slots:${randomBytes(4).toString('hex')}:`;
  let n = 0;
  // Several connections stand in for several workers.
  let clients: Redis[];

  before(() => {
    clients = Array.from({ length: 5 }, () => new Redis(REDIS_TEST_URL));
  });

  after(async () => {
    const keys = await clients[0]!.keys(`${runPrefix}*`);
    if (keys.length) await clients[0]!.del(...keys);
    await Promise.all(clients.map((c) => c.quit()));
  });

  function slotsPerWorker(opts: { maxGlobal: number; leaseMs?: number }) {
    const keyPrefix = `${runPrefix}${n++}:`;
    return clients.map((redis) => createConcurrencySlots({ redis, maxGlobal: opts.maxGlobal, leaseMs: opts.leaseMs ?? 30_000, keyPrefix }));
  }

  it('admits exactly maxGlobal of 50 concurrent holders across workers', async () => {
    const workers = slotsPerWorker({ maxGlobal: 7 });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => workers[i % workers.length]!.tryAcquire(`task-${i}`)));
    assert.equal(results.filter(Boolean).length, 7);
    assert.equal(await workers[0]!.inFlight(), 7);
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
});

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { temporal } from '@temporalio/proto';
import { sql } from 'kysely';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const ms = (t: HistoryEvent['eventTime']) => Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);

/** For each activity of the history: its type and how long it sat scheduled before a worker started it. */
function activityWaits(events: HistoryEvent[]): { type: string; waitMs: number }[] {
  const scheduled = new Map<string, { type: string; at: number }>();
  const out: { type: string; waitMs: number }[] = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes) {
      scheduled.set(String(e.eventId), { type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '?', at: ms(e.eventTime) });
    }
    const startedOf = e.activityTaskStartedEventAttributes?.scheduledEventId;
    if (startedOf !== undefined && startedOf !== null) {
      const s = scheduled.get(String(startedOf))!;
      out.push({ type: s.type, waitMs: ms(e.eventTime) - s.at });
    }
  }
  return out;
}

// Waiting for a dispatch slot happens in the workflow (a local try, then a timer), so it holds no activity executor.
// This file runs 200 tasks so it stays well under a minute on a small machine; the bench and chaos runs do the
// 1,000-task version.
describe('waiting for a dispatch slot holds no activity executor', function () {
  const TASKS = 200;
  const EXECUTORS = 6;
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    // Few executors: were each waiting task to hold one (as a waiting activity would), the 5 slot holders could not
    // even start their dispatches, and this run would stall.
    stack = await startStack({ env: { MAX_CONCURRENT_JOBS: '5', LOG_LEVEL: 'info' }, maxConcurrentActivities: EXECUTORS });
    token = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'slots' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
    assert.equal(reg.status, 201, reg.text);
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  beforeEach(() => oracle.resetStats());

  it(`runs ${TASKS} tasks at most 5 at a time with ${EXECUTORS} activity executors; none fails, none waits for an executor`, async function () {
    // A liveness bound, not a speed target: on a loaded 2-core machine 200 tasks have taken over a minute.
    this.timeout(300_000);
    const started = Date.now();
    // Five long calls first, all in flight at once: the cap, not the executors, is the limit. (Checked here rather than
    // read off the short calls' peak, which on a loaded machine can stay at 4 when slot hand-overs never line up.)
    const ids: string[] = [];
    for (const s of await Promise.all(Array.from({ length: 5 }, () => stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 2000 } } })))) {
      assert.equal(s.status, 202, s.text);
      ids.push(s.body.id as string);
    }
    while (oracle.inFlight() < 5) {
      assert.ok(Date.now() - started < 30_000, `only ${oracle.inFlight()} of 5 calls in flight at once`);
      await sleep(20);
    }
    for (let i = 5; i < TASKS; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(25, TASKS - i) }, () => stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 150 } } })),
      );
      for (const s of batch) assert.equal(s.status, 202, s.text);
      ids.push(...batch.map((s) => s.body.id as string));
    }

    const db = stack.world.db;
    for (;;) {
      const open = await db.selectFrom('tasks').select((eb) => eb.fn.countAll<string>().as('n')).where('id', 'in', ids).where('status', 'not in', ['succeeded', 'failed', 'canceled']).executeTakeFirstOrThrow();
      if (Number(open.n) === 0) break;
      assert.ok(Date.now() - started < 240_000, `${open.n} tasks still open after 240 s`);
      await sleep(250);
    }
    const elapsed = Date.now() - started;

    const rows = await db.selectFrom('tasks').select(['id', 'status', 'attempts']).where('id', 'in', ids).execute();
    assert.equal(rows.length, TASKS);
    for (const row of rows) {
      assert.equal(row.status, 'succeeded', `task ${row.id}: ${JSON.stringify(row.attempts)}`);
      assert.deepEqual((row.attempts as { outcome: string }[]).map((a) => a.outcome), ['succeeded'], `task ${row.id}`);
    }
    assert.equal(oracle.callCount('slow'), TASKS, 'each task called the tool once');
    assert.ok(oracle.maxInFlight() <= 5, `at most 5 calls at once (saw ${oracle.maxInFlight()})`);
    assert.equal(await stack.world.slots.inFlight(), 0, 'every slot was released');

    const waited = await db.selectFrom('task_events').select('task_id').distinct().where('task_id', 'in', ids).where('type', '=', 'status').where(sql<boolean>`data->'detail'->>'waitingFor' is not null`).execute();
    assert.ok(waited.length >= TASKS / 2, `most tasks waited for a slot (${waited.length})`);

    // Probes and dispatches started promptly: no waiting task sat on an executor they needed.
    const sample = ids.filter((_, i) => i % 10 === 0 || i >= TASKS - 5);
    const waits = (await Promise.all(sample.map(async (id) => activityWaits((await stack.world.client.workflow.getHandle(`task-${id}`).fetchHistory()).events ?? [])))).flat();
    assert.ok(waits.some((w) => w.type === 'dispatch'));
    assert.ok(!waits.some((w) => w.type === 'waitForSlot'), 'no waiting activity');
    const worst = Math.max(...waits.map((w) => w.waitMs));
    assert.ok(worst < 3000, `an activity waited ${worst} ms for an executor: ${JSON.stringify(waits.filter((w) => w.waitMs >= 3000))}`);
    // The floor is 200 × 150 ms / 5 = 6 s of tool time.
    console.log(`      ${TASKS} tasks in ${elapsed} ms; worst activity schedule-to-start ${worst} ms over ${waits.length} activities`);
  });

  it('a dispatch whose slot lease is lost mid-call stops the call, waits for a slot again and finishes once', async function () {
    // Losing the lease is done by deleting it from Redis; the in-process slot store has nothing to delete from outside.
    if (!stack.world.redis) this.skip();
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 4000, steps: 8 } } });
    assert.equal(submit.status, 202, submit.text);
    const id = submit.body.id as string;
    const deadline = Date.now() + 20_000;
    while (oracle.inFlight() === 0) {
      assert.ok(Date.now() < deadline, 'the call never started');
      await sleep(20);
    }
    await sleep(300);
    // Where the leases live (see concurrency-slots.ts): as if Redis lost them, or they expired unrenewed.
    const deleted = await stack.world.redis!.del(`${stack.config.redisPrefix}{slots}:global`);
    assert.equal(deleted, 1);
    const lostAt = Date.now();
    while (oracle.callCount('slow') < 2) {
      assert.ok(Date.now() - lostAt < 3000, 'the call kept running without its slot');
      await sleep(20);
    }
    assert.equal(oracle.maxInFlight(), 1, 'the first call stopped before the second began');

    const task = await stack.waitForStatus(token, id, ['succeeded', 'failed'], 30_000);
    assert.equal(task.status, 'succeeded', JSON.stringify(task));
    assert.deepEqual(task.attempts.map((a: { outcome: string }) => a.outcome), ['succeeded'], 'a lost slot is no failed attempt');
    assert.equal(oracle.callCount('slow'), 2);
    const results = await stack.world.db.selectFrom('results').select('task_id').where('task_id', '=', id).execute();
    assert.equal(results.length, 1, 'one result');
    const statuses = (await stack.world.events.list(id, 0)).filter((e) => e.type === 'status').map((e) => e.data.status);
    assert.deepEqual(statuses.filter((s) => s === 'succeeded'), ['succeeded'], 'finished once');
    assert.equal(statuses.filter((s) => s === 'running').length, 2, 'ran again under a new slot');
    assert.equal(await stack.world.slots.inFlight(), 0);
  });

  it('a task canceled while waiting for a slot ends canceled at once, holding no slot', async function () {
    const holders = await Promise.all(Array.from({ length: 5 }, () => stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 3000 } } })));
    const deadline = Date.now() + 20_000;
    while (oracle.inFlight() < 5) {
      assert.ok(Date.now() < deadline, `only ${oracle.inFlight()} calls started`);
      await sleep(20);
    }
    const waiter = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'never' } } });
    const id = waiter.body.id as string;
    await stack.waitForStatus(token, id, ['queued']);
    for (;;) {
      const events = await stack.world.events.list(id, 0);
      if (events.some((e) => e.type === 'status' && (e.data as { detail?: { waitingFor?: string } }).detail?.waitingFor)) break;
      assert.ok(Date.now() < deadline, 'the task never waited for a slot');
      await sleep(50);
    }
    const canceledAt = Date.now();
    assert.equal((await stack.api('POST', `/v1/tasks/${id}/cancel`, { token })).status, 202);
    const done = await stack.waitForStatus(token, id, ['canceled', 'succeeded', 'failed'], 10_000);
    assert.equal(done.status, 'canceled');
    assert.ok(Date.now() - canceledAt < 2500, 'the wait ended at the cancel, not when a slot freed');
    const handle = stack.world.client.workflow.getHandle(`task-${id}`);
    await handle.result().catch(() => undefined);
    assert.equal((await handle.describe()).status.name, 'CANCELLED');
    assert.equal(oracle.callCount('echo'), 0);
    assert.equal(await stack.world.slots.inFlight(), 5, 'the holders keep theirs; the canceled task took none');
    for (const h of holders) assert.equal((await stack.waitForStatus(token, h.body.id, ['succeeded', 'failed'], 20_000)).status, 'succeeded');
    assert.equal(await stack.world.slots.inFlight(), 0);
  });
});

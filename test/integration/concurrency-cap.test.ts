import assert from 'node:assert/strict';
import type { TestMcpServer } from '../support/mcp-test-server.ts';
import { startOracleStack, type OracleStack } from '../support/oracle-stack.ts';
import type { Stack } from '../support/stack.ts';

describe('global concurrency cap (MAX_CONCURRENT_JOBS)', function () {
  let setup: OracleStack;
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;

  before(async function () {
    setup = await startOracleStack({ stack: { env: { MAX_CONCURRENT_JOBS: '2' } }, login: 'alice', project: 'cap' });
    ({ stack, oracle, token, projectId } = setup);
  });

  after(async function () {
    await setup?.stop();
  });

  it('runs 10 tasks at most 2 at a time; the rest wait in queued without failing', async function () {
    assert.equal(stack.config.limits.maxConcurrentJobs, 2);
    const submits = await Promise.all(
      Array.from({ length: 10 }, () => stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 800 } } })),
    );
    for (const s of submits) assert.equal(s.status, 202, s.text);
    const ids: string[] = submits.map((s) => s.body.id);
    assert.equal(new Set(ids).size, 10);

    const finals = await Promise.all(ids.map((id) => stack.waitForStatus(token, id, ['succeeded', 'failed', 'canceled'], 90_000)));
    for (const t of finals) {
      assert.equal(t.status, 'succeeded', JSON.stringify(t));
      assert.deepEqual(t.attempts.map((a: { outcome: string }) => a.outcome), ['succeeded'], `no failed attempt: ${JSON.stringify(t.attempts)}`);
    }

    assert.equal(oracle.callCount('slow'), 10, 'each task called the tool once');
    assert.ok(oracle.maxInFlight() <= 2, `at most 2 calls at once (saw ${oracle.maxInFlight()})`);
    assert.equal(oracle.maxInFlight(), 2, 'the cap, not serial execution, is the limit');
    assert.equal(await stack.world.slots.inFlight(), 0, 'every slot was released');

    const db = stack.world.db;
    const attempts = await db.selectFrom('tasks').select(['id', 'status', 'attempts']).where('id', 'in', ids).execute();
    assert.equal(attempts.length, 10);
    for (const row of attempts) {
      assert.equal(row.status, 'succeeded');
      const outcomes = (row.attempts as { outcome: string }[]).map((a) => a.outcome);
      assert.ok(!outcomes.includes('failed'), `task ${row.id} has a failed attempt: ${JSON.stringify(row.attempts)}`);
    }
    const results = await db.selectFrom('results').select('task_id').where('task_id', 'in', ids).execute();
    assert.equal(results.length, 10, 'one result per task');

    const events = await db.selectFrom('task_events').selectAll().where('task_id', 'in', ids).where('type', 'in', ['status', 'error']).orderBy('task_id').orderBy('seq').execute();
    assert.equal(events.filter((e) => e.type === 'error').length, 0, 'no error events');
    const waited = ids.filter((id) => {
      const statuses = events.filter((e) => e.task_id === id).map((e) => e.data as { status: string; detail?: { waitingFor?: string } });
      const routing = statuses.findIndex((s) => s.status === 'routing');
      const wait = statuses.findIndex((s, i) => i > routing && s.status === 'queued' && typeof s.detail?.waitingFor === 'string');
      return routing >= 0 && wait > routing;
    });
    // With 10 tasks submitted at once and 2 slots, tasks had to wait for one (usually 8 of them).
    assert.ok(waited.length >= 1, `tasks that logged queued/waitingFor after routing: ${waited.length}`);
    for (const id of waited) {
      const statuses = events.filter((e) => e.task_id === id).map((e) => (e.data as { status: string }).status);
      assert.deepEqual(statuses, ['queued', 'routing', 'queued', 'running', 'succeeded'], `task ${id}`);
    }
  });
});

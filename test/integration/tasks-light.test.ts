import assert from 'node:assert/strict';
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import type { TestMcpServer } from '../support/mcp-test-server.ts';
import { startOracleStack, type OracleStack } from '../support/oracle-stack.ts';
import { readEvents } from '../support/sse-client.ts';
import type { Stack } from '../support/stack.ts';

describe('light task on the oracle', function () {
  let setup: OracleStack;
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;

  before(async function () {
    setup = await startOracleStack({ stack: { env: { PROBE_FRESH: '60s' } }, login: 'alice', project: 'demo' });
    ({ stack, oracle, token, projectId } = setup);
  });

  after(async function () {
    await setup?.stop();
  });

  it('runs on the oracle, stores the result inline and logs events in order', async function () {
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'hello' } } });
    assert.equal(submit.status, 202, submit.text);
    assert.equal(submit.body.status, 'queued');
    const id = submit.body.id;

    const { events, closedByServer } = await readEvents(`${stack.url}/v1/tasks/${id}/events`, { token, timeoutMs: 30_000 });
    assert.equal(closedByServer, true, 'the stream closes after the terminal event');
    assert.equal(events[0]!.event, 'snapshot');
    const logged = events.slice(1);
    assert.deepEqual(logged.map((e) => Number(e.id)), logged.map((_, i) => i + 1), 'ids are the seqs 1..n');
    const statuses = logged.filter((e) => e.event === 'status').map((e) => e.data.status);
    assert.deepEqual(statuses, ['queued', 'routing', 'running', 'succeeded']);
    const result = logged.find((e) => e.event === 'result');
    assert.equal(result?.data.storage, 'inline');

    const task = await stack.api('GET', `/v1/tasks/${id}`, { token });
    assert.equal(task.body.status, 'succeeded');
    assert.deepEqual(task.body.target, { kind: 'oracle', server: 'tools' });
    assert.deepEqual(task.body.result.content, [{ type: 'text', text: 'hello' }]);
    assert.equal(oracle.callCount('echo'), 1);

    const row = await stack.world.db.selectFrom('results').selectAll().where('task_id', '=', id).executeTakeFirstOrThrow();
    assert.equal(row.location, null);
    assert.deepEqual(JSON.parse(row.content!.toString()), { content: [{ type: 'text', text: 'hello' }] });

    // What an operator sees in the Web UI: the summary and the attributes to filter by.
    const handle = stack.world.client.workflow.getHandle(`task-${id}`);
    await handle.result();
    const described = await handle.describe();
    assert.equal(described.type, 'taskWorkflow');
    assert.equal(await described.staticSummary(), `echo for project ${projectId}`);
    const attrs = Object.fromEntries(described.typedSearchAttributes.getAll().map((p) => [p.key.name, p.value]));
    assert.deepEqual(
      { TaskStatus: attrs.TaskStatus, ProjectId: attrs.ProjectId, Tool: attrs.Tool, TargetKind: attrs.TargetKind },
      { TaskStatus: 'succeeded', ProjectId: projectId, Tool: 'echo', TargetKind: 'oracle' },
    );
  });

  it('on a fresh oracle takes two workflow tasks: three local bookkeeping steps and the dispatch', async function () {
    // A first task probes the oracle healthy (PROBE_FRESH 60s), so the second one runs no probe activity.
    const first = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'probe' } } });
    await stack.world.client.workflow.getHandle(`task-${first.body.id}`).result();
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'steps' } } });
    assert.equal(submit.status, 202, submit.text);
    const handle = stack.world.client.workflow.getHandle(`task-${submit.body.id}`);
    await handle.result();
    const events = (await handle.fetchHistory()).events ?? [];
    const completedTasks = events.filter((e) => e.workflowTaskCompletedEventAttributes).length;
    const activities = events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => e.activityTaskScheduledEventAttributes!.activityType?.name);
    const localActivities = events
      .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity')
      .map((e) => JSON.parse(Buffer.from(e.markerRecordedEventAttributes!.details!.data!.payloads![0]!.data!).toString()).activity_type);
    assert.deepEqual(activities, ['dispatch']);
    assert.equal(completedTasks, 2);
    assert.deepEqual(localActivities, ['recordRoutingAndPlan', 'acquireSlotAndMarkRunning', 'releaseSlotAndStoreResult']);
    const { events: logged } = await readEvents(`${stack.url}/v1/tasks/${submit.body.id}/events`, { token, timeoutMs: 30_000 });
    assert.deepEqual(logged.filter((e) => e.event === 'status').map((e) => e.data.status), ['queued', 'routing', 'running', 'succeeded']);
  });

  it('keeps megabytes of arguments out of workflow history', async function () {
    const text = 'a'.repeat(2 * 1024 * 1024);
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text } } });
    assert.equal(submit.status, 202, submit.text);
    const task = await stack.waitForStatus(token, submit.body.id, ['succeeded', 'failed']);
    assert.equal(task.status, 'succeeded');
    const history = await stack.world.client.workflow.getHandle(`task-${submit.body.id}`).fetchHistory();
    const largest = Math.max(
      ...(history.events ?? []).flatMap((e) =>
        Object.values(e)
          .filter((v): v is { input?: { payloads?: Array<{ data?: Uint8Array }> }; result?: { payloads?: Array<{ data?: Uint8Array }> } } => typeof v === 'object' && v !== null)
          .flatMap((attrs) => [...(attrs.input?.payloads ?? []), ...(attrs.result?.payloads ?? [])])
          .map((p) => p.data?.length ?? 0),
      ),
    );
    assert.ok(largest > 0, 'payloads were found');
    assert.ok(largest < 256 * 1024, `largest history payload is ${largest} bytes`);
  });

  it('enforces a per-tool timeout, retries, then fails with a readable reason', async function () {
    const patched = await stack.api('PATCH', '/v1/mcps/tools', { token, body: { toolTimeouts: { slow: 300 } } });
    assert.equal(patched.status, 200, patched.text);
    try {
      const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 5000 } } });
      const task = await stack.waitForStatus(token, submit.body.id, ['succeeded', 'failed'], 30_000);
      assert.equal(task.status, 'failed');
      assert.equal(task.error.code, 'AllTargetsFailed');
      assert.match(task.error.message, /timed out after 300 ms/);
      assert.deepEqual(task.attempts.map((a: any) => [a.outcome, a.tries]), [['failed', 4]]);
      assert.equal(oracle.callCount('slow'), 4);
      const events = await stack.world.events.list(submit.body.id, 0);
      assert.deepEqual(events.slice(-2).map((e) => e.type), ['error', 'status']);
      // The workflow fails too, typed by the task's error code, so the Web UI lists it as Failed.
      const handle = stack.world.client.workflow.getHandle(`task-${submit.body.id}`);
      await assert.rejects(handle.result(), (err: unknown) => {
        assert.ok(err instanceof WorkflowFailedError);
        assert.ok(err.cause instanceof ApplicationFailure);
        assert.equal(err.cause.type, 'AllTargetsFailed');
        assert.equal(err.cause.nonRetryable, true);
        assert.equal((err.cause.details?.[0] as { status: string }).status, 'failed');
        return true;
      });
      assert.equal((await handle.describe()).status.name, 'FAILED');
    } finally {
      await stack.api('PATCH', '/v1/mcps/tools', { token, body: { toolTimeouts: { slow: 600_000 } } });
    }
  });

  it('a fresh healthy probe stands in for the next one; a failed dispatch makes the next task probe again', async function () {
    const first = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'warm' } } });
    await stack.waitForStatus(token, first.body.id, ['succeeded']);
    // Right after a healthy probe the plan marks the oracle fresh, and the workflow runs no probe activity at all.
    const next = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'warm again' } } });
    await stack.waitForStatus(token, next.body.id, ['succeeded']);
    const activityTypes = async (id: string) =>
      ((await stack.world.client.workflow.getHandle(`task-${id}`).fetchHistory()).events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    assert.deepEqual(await activityTypes(next.body.id), ['dispatch'], 'no probe activity');
    oracle.mode = 'down';
    oracle.resetStats();
    try {
      const second = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'x' } } });
      const failed = await stack.waitForStatus(token, second.body.id, ['succeeded', 'failed']);
      assert.deepEqual(failed.attempts.map((a: any) => [a.outcome, a.tries]), [['failed', 4]], 'no probe: straight to four dispatch attempts');
      assert.equal(oracle.rejectedCount(), 4);

      oracle.resetStats();
      const third = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'y' } } });
      const unhealthy = await stack.waitForStatus(token, third.body.id, ['succeeded', 'failed']);
      assert.deepEqual(unhealthy.attempts.map((a: any) => [a.outcome, a.tries]), [['unhealthy', 4]], 'probed for real, and found down');
      assert.deepEqual(await activityTypes(third.body.id), ['probe'], 'a probe activity, as the oracle was last seen failing');
      assert.equal(oracle.rejectedCount(), 4);
    } finally {
      oracle.mode = 'up';
    }
  });
});

describe('the oracle kept fresh by its answers', function () {
  let setup: OracleStack;
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;

  before(async function () {
    setup = await startOracleStack({ stack: { env: { PROBE_FRESH: '2s' } }, login: 'bob', project: 'fresh' });
    ({ stack, oracle, token, projectId } = setup);
  });

  after(async function () {
    await setup?.stop();
  });

  it('a successful call renews the health record: tasks spread over more than PROBE_FRESH run no probe', async function () {
    // Four tasks 700 ms apart span more than PROBE_FRESH (2 s) from the first one's probe, so were only probes to
    // renew the health record, one of the last three would have to probe; each successful dispatch renews it instead.
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 700));
      const submitted = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: `spread ${i}` } } });
      assert.equal((await stack.waitForStatus(token, submitted.body.id, ['succeeded', 'failed'])).status, 'succeeded');
      ids.push(submitted.body.id);
    }
    const activityTypes = async (id: string) =>
      ((await stack.world.client.workflow.getHandle(`task-${id}`).fetchHistory()).events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    assert.deepEqual(await activityTypes(ids[0]!), ['probe', 'dispatch'], 'the first task probes: no record yet');
    for (const id of ids.slice(1)) assert.deepEqual(await activityTypes(id), ['dispatch'], `task ${id} ran no probe`);
    assert.equal(oracle.callCount('echo'), 4);
  });
});

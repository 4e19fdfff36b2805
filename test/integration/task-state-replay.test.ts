import assert from 'node:assert/strict';
import { startStack, type Stack } from '../support/stack.ts';

// A worker killed after a status write committed runs that write again when the workflow replays on another worker:
// the task's event log must still show each transition once.

describe('recording a task state twice', function () {
  let stack: Stack;

  before(async function () {
    stack = await startStack({ worker: false });
  });
  after(async function () {
    await stack?.stop();
  });

  it('logs a replayed transition once, and a real repeat of the status with a new target again', async function () {
    const token = await stack.token('alice');
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'p' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'declared', tools: [{ name: 'echo' }] } });
    assert.equal(reg.status, 201, reg.text);
    const task = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: {} } });
    assert.equal(task.status, 202, task.text);
    const id: string = task.body.id;
    const { tasks, events } = stack.world;

    const running = { status: 'running' as const, attempts: [], consent: 'not_needed' as const, target: { kind: 'oracle' as const, server: 'a' } };
    await tasks.recordState(id, running, { server: 'a', kind: 'oracle', tries: undefined });
    await tasks.recordState(id, running, { server: 'a', kind: 'oracle', tries: undefined });
    const moved = { ...running, target: { kind: 'oracle' as const, server: 'b' }, attempts: [{ kind: 'oracle' as const, server: 'a', outcome: 'failed' as const, at: new Date().toISOString() }] };
    await tasks.recordState(id, moved, { server: 'b', kind: 'oracle' });

    const statuses = (await events.list(id, 0)).filter((e) => e.type === 'status').map((e) => `${e.data.status}${e.data.target ? `@${(e.data.target as { server: string }).server}` : ''}`);
    assert.deepEqual(statuses, ['queued', 'running@a', 'running@b']);
    const seqs = (await events.list(id, 0)).map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'seq stays contiguous');
  });
});

import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { REDIS_TEST_URL } from '../support/test-db.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { readEvents } from '../support/sse-client.ts';
import { startStack, type Stack } from '../support/stack.ts';

// A run's event stream: the log written with each state change, streamed live, resumable, closed at the end.

describe('agent runs: the event stream', function () {
  let stack: Stack;
  let mcp: TestMcpServer;
  let alice: string;
  let projectId: string;

  before(async function () {
    mcp = await startTestMcpServer({ name: 'event-tools' });
    stack = await startStack();
    alice = await stack.token('alice');
    assert.equal((await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'tools', oracleUrl: mcp.url } })).status, 201);
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'streams' } })).body.id;
    const agent = await stack.api('POST', `/v1/projects/${projectId}/agents`, {
      token: alice,
      body: { name: 'two-steps', steps: [{ id: 'wait', tool: 'slow', arguments: { ms: 1500 } }, { id: 'say', tool: 'echo', dependsOn: ['wait'], arguments: { text: 'hi' } }] },
    });
    assert.equal(agent.status, 201, agent.text);
  });

  after(async function () {
    await stack?.stop();
    await mcp?.stop();
  });

  const describeEvent = (e: { event: string; data: any }) => (e.event === 'step' ? `step ${e.data.step} ${e.data.status}` : `${e.event} ${e.data.status}`);

  it('streams run and step events in order, live, and closes when the run ends', async function () {
    const start = await stack.api('POST', `/v1/projects/${projectId}/agents/two-steps/runs`, { token: alice, body: { input: {} } });
    assert.equal(start.status, 202, start.text);
    const id = start.body.id;
    const live = await readEvents(`${stack.url}/v1/agent-runs/${id}/events`, { token: alice, timeoutMs: 60_000 });
    assert.equal(live.status, 200);
    assert.equal(live.closedByServer, true, 'the server ends the stream after the terminal event');
    assert.equal(live.events[0]!.event, 'snapshot');
    assert.equal(live.events[0]!.id, undefined, 'the snapshot moves no Last-Event-ID');
    const logged = live.events.slice(1);
    assert.deepEqual(logged.map((e) => Number(e.id)), logged.map((_, i) => i + 1), 'ids are the seqs 1..n, none missing');
    assert.deepEqual(logged.map(describeEvent), [
      'status queued',
      'status running',
      'step wait running',
      'step wait started',
      'step wait succeeded',
      'step say running',
      'step say started',
      'step say succeeded',
      'status succeeded',
    ]);
    const run = (await stack.api('GET', `/v1/agent-runs/${id}`, { token: alice })).body;
    assert.equal(logged.find((e) => e.event === 'step' && e.data.step === 'wait' && e.data.status === 'started')!.data.taskId, run.steps[0].taskId);

    const rows = await stack.world.db.selectFrom('agent_run_events').select(['seq', 'type']).where('run_id', '=', id).orderBy('seq').execute();
    assert.deepEqual(rows.map((r) => r.seq), logged.map((e) => Number(e.id)), 'what was streamed is what was written');

    const resumed = await readEvents(`${stack.url}/v1/agent-runs/${id}/events`, { token: alice, lastEventId: '4' });
    assert.equal(resumed.closedByServer, true);
    assert.deepEqual(resumed.events.slice(1).map(describeEvent), logged.slice(4).map(describeEvent), 'resumes right after Last-Event-ID');
    assert.equal(resumed.events[1]!.id, '5');

    const pastTheEnd = await readEvents(`${stack.url}/v1/agent-runs/${id}/events`, { token: alice, lastEventId: String(logged.length) });
    assert.equal(pastTheEnd.closedByServer, true);
    assert.deepEqual(pastTheEnd.events.map((e) => e.event), ['snapshot']);
  });

  it('a canceled run ends its stream with the canceled status and the step it stopped', async function () {
    const start = await stack.api('POST', `/v1/projects/${projectId}/agents/two-steps/runs`, { token: alice, body: { input: {} } });
    const id = start.body.id;
    const streaming = readEvents(`${stack.url}/v1/agent-runs/${id}/events`, { token: alice, timeoutMs: 60_000 });
    const deadline = Date.now() + 30_000;
    while ((await stack.api('GET', `/v1/agent-runs/${id}`, { token: alice })).body.steps[0].taskId === undefined) {
      assert.ok(Date.now() < deadline, 'the first step started');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await stack.api('POST', `/v1/agent-runs/${id}/cancel`, { token: alice })).status, 202);
    const { events, closedByServer } = await streaming;
    assert.equal(closedByServer, true);
    const tail = events.slice(1).map(describeEvent);
    assert.equal(tail.at(-1), 'status canceled');
    assert.ok(tail.includes('step wait canceled'), tail.join(', '));
    assert.ok(tail.includes('step say skipped'), tail.join(', '));
  });

  it('another user gets 404, a bad Last-Event-ID 400', async function () {
    const start = await stack.api('POST', `/v1/projects/${projectId}/agents/two-steps/runs`, { token: alice, body: { input: {} } });
    const bob = await stack.token('bob');
    const stranger = await readEvents(`${stack.url}/v1/agent-runs/${start.body.id}/events`, { token: bob });
    assert.equal(stranger.status, 404);
    const bad = await readEvents(`${stack.url}/v1/agent-runs/${start.body.id}/events`, { token: alice, lastEventId: 'abc' });
    assert.equal(bad.status, 400);
  });

  it('pushes each event on the run\'s channel once it is committed, in seq order, the same as the log', async function () {
    // Run ids are fresh UUIDs: a pattern finds this run's channel whatever the stack's prefix.
    const sub = new Redis(REDIS_TEST_URL);
    const pushed: Array<{ channel: string; seq: number; type: string }> = [];
    sub.on('pmessage', (_p, channel, message) => pushed.push({ channel, ...(JSON.parse(message) as { seq: number; type: string }) }));
    try {
      await sub.psubscribe('*agent-run-events:*');
      const start = await stack.api('POST', `/v1/projects/${projectId}/agents/two-steps/runs`, { token: alice, body: { input: {} } });
      const id = start.body.id;
      const stream = await readEvents(`${stack.url}/v1/agent-runs/${id}/events`, { token: alice, timeoutMs: 60_000 });
      assert.equal(stream.closedByServer, true);
      const rows = await stack.world.db.selectFrom('agent_run_events').select(['seq', 'type']).where('run_id', '=', id).orderBy('seq').execute();
      const mine = pushed.filter((m) => m.channel.endsWith(`agent-run-events:${id}`));
      assert.deepEqual(mine.map((m) => [m.seq, m.type]), rows.map((r) => [r.seq, r.type]), 'every logged event was pushed, once, in order');
      assert.deepEqual(stream.events.slice(1).map((e) => Number(e.id)), rows.map((r) => r.seq));
    } finally {
      sub.disconnect();
    }
  });
});

import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { readEvents } from '../support/sse-client.ts';
import { startStack, type Stack } from '../support/stack.ts';

// A heavy agent step whose Space is down: its task awaits consent, the run shows it, and consent given to the run
// reaches the step task through the task consent path.

const SPACE_TOKEN = 'hf_space_secret_token_value_agent_consent';

describe('agent runs: a step that needs consent', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let space: TestMcpServer;
  let alice: string;
  let projectId: string;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    space = await startTestMcpServer({ name: 'space', requireBearer: SPACE_TOKEN });
    stack = await startStack({ env: { CONSENT_TIMEOUT: '60s' } });
    alice = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'consenting' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'scanner', oracleUrl: oracle.url, canRunOnUserSpace: true, fallbackToOracle: true, heavyTools: ['slow'] } });
    assert.equal(reg.status, 201, reg.text);
    const bind = await stack.api('PUT', `/v1/projects/${projectId}/spaces/scanner`, { token: alice, body: { url: space.url, token: SPACE_TOKEN } });
    assert.equal(bind.status, 200, bind.text);
    const agent = await stack.api('POST', `/v1/projects/${projectId}/agents`, {
      token: alice,
      body: {
        name: 'scan-then-echo',
        steps: [
          { id: 'scan', tool: 'slow', heavy: true, arguments: { ms: 10 } },
          { id: 'say', tool: 'echo', dependsOn: ['scan'], arguments: { text: 'after the scan' } },
        ],
      },
    });
    assert.equal(agent.status, 201, agent.text);
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
    await space?.stop();
  });

  async function waitRun(id: string, statuses: string[], timeoutMs = 60_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await stack.api('GET', `/v1/agent-runs/${id}`, { token: alice });
      assert.equal(r.status, 200, r.text);
      if (statuses.includes(r.body.status)) return r.body;
      if (Date.now() > deadline) throw new Error(`run stayed ${r.body.status}: ${JSON.stringify(r.body)}`);
      await new Promise((res) => setTimeout(res, 150));
    }
  }

  async function startRun(): Promise<string> {
    const r = await stack.api('POST', `/v1/projects/${projectId}/agents/scan-then-echo/runs`, { token: alice, body: { input: {} } });
    assert.equal(r.status, 202, r.text);
    return r.body.id;
  }

  /** The run's consent events, from its SSE stream (it ended), checked against the log in Postgres. */
  async function consentEvents(id: string): Promise<Array<{ event: string; data: any }>> {
    const stream = await readEvents(`${stack.url}/v1/agent-runs/${id}/events`, { token: alice, timeoutMs: 30_000 });
    assert.equal(stream.closedByServer, true);
    const logged = stream.events.slice(1);
    const rows = await stack.world.db.selectFrom('agent_run_events').select(['seq', 'type']).where('run_id', '=', id).orderBy('seq').execute();
    assert.deepEqual(logged.map((e) => [Number(e.id), e.event]), rows.map((r) => [r.seq, r.type]), 'streamed as logged, none missing, none twice');
    return logged.filter((e) => e.event.startsWith('step.'));
  }

  it('shows awaiting_consent, passes a grant to the step task, then runs on to success', async function () {
    space.mode = 'down';
    const id = await startRun();
    const early = await stack.api('POST', `/v1/agent-runs/${id}/consent`, { token: alice, body: { grant: true } });
    if (early.status !== 200) {
      assert.equal(early.status, 409, early.text);
      assert.equal(early.body.code, 'NotAwaitingConsent');
    }
    const waiting = await waitRun(id, ['awaiting_consent']);
    const scan = waiting.steps.find((s: any) => s.id === 'scan');
    assert.equal(scan.status, 'awaiting_consent');
    assert.equal(waiting.steps.find((s: any) => s.id === 'say').status, 'pending');
    const task = await stack.api('GET', `/v1/tasks/${scan.taskId}`, { token: alice });
    assert.equal(task.body.status, 'awaiting_consent');

    const bob = await stack.token('bob');
    const stranger = await stack.api('POST', `/v1/agent-runs/${id}/consent`, { token: bob, body: { grant: true } });
    assert.equal(stranger.status, 404, stranger.text);
    const bad = await stack.api('POST', `/v1/agent-runs/${id}/consent`, { token: alice, body: { grant: 'yes' } });
    assert.equal(bad.status, 400, bad.text);

    const granted = await stack.api('POST', `/v1/agent-runs/${id}/consent`, { token: alice, body: { grant: true } });
    assert.equal(granted.status, 200, granted.text);
    assert.equal(granted.body.id, id);
    const done = await waitRun(id, ['succeeded', 'failed', 'canceled']);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(oracle.callCount('slow'), 1, 'the scan ran on the platform after consent');
    const after = (await stack.api('GET', `/v1/tasks/${scan.taskId}`, { token: alice })).body;
    assert.equal(after.status, 'succeeded');
    assert.deepEqual(after.target, { kind: 'oracle', server: 'scanner' });
    const again = await stack.api('POST', `/v1/agent-runs/${id}/consent`, { token: alice, body: { grant: true } });
    assert.equal(again.status, 409, again.text);

    const consent = await consentEvents(id);
    assert.deepEqual(consent.map((e) => e.event), ['step.awaiting_consent', 'step.consent']);
    assert.deepEqual({ ...consent[0]!.data, seq: undefined, at: undefined, consentDeadline: undefined }, { step: 'scan', taskId: scan.taskId, target: { kind: 'oracle', server: 'scanner' }, seq: undefined, at: undefined, consentDeadline: undefined });
    assert.ok(Date.parse(consent[0]!.data.consentDeadline) > Date.parse(consent[0]!.data.at), 'the wait names its deadline');
    assert.equal(consent[1]!.data.step, 'scan');
    assert.equal(consent[1]!.data.consent, 'granted');
  });

  it('a denial fails the step and with it the run, naming the step', async function () {
    space.mode = 'down';
    const id = await startRun();
    await waitRun(id, ['awaiting_consent']);
    const denied = await stack.api('POST', `/v1/agent-runs/${id}/consent`, { token: alice, body: { grant: false } });
    assert.equal(denied.status, 200, denied.text);
    const done = await waitRun(id, ['succeeded', 'failed', 'canceled']);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.step, 'scan');
    assert.equal(done.steps.find((s: any) => s.id === 'say').status, 'skipped');
    const consent = await consentEvents(id);
    assert.deepEqual(consent.map((e) => [e.event, e.data.step, e.data.consent]), [['step.awaiting_consent', 'scan', undefined], ['step.consent', 'scan', 'denied']]);
  });
});

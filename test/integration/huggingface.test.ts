import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { userHfTokenAad } from '../../src/core/sealed-secrets.ts';
import { createSecretBox } from '../../src/lib/secret-box.ts';
import { startLocalHub, type LocalHub } from '../support/local-hub/index.ts';
import { largeText, startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { readEvents } from '../support/sse-client.ts';
import { startStack, type Stack } from '../support/stack.ts';

const SPACE_TOKEN = 'hf_bob_space_token_0123456789abcdef';
const PLATFORM_TOKEN = 'hf_platform_token_fedcba9876543210';
const DATASET = 'platform/results';

describe('Hugging Face: Spaces that sleep, datasets that hold large results', function () {
  let hub: LocalHub;
  let oracle: TestMcpServer;
  let stack: Stack;
  let token: string;

  async function project(name: string, spaceId: string, opts: { bindToken?: string } = {}): Promise<string> {
    const id = (await stack.api('POST', '/v1/projects', { token, body: { name } })).body.id;
    const bind = await stack.api('PUT', `/v1/projects/${id}/spaces/scanner`, { token, body: { spaceId, token: opts.bindToken ?? SPACE_TOKEN } });
    assert.equal(bind.status, 200, bind.text);
    return id;
  }

  const expectedBytes = (bytes: number) => Buffer.from(JSON.stringify({ content: [{ type: 'text', text: largeText(bytes) }] }));

  before(async function () {
    hub = await startLocalHub({ tokens: { [SPACE_TOKEN]: 'bob', [PLATFORM_TOKEN]: 'platform' } });
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack({
      env: {
        HF_ENDPOINT: hub.url,
        HF_TOKEN: PLATFORM_TOKEN,
        RESULT_STORE: `hf://datasets/${DATASET}`,
        SPACE_START_TIMEOUT: '15s',
        SPACE_POLL_INTERVAL: '100ms',
      },
    });
    token = await stack.token('bob');
    const reg = await stack.api('POST', '/v1/mcps', {
      token,
      body: { name: 'scanner', oracleUrl: oracle.url, canRunOnUserSpace: true, fallbackToOracle: true, heavyTools: ['slow', 'whoami'] },
    });
    assert.equal(reg.status, 201, reg.text);
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
    await hub?.stop();
  });

  it('binds a running Space by id, resolving its MCP endpoint and mapping its prefixed tools', async function () {
    const space = await hub.spaces.add('bob/awake', { stage: 'RUNNING', private: true, token: SPACE_TOKEN });
    const id = (await stack.api('POST', '/v1/projects', { token, body: { name: 'mapping' } })).body.id;
    const bind = await stack.api('PUT', `/v1/projects/${id}/spaces/scanner`, { token, body: { spaceId: 'bob/awake', token: SPACE_TOKEN } });
    assert.equal(bind.status, 200, bind.text);
    assert.equal(bind.body.url, space.mcpUrl);
    assert.equal(bind.body.stage, 'RUNNING');
    assert.equal(bind.body.toolMap.echo, 'awake_echo');
    assert.deepEqual(bind.body.missingTools, []);
    assert.equal(bind.text.includes(SPACE_TOKEN), false);

    const missing = await stack.api('PUT', `/v1/projects/${id}/spaces/scanner`, { token, body: { spaceId: 'bob/nope', token: SPACE_TOKEN } });
    assert.equal(missing.status, 422);
    assert.equal(missing.body.code, 'SpaceNotFound');
  });

  it('binds a private Space by id with the Hub token from sign-in when none is pasted, and only then', async function () {
    await hub.spaces.add('bob/signed', { stage: 'RUNNING', private: true, token: SPACE_TOKEN });
    const id = (await stack.api('POST', '/v1/projects', { token, body: { name: 'signed-in' } })).body.id;
    // Without a Hub token the private Space cannot be read.
    const before = await stack.api('PUT', `/v1/projects/${id}/spaces/scanner`, { token, body: { spaceId: 'bob/signed' } });
    assert.equal(before.status, 422, before.text);
    assert.equal(before.body.code, 'SpaceNotFound');

    // What signing in with Hugging Face stores (the sign-in tests cover that flow): the token, sealed to the user's row.
    const bobId = (await stack.world.db.selectFrom('users').select('id').where('login', '=', 'bob').executeTakeFirstOrThrow()).id;
    const sealed = createSecretBox({ current: stack.config.encryptionKey }).seal(SPACE_TOKEN, userHfTokenAad(bobId));
    await stack.world.db.updateTable('users').set({ hf_token_sealed: sealed }).where('id', '=', bobId).execute();

    const bind = await stack.api('PUT', `/v1/projects/${id}/spaces/scanner`, { token, body: { spaceId: 'bob/signed' } });
    assert.equal(bind.status, 200, bind.text);
    assert.equal(bind.body.hasToken, true);
    assert.equal(bind.body.toolMap.echo, 'signed_echo', 'the private Space was read with the token');
    assert.equal(bind.text.includes(SPACE_TOKEN), false);
    const audit = await stack.world.db.selectFrom('audit_log').select('detail').where('action', '=', 'space.bind').where('project_id', '=', id).orderBy('id', 'desc').executeTakeFirstOrThrow();
    assert.equal((audit.detail as { tokenFrom?: string }).tokenFrom, 'sign-in');

    // A URL the caller typed never gets the sign-in token.
    const space = await hub.spaces.add('bob/other', { stage: 'RUNNING', private: true, token: SPACE_TOKEN });
    const byUrl = await stack.api('PUT', `/v1/projects/${id}/spaces/scanner`, { token, body: { url: space.mcpUrl } });
    assert.equal(byUrl.status, 200, byUrl.text);
    assert.equal(byUrl.body.hasToken, false);
    await stack.world.db.updateTable('users').set({ hf_token_sealed: null }).where('id', '=', bobId).execute();
  });

  it('wakes a sleeping Space, runs the heavy task there, and the events show it', async function () {
    const space = await hub.spaces.add('bob/sleepy', { stage: 'SLEEPING', private: true, token: SPACE_TOKEN, wakeDelayMs: 700 });
    const projectId = await project('sleepy', 'bob/sleepy');
    assert.equal(hub.spaces.stage('bob/sleepy'), 'SLEEPING', 'binding a sleeping Space does not wake it');

    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'whoami', arguments: {} } });
    assert.equal(submit.status, 202, submit.text);
    const { events } = await readEvents(`${stack.url}/v1/tasks/${submit.body.id}/events`, { token });
    const phases = events.filter((e) => e.event === 'progress' && e.data.phase).map((e) => e.data.phase);
    assert.deepEqual(phases, ['waking', 'ready']);
    assert.equal(events.at(-1)!.data.status, 'succeeded');
    const task = (await stack.api('GET', `/v1/tasks/${submit.body.id}`, { token })).body;
    assert.deepEqual(task.target, { kind: 'space', server: 'scanner' });
    assert.match(task.result.content[0].text, /sleepy/, 'the Space answered, not the oracle');
    assert.equal(space.mcp.callCount('sleepy_whoami'), 1, 'the Space ran the prefixed tool');
    assert.equal(oracle.callCount(), 0);
    assert.equal(hub.spaces.stage('bob/sleepy'), 'RUNNING');
    const binding = await stack.world.db.selectFrom('space_bindings').select(['tool_map']).where('project_id', '=', projectId).executeTakeFirstOrThrow();
    assert.equal(binding.tool_map?.whoami, 'sleepy_whoami', 'the map learnt once awake is kept');
  });

  it('a PAUSED Space → awaiting_consent → consent → oracle → succeeded, without touching the Space', async function () {
    await hub.spaces.add('bob/paused', { stage: 'PAUSED', private: true, token: SPACE_TOKEN });
    const projectId = await project('paused', 'bob/paused');
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'whoami', arguments: {} } });
    const waiting = await stack.waitForStatus(token, submit.body.id, ['awaiting_consent', 'failed', 'succeeded']);
    assert.equal(waiting.status, 'awaiting_consent');
    assert.equal(waiting.attempts[0].outcome, 'unhealthy');
    assert.match(waiting.attempts[0].reason, /PAUSED/);
    const consent = await stack.api('POST', `/v1/tasks/${submit.body.id}/consent`, { token, body: { grant: true } });
    assert.equal(consent.status, 200, consent.text);
    const done = await stack.waitForStatus(token, submit.body.id, ['succeeded', 'failed']);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(done.target, { kind: 'oracle', server: 'scanner' });
    assert.deepEqual(hub.spaces.hostRequests('bob/paused'), [], 'a paused Space is never requested');
    const events = await stack.world.events.list(submit.body.id, 0);
    assert.ok(events.some((e) => e.type === 'progress' && e.data.phase === 'unavailable' && e.data.stage === 'PAUSED'));
  });

  it('a Space in RUNTIME_ERROR without fallback consent fails with a reason naming the stage', async function () {
    await hub.spaces.add('bob/broken', { stage: 'RUNTIME_ERROR', private: true, token: SPACE_TOKEN });
    const projectId = await project('broken', 'bob/broken');
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'whoami', arguments: {} } });
    await stack.waitForStatus(token, submit.body.id, ['awaiting_consent']);
    await stack.api('POST', `/v1/tasks/${submit.body.id}/consent`, { token, body: { grant: false } });
    const done = await stack.waitForStatus(token, submit.body.id, ['failed', 'succeeded']);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.code, 'ConsentDenied');
    assert.match(done.attempts[0].reason, /RUNTIME_ERROR/);
  });

  it('the health endpoint reports a sleeping Space asleep and does not wake it', async function () {
    await hub.spaces.add('bob/napping', { stage: 'SLEEPING', private: true, token: SPACE_TOKEN });
    const projectId = await project('napping', 'bob/napping');
    const health = await stack.api('GET', `/v1/mcps/scanner/health?projectId=${projectId}`, { token });
    assert.equal(health.status, 200, health.text);
    assert.deepEqual(health.body.space, { spaceId: 'bob/napping', stage: 'SLEEPING', state: 'asleep' });
    assert.equal(health.body.oracle.healthy, true);
    assert.equal(hub.spaces.stage('bob/napping'), 'SLEEPING');
    assert.deepEqual(hub.spaces.hostRequests('bob/napping'), []);
  });

  it('stores a result over 1 MiB in the dataset behind a pinned hf:// pointer, regular and LFS', async function () {
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'big results' } })).body.id;
    hub.datasets.lfsThresholdBytes = 1536 * 1024;
    for (const [bytes, lfs] of [[1200 * 1024, false], [2 * 1024 * 1024, true]] as const) {
      const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'large', arguments: { bytes }, heavy: false } });
      const task = await stack.waitForStatus(token, submit.body.id, ['succeeded', 'failed']);
      assert.equal(task.status, 'succeeded', JSON.stringify(task));
      const expected = expectedBytes(bytes);
      assert.match(task.result.location, new RegExp(`^hf://datasets/${DATASET}@[0-9a-f]{40}/tasks/${submit.body.id}/result\\.json$`));
      assert.equal(task.result.size, expected.length);
      assert.equal(task.result.sha256, createHash('sha256').update(expected).digest('hex'));
      const stored = hub.datasets.repo(DATASET)!;
      assert.equal(stored.private, true, 'the dataset was created private');
      assert.equal(stored.files[`tasks/${submit.body.id}/result.json`]!.lfs, lfs);

      const res = await fetch(`${stack.url}/v1/tasks/${submit.body.id}/result`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(expected), 'exact bytes through the Hub');
    }
  });

  it('retries a failing upload without running the tool again; one result', async function () {
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'flaky hub' } })).body.id;
    oracle.resetStats();
    hub.datasets.failNextUploads(2);
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'large', arguments: { bytes: 1100 * 1024 } } });
    const task = await stack.waitForStatus(token, submit.body.id, ['succeeded', 'failed']);
    assert.equal(task.status, 'succeeded', JSON.stringify(task));
    assert.equal(oracle.callCount('large'), 1, 'the tool ran once');
    const rows = await stack.world.db.selectFrom('results').select('task_id').where('task_id', '=', submit.body.id).execute();
    assert.equal(rows.length, 1);
    const staged = await stack.world.db.selectFrom('result_staging').select('task_id').where('task_id', '=', submit.body.id).execute();
    assert.equal(staged.length, 0, 'staging is cleared once stored');
    const resultEvents = (await stack.world.events.list(submit.body.id, 0)).filter((e) => e.type === 'result');
    assert.equal(resultEvents.length, 1);
  });

  it('a task whose upload finally fails says so and keeps the output', async function () {
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'dead hub' } })).body.id;
    hub.datasets.failNextUploads(1000);
    try {
      const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'large', arguments: { bytes: 1100 * 1024 } } });
      const task = await stack.waitForStatus(token, submit.body.id, ['succeeded', 'failed'], 60_000);
      assert.equal(task.status, 'failed');
      assert.equal(task.error.code, 'ResultNotStored');
      const staged = await stack.world.db.selectFrom('result_staging').select(['size']).where('task_id', '=', submit.body.id).executeTakeFirst();
      assert.equal(Number(staged?.size), expectedBytes(1100 * 1024).length, 'the output is kept');
    } finally {
      hub.datasets.failNextUploads(0);
    }
  });

  it('a pointer whose object is gone answers 410, not 500', async function () {
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'purged' } })).body.id;
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'large', arguments: { bytes: 1100 * 1024 } } });
    await stack.waitForStatus(token, submit.body.id, ['succeeded']);
    hub.datasets.deleteFile(DATASET, `tasks/${submit.body.id}/result.json`);
    const res = await stack.api('GET', `/v1/tasks/${submit.body.id}/result`, { token });
    assert.equal(res.status, 410, res.text);
    assert.equal(res.body.code, 'ResultGone');
  });

  it('the Space token goes only to the Space and the Hub, never to logs, responses or other hosts', async function () {
    const hubRequestsWithSpaceToken = hub.requests().filter((r) => r.authorization === `Bearer ${SPACE_TOKEN}`);
    assert.ok(hubRequestsWithSpaceToken.length > 0);
    assert.ok(
      hubRequestsWithSpaceToken.every((r) => r.path.startsWith('/api/spaces/bob/')),
      `the Space token reached: ${[...new Set(hubRequestsWithSpaceToken.map((r) => r.path))].join(', ')}`,
    );
    const datasetRequests = hub.requests().filter((r) => r.path.includes(DATASET) || r.path.includes('/api/repos/create') || r.path.includes('whoami'));
    assert.ok(datasetRequests.length > 0);
    assert.ok(datasetRequests.every((r) => r.authorization !== `Bearer ${SPACE_TOKEN}`), 'the dataset is written with the platform token');
    assert.ok(oracle.seenAuthorization().every((h) => !h.includes(SPACE_TOKEN)), 'never sent to the oracle');
    assert.equal(stack.logLines.some((l) => l.includes(SPACE_TOKEN) || l.includes(PLATFORM_TOKEN)), false, 'never logged');
    const listed = await stack.api('GET', '/v1/projects', { token });
    for (const p of listed.body.items) {
      const spaces = await stack.api('GET', `/v1/projects/${p.id}/spaces`, { token });
      assert.equal(spaces.text.includes(SPACE_TOKEN), false);
    }
  });
});

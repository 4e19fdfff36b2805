import assert from 'node:assert/strict';
import { callTool } from '../../src/integrations/mcp/call-tool.ts';
import { listTools } from '../../src/integrations/mcp/list-tools.ts';
import {
  SpaceNotFoundError,
  classifyStage,
  createSpacesClient,
  mapSpaceTools,
  waitForSpace,
} from '../../src/integrations/huggingface/spaces.ts';
import type { WaitPhase } from '../../src/integrations/huggingface/spaces.ts';
import { startLocalHub } from '../support/local-hub/index.ts';
import type { LocalHub } from '../support/local-hub/index.ts';
import { startTestMcpServer } from '../support/mcp-test-server.ts';

const BOB = 'hf_bob_token';

function textOf(content: unknown[]): string {
  return content.map((c) => (c as { text: string }).text).join('');
}

function runtimeReads(hub: LocalHub, id: string): number {
  return hub.requests().filter((r) => r.path === `/api/spaces/${id}/runtime`).length;
}

describe('Hugging Face Spaces on the local Hub', function () {
  let hub: LocalHub;

  before(async () => {
    hub = await startLocalHub({ tokens: { [BOB]: 'bob' } });
  });
  after(async () => {
    await hub?.stop();
  });

  it('serves the space info and runtime in the Hub shape, and the client reads them', async () => {
    const space = await hub.spaces.add('bob/scanner');
    const raw = (await (await fetch(`${hub.url}/api/spaces/bob/scanner`)).json()) as Record<string, unknown>;
    assert.equal(raw['id'], 'bob/scanner');
    assert.equal(raw['author'], 'bob');
    assert.equal(raw['private'], false);
    assert.equal(raw['sdk'], 'gradio');
    assert.equal(raw['host'], space.host);
    assert.equal(raw['subdomain'], 'bob-scanner');
    assert.deepEqual((raw['runtime'] as { hardware: unknown }).hardware, { current: 'cpu-basic', requested: 'cpu-basic' });

    const rawRuntime = (await (await fetch(`${hub.url}/api/spaces/bob/scanner/runtime`)).json()) as Record<string, unknown>;
    assert.equal(rawRuntime['stage'], 'RUNNING');

    const client = createSpacesClient({ hubUrl: hub.url });
    assert.deepEqual(await client.info('bob/scanner'), {
      id: 'bob/scanner',
      host: space.host,
      mcpUrl: `${space.host}/gradio_api/mcp/`,
      sseUrl: `${space.host}/gradio_api/mcp/sse`,
      stage: 'RUNNING',
      private: false,
    });
    assert.equal(space.mcpUrl, `${space.host}/gradio_api/mcp/`);
    assert.deepEqual(await client.runtime('bob/scanner'), { stage: 'RUNNING', hardware: 'cpu-basic' });

    // Gradio's endpoints: Streamable HTTP at /gradio_api/mcp/, legacy SSE at /gradio_api/mcp/sse, tools prefixed.
    const tools = await listTools({ url: space.mcpUrl, transport: 'streamable-http' }, { timeoutMs: 5000 });
    assert.ok(tools.some((t) => t.name === 'scanner_echo'), tools.map((t) => t.name).join());
    const viaSse = await callTool({ url: `${space.host}/gradio_api/mcp/sse`, transport: 'sse' }, 'scanner_echo', { text: 'old' }, { timeoutMs: 5000 });
    assert.equal(textOf(viaSse.content), 'old');
    assert.equal(space.mcp.callCount('echo'), 1);
    assert.equal(space.mcp.callCount('scanner_echo'), 1);
  });

  it('reports a missing Space as not found', async () => {
    const client = createSpacesClient({ hubUrl: hub.url });
    await assert.rejects(client.info('bob/nothing-here'), SpaceNotFoundError);
    await assert.rejects(client.runtime('bob/nothing-here', BOB), SpaceNotFoundError);
  });

  it('caches the runtime per Space and token for cacheMs', async () => {
    await hub.spaces.add('bob/cached');
    let clock = 1_000_000;
    const client = createSpacesClient({ hubUrl: hub.url, cacheMs: 5000, now: () => clock });
    const before = runtimeReads(hub, 'bob/cached');
    assert.equal((await client.runtime('bob/cached')).stage, 'RUNNING');
    hub.spaces.setStage('bob/cached', 'PAUSED');
    clock += 4000;
    assert.equal((await client.runtime('bob/cached')).stage, 'RUNNING', 'second read within cacheMs comes from the cache');
    assert.equal(runtimeReads(hub, 'bob/cached'), before + 1);
    // Another token is another cache entry.
    assert.equal((await client.runtime('bob/cached', BOB)).stage, 'PAUSED');
    assert.equal(runtimeReads(hub, 'bob/cached'), before + 2);
    clock += 1500;
    assert.equal((await client.runtime('bob/cached')).stage, 'PAUSED', 'expired entry is read again');
    assert.equal(runtimeReads(hub, 'bob/cached'), before + 3);
    assert.equal((await client.runtime('bob/cached', undefined, { maxAgeMs: 0 })).stage, 'PAUSED');
    assert.equal(runtimeReads(hub, 'bob/cached'), before + 4);
  });

  it('reading the runtime of a sleeping Space does not wake it', async () => {
    const space = await hub.spaces.add('bob/dozy', { stage: 'SLEEPING', wakeDelayMs: 50 });
    const client = createSpacesClient({ hubUrl: hub.url, cacheMs: 0 });
    for (let i = 0; i < 3; i++) assert.equal((await client.runtime('bob/dozy')).stage, 'SLEEPING');
    assert.equal((await client.info('bob/dozy')).stage, 'SLEEPING');
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(hub.spaces.stage('bob/dozy'), 'SLEEPING');
    assert.deepEqual(hub.spaces.hostRequests('bob/dozy'), []);
    assert.equal(space.mcp.callCount(), 0);
  });

  it('wakes a sleeping Space with one request, then its MCP endpoint answers', async () => {
    const space = await hub.spaces.add('bob/sleeper', { stage: 'SLEEPING', wakeDelayMs: 300 });
    const client = createSpacesClient({ hubUrl: hub.url });
    // While asleep the host answers like HF's "Space is sleeping" page.
    const phases: WaitPhase[] = [];
    let beats = 0;
    const result = await waitForSpace({
      spaceId: 'bob/sleeper',
      client,
      host: space.host,
      budgetMs: 10_000,
      pollMs: 50,
      heartbeat: () => beats++,
      onPhase: (p) => phases.push(p),
    });
    assert.deepEqual(result, { ready: true, woke: true, stage: 'RUNNING' });
    assert.deepEqual(phases, ['waking', 'ready']);
    assert.ok(beats >= 3, `heartbeats while waiting: ${beats}`);
    assert.equal(hub.spaces.hostRequests('bob/sleeper').length, 1, 'exactly one request woke it');
    const out = await callTool({ url: space.mcpUrl, transport: 'auto' }, 'sleeper_echo', { text: 'awake' }, { timeoutMs: 5000 });
    assert.equal(textOf(out.content), 'awake');
  });

  it('answers 503 on the host while a Space sleeps or starts', async () => {
    const space = await hub.spaces.add('bob/napper', { stage: 'SLEEPING', wakeDelayMs: 10_000 });
    const first = await fetch(space.mcpUrl, { method: 'POST', body: '{}' });
    assert.equal(first.status, 503);
    await first.body?.cancel();
    assert.equal(hub.spaces.stage('bob/napper'), 'APP_STARTING');
    const second = await fetch(space.mcpUrl, { method: 'POST', body: '{}' });
    assert.equal(second.status, 503);
    await second.body?.cancel();
    hub.spaces.setStage('bob/napper', 'RUNNING');
  });

  it('waits out a build, then reports ready', async () => {
    const space = await hub.spaces.add('bob/builder', { stage: 'BUILDING', buildDelayMs: 300 });
    const phases: string[] = [];
    const result = await waitForSpace({
      spaceId: 'bob/builder',
      client: createSpacesClient({ hubUrl: hub.url }),
      host: space.host,
      budgetMs: 10_000,
      pollMs: 50,
      onPhase: (p, stage) => phases.push(`${p}:${stage}`),
    });
    assert.deepEqual(result, { ready: true, woke: false, stage: 'RUNNING' });
    assert.deepEqual(phases, ['waiting_for_build:BUILDING', 'ready:RUNNING']);
    assert.deepEqual(hub.spaces.hostRequests('bob/builder'), [], 'waiting for a build does not touch the host');
  });

  for (const stage of ['PAUSED', 'RUNTIME_ERROR'] as const) {
    it(`gives up at once, permanently, on a ${stage} Space without touching it`, async () => {
      const id = `bob/broken-${stage.toLowerCase().replace('_', '-')}`;
      const space = await hub.spaces.add(id, { stage });
      const phases: string[] = [];
      const started = Date.now();
      const result = await waitForSpace({
        spaceId: id,
        client: createSpacesClient({ hubUrl: hub.url }),
        host: space.host,
        budgetMs: 10_000,
        pollMs: 50,
        onPhase: (p) => phases.push(p),
      });
      assert.deepEqual(result, { ready: false, stage, reason: `the Space ${id} is ${stage}`, permanent: true });
      assert.deepEqual(phases, ['unavailable']);
      assert.ok(Date.now() - started < 2000);
      assert.deepEqual(hub.spaces.hostRequests(id), []);
      // The host itself never wakes from these.
      const res = await fetch(space.mcpUrl, { method: 'POST', body: '{}' });
      assert.equal(res.status, 503);
      await res.body?.cancel();
      assert.equal(hub.spaces.stage(id), stage);
    });
  }

  it('gives up, not permanently, when the budget is too short', async () => {
    const space = await hub.spaces.add('bob/slowpoke', { stage: 'SLEEPING', wakeDelayMs: 5000 });
    const result = await waitForSpace({
      spaceId: 'bob/slowpoke',
      client: createSpacesClient({ hubUrl: hub.url }),
      host: space.host,
      budgetMs: 300,
      pollMs: 50,
    });
    assert.deepEqual(result, {
      ready: false,
      stage: 'APP_STARTING',
      reason: 'the Space bob/slowpoke did not start within 300 ms (last stage APP_STARTING)',
      permanent: false,
    });
    hub.spaces.setStage('bob/slowpoke', 'RUNNING');
  });

  it('stops waiting when the signal aborts', async () => {
    const space = await hub.spaces.add('bob/forever', { stage: 'BUILDING' });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('cancelled')), 150);
    await assert.rejects(
      waitForSpace({
        spaceId: 'bob/forever',
        client: createSpacesClient({ hubUrl: hub.url }),
        host: space.host,
        budgetMs: 60_000,
        pollMs: 50,
        signal: controller.signal,
      }),
      /cancelled/,
    );
  });

  it('a private Space works with its token and is not found without it', async () => {
    const space = await hub.spaces.add('bob/secret', { private: true, token: BOB, stage: 'SLEEPING', wakeDelayMs: 100 });
    const client = createSpacesClient({ hubUrl: hub.url });
    await assert.rejects(client.info('bob/secret'), (e: unknown) => {
      assert.ok(e instanceof SpaceNotFoundError);
      assert.match(e.message, /not found or is not accessible/);
      return true;
    });
    await assert.rejects(client.runtime('bob/secret'), SpaceNotFoundError);
    await assert.rejects(client.info('bob/secret', 'hf_someone_else'), (e: unknown) => {
      assert.ok(e instanceof SpaceNotFoundError);
      assert.ok(!e.message.includes('hf_someone_else'), 'the token stays out of messages');
      return true;
    });

    // Without the token the host neither answers nor wakes.
    const anon = await fetch(space.mcpUrl, { method: 'POST', body: '{}' });
    assert.equal(anon.status, 404);
    await anon.body?.cancel();
    assert.equal(hub.spaces.stage('bob/secret'), 'SLEEPING');

    const info = await client.info('bob/secret', BOB);
    assert.equal(info.private, true);
    assert.equal(info.host, space.host);
    const result = await waitForSpace({ spaceId: 'bob/secret', token: BOB, client, host: info.host, budgetMs: 10_000, pollMs: 50 });
    assert.deepEqual(result, { ready: true, woke: true, stage: 'RUNNING' });
    const out = await callTool(
      { url: info.mcpUrl, transport: 'auto', headers: { Authorization: `Bearer ${BOB}` } },
      'secret_whoami',
      {},
      { timeoutMs: 5000 },
    );
    assert.equal(textOf(out.content), 'bob/secret');
    const hostAuth = hub.spaces.hostRequests('bob/secret').map((r) => r.authorization);
    assert.equal(hostAuth[0], undefined);
    assert.ok(hostAuth.slice(1).every((a) => a === `Bearer ${BOB}`));
  });

  it('classifies every stage', () => {
    const expected: Record<string, string> = {
      RUNNING: 'ready',
      RUNNING_BUILDING: 'ready',
      RUNNING_APP_STARTING: 'ready',
      SLEEPING: 'asleep',
      STOPPED: 'asleep',
      BUILDING: 'starting',
      APP_STARTING: 'starting',
      PAUSED: 'unavailable',
      RUNTIME_ERROR: 'unavailable',
      BUILD_ERROR: 'unavailable',
      CONFIG_ERROR: 'unavailable',
      NO_APP_FILE: 'unavailable',
      DELETING: 'unavailable',
      SOMETHING_NEW: 'unavailable',
    };
    for (const [stage, cls] of Object.entries(expected)) assert.equal(classifyStage(stage), cls, stage);
  });

  it('maps server tools to the Space tools', () => {
    // Exact names win over prefixed ones.
    assert.deepEqual(mapSpaceTools(['echo', 'scan'], ['echo', 'scanner_echo', 'scanner_scan'], 'bob/scanner'), {
      map: { echo: 'echo', scan: 'scanner_scan' },
      missing: [],
    });
    // Gradio's prefix from a Space name with a hyphen.
    assert.deepEqual(mapSpaceTools(['ocr'], ['image_tools_ocr', 'image_tools_resize'], 'bob/image-tools'), {
      map: { ocr: 'image_tools_ocr' },
      missing: [],
    });
    // A unique *_<tool> suffix, under some other prefix.
    assert.deepEqual(mapSpaceTools(['ocr'], ['renamed_ocr', 'other'], 'bob/scanner'), { map: { ocr: 'renamed_ocr' }, missing: [] });
    // An ambiguous suffix is no match; absent tools are missing.
    assert.deepEqual(mapSpaceTools(['ocr', 'gone'], ['a_ocr', 'b_ocr'], 'bob/scanner'), { map: {}, missing: ['ocr', 'gone'] });
  });

  it('maps the tools a Space lists over MCP', async () => {
    const space = await hub.spaces.add('bob/mapper');
    const tools = (await listTools({ url: space.mcpUrl, transport: 'auto' }, { timeoutMs: 5000 })).map((t) => t.name);
    assert.deepEqual(mapSpaceTools(['echo', 'slow', 'transcribe'], tools, 'bob/mapper'), {
      map: { echo: 'mapper_echo', slow: 'mapper_slow' },
      missing: ['transcribe'],
    });
  });
});

describe('test MCP server options', function () {
  it('keeps its defaults without options', async () => {
    const s = await startTestMcpServer();
    try {
      assert.equal(s.url, `${s.origin}/mcp`);
      assert.equal(s.sseUrl, `${s.origin}/sse`);
      const tools = (await listTools({ url: s.url, transport: 'streamable-http' }, { timeoutMs: 5000 })).map((t) => t.name);
      assert.deepEqual(tools.sort(), ['echo', 'fail', 'large', 'slow', 'whoami']);
      const out = await callTool({ url: s.sseUrl, transport: 'sse' }, 'echo', { text: 'hi' }, { timeoutMs: 5000 });
      assert.equal(textOf(out.content), 'hi');
      const gradio = await fetch(`${s.origin}/gradio_api/mcp/`, { method: 'POST', body: '{}' });
      assert.equal(gradio.status, 404);
      await gradio.body?.cancel();
    } finally {
      await s.stop();
    }
  });

  it('serves Gradio paths, prefixes tools and lets a gate answer first', async () => {
    let closed = true;
    const s = await startTestMcpServer({
      basePath: '/gradio_api/mcp/',
      toolPrefix: 'x_',
      gate: () => (closed ? { status: 503, body: 'closed' } : undefined),
    });
    try {
      assert.equal(s.url, `${s.origin}/gradio_api/mcp/`);
      assert.equal(s.sseUrl, `${s.origin}/gradio_api/mcp/sse`);
      const res = await fetch(s.url, { method: 'POST', body: '{}' });
      assert.equal(res.status, 503);
      assert.equal(await res.text(), 'closed');
      closed = false;
      const streamed = (await listTools({ url: s.url, transport: 'streamable-http' }, { timeoutMs: 5000 })).map((t) => t.name);
      assert.deepEqual(streamed.sort(), ['x_echo', 'x_fail', 'x_large', 'x_slow', 'x_whoami']);
      const out = await callTool({ url: s.sseUrl, transport: 'sse' }, 'x_echo', { text: 'legacy' }, { timeoutMs: 5000 });
      assert.equal(textOf(out.content), 'legacy');
      const old = await fetch(`${s.origin}/mcp`, { method: 'POST', body: '{}' });
      assert.equal(old.status, 404);
      await old.body?.cancel();
    } finally {
      await s.stop();
    }
  });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, CreateTaskResultSchema, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Registry } from 'prom-client';
import { createApp } from '../../src/api/app.ts';
import { createWorld } from '../../src/compose.ts';
import { freePort } from '../../src/lib/free-port.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { largeText, startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';
import { until } from '../support/until.ts';

// The orchestrator as an MCP server: a real SDK client over Streamable HTTP against the real stack (Postgres, Redis,
// Temporal, a worker, MCP servers on 127.0.0.1). Each tools/call is a durable task; MCP tasks are our tasks.

const INLINE_MAX = 2000;
// A real third-party client: the MCP Inspector's command line, run by node as a child process.
const INSPECTOR_CLI = createRequire(import.meta.url).resolve('@modelcontextprotocol/inspector-cli/build/index.js');
// It finds its own package.json by testing a path relative to the working directory and importing it relative to
// itself: run it from its build folder so both agree.
const runFile = promisify(execFile);
const run = (file: string, args: string[], opts: { timeout: number }) => runFile(file, args, { ...opts, cwd: path.dirname(INSPECTOR_CLI) });

describe('MCP endpoint: the orchestrator as an MCP server', function () {
  let stack: Stack;
  let alpha: TestMcpServer;
  let beta: TestMcpServer;
  let solo: TestMcpServer;
  let alice: string;
  let mallory: string;
  let projectId: string;
  const clients: Client[] = [];

  before(async function () {
    [alpha, beta, solo] = await Promise.all([
      startTestMcpServer({ name: 'alpha' }),
      startTestMcpServer({ name: 'beta' }),
      startTestMcpServer({ name: 'solo', toolPrefix: 'solo_' }),
    ]);
    stack = await startStack({ env: { RESULT_INLINE_MAX_BYTES: String(INLINE_MAX) } });
    [alice, mallory] = await Promise.all([stack.token('alice'), stack.token('mallory')]);
    for (const body of [
      { name: 'alpha', oracleUrl: alpha.url },
      { name: 'beta', oracleUrl: beta.url },
      // Heavy work meant for the project's Space, which is not bound: running it on the oracle needs consent.
      { name: 'solo', oracleUrl: solo.url, canRunOnUserSpace: true, fallbackToOracle: true, heavyTools: ['solo_whoami'] },
    ]) {
      const r = await stack.api('POST', '/v1/mcps', { token: alice, body });
      assert.equal(r.status, 201, r.text);
    }
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'mcp-p' } })).body.id;
  });

  after(async function () {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await stack?.stop();
    await Promise.all([alpha?.stop(), beta?.stop(), solo?.stop()]);
  });

  async function connect(token: string, base = stack.url, project = projectId): Promise<Client> {
    const client = new Client({ name: 'mcp-endpoint-test', version: '1.0.0' }, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp/projects/${project}`), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    await client.connect(transport);
    clients.push(client);
    return client;
  }

  async function pollUntil(client: Client, taskId: string, statuses: string[], timeoutMs = 30_000) {
    let last: any;
    await until(`task ${taskId} in ${statuses.join('|')}`, async () => {
      last = await client.experimental.tasks.getTask(taskId);
      return statuses.includes(last.status);
    }, timeoutMs, 100);
    return last;
  }

  it('declares tools and tasks; lists the routable tools with unique names, input schemas and taskSupport', async function () {
    const client = await connect(alice);
    const caps = client.getServerCapabilities();
    assert.ok(caps?.tools);
    assert.deepEqual(caps?.tasks?.requests?.tools?.call, {});
    assert.ok(caps?.tasks?.list && caps?.tasks?.cancel);

    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name).sort();
    // alpha and beta offer the same tools: each is named after its server; solo's are unique and keep their names.
    for (const t of ['echo', 'slow', 'large', 'fail', 'whoami']) {
      assert.ok(names.includes(`alpha__${t}`) && names.includes(`beta__${t}`), `${t} qualified: ${names.join(',')}`);
      assert.ok(!names.includes(t));
      assert.ok(names.includes(`solo_${t}`));
    }
    assert.ok(names.includes('consent'));
    assert.equal(new Set(names).size, names.length);
    const echo = tools.find((t) => t.name === 'solo_echo')!;
    assert.equal(echo.inputSchema.type, 'object');
    assert.deepEqual(Object.keys(echo.inputSchema.properties ?? {}), ['text']);
    assert.equal(echo.execution?.taskSupport, 'optional');
    assert.equal(tools.find((t) => t.name === 'consent')!.execution?.taskSupport, 'forbidden');
  });

  it('tools/call runs as a durable task: the result, progress notifications, and the task recorded like a REST one', async function () {
    const client = await connect(alice);
    const progress: Array<{ progress: number; total?: number }> = [];
    const result = await client.callTool({ name: 'solo_slow', arguments: { ms: 600, steps: 3 } }, CallToolResultSchema, {
      onprogress: (p) => progress.push(p),
    });
    assert.equal(result.isError, undefined);
    assert.match((result.content as any)[0].text, /^done after \d+ ms$/);
    assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3]);
    assert.equal(progress[0]!.total, 3);

    const taskId = (result._meta as any)['io.modelcontextprotocol/related-task'].taskId;
    const rest = await stack.api('GET', `/v1/tasks/${taskId}`, { token: alice });
    assert.equal(rest.status, 200);
    assert.equal(rest.body.status, 'succeeded');
    assert.equal(rest.body.tool, 'solo_slow');
    assert.equal(rest.body.projectId, projectId);
    assert.equal(solo.callCount('slow'), 1);

    // A qualified name runs the tool of that name; a bad argument is the tool's answer, not a protocol failure.
    const echoed = await client.callTool({ name: 'alpha__echo', arguments: { text: 'hi' } });
    assert.deepEqual(echoed.content, [{ type: 'text', text: 'hi' }]);
    const bad = await client.callTool({ name: 'solo_echo', arguments: { text: 42 } });
    assert.equal(bad.isError, true);
    assert.match((bad.content as any)[0].text, /^InvalidArguments/);
    await assert.rejects(client.callTool({ name: 'nope', arguments: {} }), /unknown tool "nope"/);
  });

  it('a result over the inline limit comes back as a resource_link the same bearer can fetch', async function () {
    const client = await connect(alice);
    const result = await client.callTool({ name: 'solo_large', arguments: { bytes: INLINE_MAX * 3 } });
    const link = (result.content as any[])[0];
    assert.equal(link.type, 'resource_link');
    assert.match(link.uri, new RegExp(`^${stack.url}/v1/tasks/[0-9a-f-]{36}/result$`));
    assert.ok(link.size > INLINE_MAX);
    const fetched = await fetch(link.uri, { headers: { Authorization: `Bearer ${alice}` } });
    assert.equal(fetched.status, 200);
    const body = JSON.parse(await fetched.text());
    assert.equal(body.content[0].text, largeText(INLINE_MAX * 3));
  });

  it('call as an MCP task: the task id is ours, tasks/get polls it, tasks/result returns the result, tasks/list shows it', async function () {
    const client = await connect(alice);
    const created = await client.request(
      { method: 'tools/call', params: { name: 'solo_slow', arguments: { ms: 800, steps: 2 }, task: { ttl: 60_000 } } },
      CreateTaskResultSchema,
    );
    const { taskId } = created.task;
    assert.equal(created.task.status, 'working');
    assert.equal((await stack.api('GET', `/v1/tasks/${taskId}`, { token: alice })).status, 200, 'the MCP task id is the task id');
    const done = await pollUntil(client, taskId, ['completed']);
    assert.equal(done.ttl, null);
    const result = await client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema);
    assert.match((result.content as any)[0].text, /^done after/);
    const listed = await client.experimental.tasks.listTasks();
    assert.ok(listed.tasks.some((t) => t.taskId === taskId && t.status === 'completed'));
    // A tool that fails: the task fails, and its result says why.
    const failing = await client.request({ method: 'tools/call', params: { name: 'solo_fail', arguments: { message: 'nope' }, task: {} } }, CreateTaskResultSchema);
    const failed = await pollUntil(client, failing.task.taskId, ['failed']);
    assert.ok(failed.statusMessage);
    const failedResult = await client.experimental.tasks.getTaskResult(failing.task.taskId, CallToolResultSchema);
    assert.equal(failedResult.isError, true);
  });

  it('a task outlives the API process: a new API on the same database and Temporal answers tasks/get and tasks/result', async function () {
    const first = await connect(alice);
    const created = await first.request({ method: 'tools/call', params: { name: 'solo_slow', arguments: { ms: 2500, steps: 5 }, task: {} } }, CreateTaskResultSchema);
    const { taskId } = created.task;
    await first.close();

    // A second API process: its own world (connections, caches) built from the same configuration, its own port.
    const world = await createWorld(stack.config, { log: createLogger({ level: 'silent', name: 'api-2' }), metricsRegistry: new Registry() });
    const app = createApp({ ...world, maxRequestBytes: stack.config.limits.maxRequestBytes, sseHeartbeatMs: stack.config.sseHeartbeatMs });
    const port = await freePort();
    const server = http.createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    try {
      const second = await connect(alice, `http://127.0.0.1:${port}`);
      const seen = await second.experimental.tasks.getTask(taskId);
      assert.ok(['working', 'completed'].includes(seen.status), seen.status);
      // tasks/result blocks until the task ends, then answers with its result.
      const result = await second.experimental.tasks.getTaskResult(taskId, CallToolResultSchema);
      assert.match((result.content as any)[0].text, /^done after/);
      assert.equal((await second.experimental.tasks.getTask(taskId)).status, 'completed');
      await second.close();
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await world.close();
    }
  });

  it('tasks/cancel cancels the execution', async function () {
    const client = await connect(alice);
    const created = await client.request({ method: 'tools/call', params: { name: 'solo_slow', arguments: { ms: 30_000, steps: 30 }, task: {} } }, CreateTaskResultSchema);
    const { taskId } = created.task;
    await until('the tool is running', () => solo.callCount('slow') > 0 && true, 20_000);
    await pollUntil(client, taskId, ['working']);
    const canceled = await client.experimental.tasks.cancelTask(taskId);
    assert.equal(canceled.status, 'cancelled');
    assert.equal((await stack.api('GET', `/v1/tasks/${taskId}`, { token: alice })).body.status, 'canceled');
    await assert.rejects(client.experimental.tasks.cancelTask(taskId), /terminal status/);
  });

  it('awaiting consent is input_required with a message; the consent tool grants (the task then completes) or denies', async function () {
    const client = await connect(alice);
    const logs: unknown[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params.data));

    const granted = await client.request({ method: 'tools/call', params: { name: 'solo_whoami', arguments: {}, task: {} } }, CreateTaskResultSchema);
    const waiting = await pollUntil(client, granted.task.taskId, ['input_required']);
    assert.match(waiting.statusMessage, /consent/);
    assert.ok(waiting.statusMessage.includes(granted.task.taskId));
    // Nobody else can answer for it.
    const other = await connect(mallory, stack.url, (await stack.api('POST', '/v1/projects', { token: mallory, body: { name: 'm' } })).body.id);
    const stranger = await other.callTool({ name: 'consent', arguments: { taskId: granted.task.taskId, grant: true } });
    assert.equal(stranger.isError, true);
    assert.match((stranger.content as any)[0].text, /TaskNotFound/);

    const answer = await client.callTool({ name: 'consent', arguments: { taskId: granted.task.taskId, grant: true } });
    assert.equal(answer.isError, undefined, JSON.stringify(answer));
    assert.equal((answer.structuredContent as any).consent, 'granted');
    await pollUntil(client, granted.task.taskId, ['completed']);
    const result = await client.experimental.tasks.getTaskResult(granted.task.taskId, CallToolResultSchema);
    assert.deepEqual(result.content, [{ type: 'text', text: 'solo' }]);

    const denied = await client.request({ method: 'tools/call', params: { name: 'solo_whoami', arguments: {}, task: {} } }, CreateTaskResultSchema);
    await pollUntil(client, denied.task.taskId, ['input_required']);
    const no = await client.callTool({ name: 'consent', arguments: { taskId: denied.task.taskId, grant: false } });
    assert.equal(no.isError, undefined);
    const ended = await pollUntil(client, denied.task.taskId, ['failed', 'cancelled']);
    assert.match(ended.statusMessage, /consent/i);
    const again = await client.callTool({ name: 'consent', arguments: { taskId: denied.task.taskId, grant: true } });
    assert.equal(again.isError, true, 'no longer awaiting consent');
  });

  it('401 without a bearer names the protected-resource metadata, which is served (RFC 9728)', async function () {
    const path = `/mcp/projects/${projectId}`;
    const res = await stack.api('POST', path, { body: { jsonrpc: '2.0', id: 1, method: 'tools/list' } });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    const metadataUrl = `${stack.url}/.well-known/oauth-protected-resource${path}`;
    assert.equal(res.headers.get('www-authenticate'), `Bearer resource_metadata="${metadataUrl}"`);
    const bad = await stack.api('POST', path, { token: 'x.y.z', body: { jsonrpc: '2.0', id: 1, method: 'tools/list' } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token".*, resource_metadata="[^"]+"$/);

    const metadata = await fetch(metadataUrl);
    assert.equal(metadata.status, 200);
    assert.deepEqual(await metadata.json(), { resource: `${stack.url}${path}`, resource_name: 'orchestrator', bearer_methods_supported: ['header'] });
    const root = await (await fetch(`${stack.url}/.well-known/oauth-protected-resource`)).json();
    assert.equal(root.resource, stack.url);
    await assert.rejects(connect('not-a-token'));
  });

  it('a non-member gets 404 as on the REST routes; GET and DELETE get 405 problems (no sessions)', async function () {
    const res = await stack.api('POST', `/mcp/projects/${projectId}`, {
      token: mallory,
      headers: { Accept: 'application/json, text/event-stream' },
      body: { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    });
    assert.equal(res.status, 404);
    assert.equal(res.body.code, 'ProjectNotFound');
    await assert.rejects(connect(mallory), /404|Not Found/);
    for (const method of ['GET', 'DELETE']) {
      const r = await stack.api(method, `/mcp/projects/${projectId}`, { token: alice });
      assert.equal(r.status, 405, `${method}: ${r.text}`);
      assert.equal(r.headers.get('content-type'), 'application/problem+json');
      assert.equal(r.headers.get('allow'), 'POST');
    }
  });

  it('a third-party client, the MCP Inspector CLI, lists the tools and calls one', async function () {
    const target = [`${stack.url}/mcp/projects/${projectId}`, '--transport', 'http', '--header', `Authorization: Bearer ${alice}`];
    const listed = await run(process.execPath, [INSPECTOR_CLI, ...target, '--method', 'tools/list'], { timeout: 60_000 });
    const names = (JSON.parse(listed.stdout).tools as Array<{ name: string }>).map((t) => t.name);
    assert.ok(names.includes('solo_echo') && names.includes('alpha__echo') && names.includes('consent'), names.join(','));

    const before = solo.callCount('echo');
    const called = await run(process.execPath, [INSPECTOR_CLI, ...target, '--method', 'tools/call', '--tool-name', 'solo_echo', '--tool-arg', 'text=from the inspector'], { timeout: 60_000 });
    const result = JSON.parse(called.stdout);
    assert.deepEqual(result.content, [{ type: 'text', text: 'from the inspector' }]);
    assert.equal(solo.callCount('echo'), before + 1);
    const taskId = result._meta['io.modelcontextprotocol/related-task'].taskId;
    assert.equal((await stack.api('GET', `/v1/tasks/${taskId}`, { token: alice })).body.status, 'succeeded');

    // Without a token it fails, and says so.
    await assert.rejects(run(process.execPath, [INSPECTOR_CLI, `${stack.url}/mcp/projects/${projectId}`, '--transport', 'http', '--method', 'tools/list'], { timeout: 60_000 }));
  });
});

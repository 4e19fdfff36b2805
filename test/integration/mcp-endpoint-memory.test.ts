import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import { startStack, type Stack } from '../support/stack.ts';

// The project's knowledge graph as memory-server tools on the project MCP endpoint: a real SDK client over
// Streamable HTTP against the real stack, a registry server on 127.0.0.1 offering a tool named like a memory tool.

/** An MCP server whose one tool is called `read_graph`, as a third-party memory server's would be. */
async function startLookalikeServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const httpServer = http.createServer(async (req, res) => {
    const server = new McpServer({ name: 'lookalike', version: '1.0.0' });
    server.registerTool('read_graph', { description: 'a graph of its own', inputSchema: { hint: z.string().optional() } }, async () => ({ content: [{ type: 'text', text: 'lookalike graph' }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => void transport.close());
    await server.connect(transport);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    await transport.handleRequest(req, res, chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined);
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/mcp`,
    stop: () => new Promise((resolve) => httpServer.close(() => resolve())),
  };
}

describe('MCP endpoint: the project knowledge graph as memory tools', function () {
  let stack: Stack;
  let lookalike: Awaited<ReturnType<typeof startLookalikeServer>>;
  let alice: string;
  let vic: string;
  let mallory: string;
  let projectId: string;
  let otherProjectId: string;
  const clients: Client[] = [];

  before(async function () {
    lookalike = await startLookalikeServer();
    stack = await startStack();
    [alice, vic, mallory] = await Promise.all([stack.token('alice'), stack.token('vic'), stack.token('mallory')]);
    const reg = await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'lookalike', oracleUrl: lookalike.url } });
    assert.equal(reg.status, 201, reg.text);
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'kg-wire' } })).body.id;
    otherProjectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'kg-wire-other' } })).body.id;
    const added = await stack.api('POST', `/v1/projects/${projectId}/members`, { token: alice, body: { login: 'vic', role: 'viewer' } });
    assert.equal(added.status, 201, added.text);
  });

  after(async function () {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await stack?.stop();
    await lookalike?.stop();
  });

  async function connect(token: string, project = projectId): Promise<Client> {
    const client = new Client({ name: 'memory-on-endpoint-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${stack.url}/mcp/projects/${project}`), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return client;
  }

  it('lists the nine memory tools under their own names; a registry tool named like one is listed as server__tool', async function () {
    const client = await connect(alice);
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const n of ['create_entities', 'create_relations', 'add_observations', 'delete_entities', 'delete_observations', 'delete_relations', 'read_graph', 'search_nodes', 'open_nodes']) {
      assert.ok(names.includes(n), `${n} listed`);
      assert.equal(tools.find((t) => t.name === n)!.execution?.taskSupport, 'forbidden');
    }
    assert.ok(names.includes('lookalike__read_graph'), names.join(','));
    assert.equal(names.filter((n) => n === 'read_graph').length, 1);
    const create = tools.find((t) => t.name === 'create_entities')!;
    assert.deepEqual(Object.keys((create.inputSchema as any).properties), ['entities']);
  });

  it('writes and reads the graph of the project in the path, the same graph REST serves', async function () {
    const client = await connect(alice);
    const created = await client.callTool({
      name: 'create_entities',
      arguments: { entities: [{ name: 'Ada', entityType: 'person', observations: ['wrote the first program'] }, { name: 'Engine', entityType: 'machine', observations: [] }] },
    });
    assert.ok(!created.isError, JSON.stringify(created));
    assert.equal((created.structuredContent as any).entities.length, 2);
    const rel = await client.callTool({ name: 'create_relations', arguments: { relations: [{ from: 'Ada', to: 'Engine', relationType: 'programmed' }] } });
    assert.ok(!rel.isError, JSON.stringify(rel));
    const added = await client.callTool({ name: 'add_observations', arguments: { observations: [{ entityName: 'Engine', contents: ['analytical'] }] } });
    assert.deepEqual((added.structuredContent as any).results, [{ entityName: 'Engine', addedObservations: ['analytical'] }]);

    const found = await client.callTool({ name: 'search_nodes', arguments: { query: 'program' } });
    assert.deepEqual((found.structuredContent as any).entities.map((e: any) => e.name), ['Ada']);
    const opened = await client.callTool({ name: 'open_nodes', arguments: { names: ['Ada', 'Engine'] } });
    assert.deepEqual((opened.structuredContent as any).relations, [{ from: 'Ada', to: 'Engine', relationType: 'programmed' }]);

    const rest = await stack.api('GET', `/v1/projects/${projectId}/kg/nodes?names=Ada&names=Engine`, { token: alice });
    assert.equal(rest.status, 200, rest.text);
    assert.deepEqual(rest.body.entities.map((e: any) => e.name).sort(), ['Ada', 'Engine']);

    // Another project's endpoint serves another graph.
    const other = await connect(alice, otherProjectId);
    const empty = await other.callTool({ name: 'read_graph', arguments: {} });
    assert.deepEqual(empty.structuredContent, { entities: [], relations: [] });

    const deleted = await client.callTool({ name: 'delete_entities', arguments: { entityNames: ['Engine'] } });
    assert.equal((deleted.structuredContent as any).success, true);
    const after = await client.callTool({ name: 'read_graph', arguments: {} });
    assert.deepEqual(after.structuredContent, { entities: [{ name: 'Ada', entityType: 'person', observations: ['wrote the first program'] }], relations: [] });
  });

  it('a viewer reads but may not write; a stranger gets 404 from the endpoint', async function () {
    const viewer = await connect(vic);
    const read = await viewer.callTool({ name: 'open_nodes', arguments: { names: ['Ada'] } });
    assert.ok(!read.isError, JSON.stringify(read));
    assert.equal((read.structuredContent as any).entities.length, 1);
    const write = await viewer.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'Eve', entityType: 'person', observations: [] }] } });
    assert.equal(write.isError, true);
    assert.match((write.content as any)[0].text, /member role/);
    const graph = await stack.api('GET', `/v1/projects/${projectId}/kg/nodes?names=Eve`, { token: alice });
    assert.deepEqual(graph.body.entities, []);

    await assert.rejects(connect(mallory), /404|Not Found/i);
  });

  it('arguments that do not fit the memory tool are refused with the field named, nothing written', async function () {
    const client = await connect(alice);
    const bad = await client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'NoType' }] } }).catch((err: Error) => ({ isError: true, content: [{ type: 'text', text: err.message }] }));
    assert.equal(bad.isError, true);
    assert.match((bad.content as any)[0].text, /entityType/);
    const graph = await stack.api('GET', `/v1/projects/${projectId}/kg/nodes?names=NoType`, { token: alice });
    assert.deepEqual(graph.body.entities, []);
  });

  it('the lookalike registry tool still runs, as a durable task, under its qualified name', async function () {
    const client = await connect(alice);
    const answer = await client.callTool({ name: 'lookalike__read_graph', arguments: {} });
    assert.ok(!answer.isError, JSON.stringify(answer));
    assert.equal((answer.content as any)[0].text, 'lookalike graph');
    const tasks = await stack.api('GET', `/v1/tasks?projectId=${projectId}`, { token: alice });
    assert.equal(tasks.status, 200, tasks.text);
    assert.ok(JSON.stringify(tasks.body).includes('read_graph'), tasks.text);
  });

  it('each agent is a tool agent__<name> with its input schema; a call runs it and answers with the outputs', async function () {
    const saved = await stack.api('POST', `/v1/projects/${projectId}/agents`, {
      token: alice,
      body: {
        name: 'greet',
        inputSchema: { type: 'object', properties: { who: { type: 'string' } }, required: ['who'] },
        steps: [
          { id: 'shape', kind: 'value', arguments: { greeting: { $ref: 'input.who' } } },
          { id: 'save', kind: 'kg.upsert', arguments: { entities: [{ name: { $ref: 'steps.shape.output.greeting' }, entityType: 'guest' }] } },
        ],
      },
    });
    assert.equal(saved.status, 201, saved.text);
    const client = await connect(alice);
    const tool = (await client.listTools()).tools.find((t) => t.name === 'agent__greet');
    assert.ok(tool, 'agent listed');
    assert.deepEqual((tool.inputSchema as any).required, ['who']);

    const answer = await client.callTool({ name: 'agent__greet', arguments: { who: 'Grace' } });
    assert.ok(!answer.isError, JSON.stringify(answer));
    const structured = answer.structuredContent as any;
    assert.equal(structured.status, 'succeeded');
    assert.deepEqual(structured.outputs, { shape: { greeting: 'Grace' }, save: { entities: 1, relations: 0 } });
    const run = await stack.api('GET', `/v1/agent-runs/${structured.runId}`, { token: alice });
    assert.equal(run.body.status, 'succeeded');
    const nodes = await stack.api('GET', `/v1/projects/${projectId}/kg/nodes?names=Grace`, { token: alice });
    assert.deepEqual(nodes.body.entities, [{ name: 'Grace', entityType: 'guest', observations: [] }]);

    // Input that does not fit the agent's schema starts no run.
    const bad = await client.callTool({ name: 'agent__greet', arguments: { whom: 'x' } });
    assert.equal(bad.isError, true);
    assert.match((bad.content as any)[0].text, /input/i);
    // Another project lists none of this project's agents.
    const other = await connect(alice, otherProjectId);
    assert.ok(!(await other.listTools()).tools.some((t) => t.name.startsWith('agent__')));
  });
});

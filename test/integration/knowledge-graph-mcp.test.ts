import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { PROJECT_ROOT } from '../../src/compose.ts';
import { KG_LIMITS } from '../../src/core/knowledge-graph-model.ts';
import { MEMORY_TOOL_NAMES } from '../../src/integrations/mcp/memory-tools.ts';
import { startStack, type Stack } from '../support/stack.ts';

// The same scripted calls against the reference memory server (spawned over stdio, its JSONL file in a temp folder)
// and against a project's graph on /v1/projects/:id/kg/mcp: every answer and the final graph must agree.

const REFERENCE_SERVER = path.join(PROJECT_ROOT, 'node_modules/@modelcontextprotocol/server-memory/dist/index.js');

type Call = { tool: string; args: Record<string, unknown>; unordered?: boolean };

const SCRIPT: Call[] = [
  { tool: 'create_entities', args: { entities: [{ name: 'alice', entityType: 'person', observations: ['likes tea', 'lives in Ghent'] }, { name: 'acme', entityType: 'company', observations: ['makes anvils'] }, { name: 'bob', entityType: 'person', observations: [] }] } },
  { tool: 'create_entities', args: { entities: [{ name: 'alice', entityType: 'robot', observations: ['ignored'] }, { name: 'carol', entityType: 'person', observations: ['TEA drinker'] }] } },
  { tool: 'create_relations', args: { relations: [{ from: 'alice', to: 'acme', relationType: 'works_at' }, { from: 'bob', to: 'alice', relationType: 'knows' }] } },
  { tool: 'create_relations', args: { relations: [{ from: 'alice', to: 'acme', relationType: 'works_at' }, { from: 'carol', to: 'bob', relationType: 'knows' }, { from: 'carol', to: 'nobody-yet', relationType: 'follows' }] } },
  { tool: 'add_observations', args: { observations: [{ entityName: 'alice', contents: ['likes tea', 'speaks Dutch'] }, { entityName: 'bob', contents: ['plays chess'] }] } },
  { tool: 'add_observations', args: { observations: [{ entityName: 'bob', contents: ['never stored'] }, { entityName: 'ghost', contents: ['x'] }] } },
  { tool: 'search_nodes', args: { query: 'tea' }, unordered: true },
  { tool: 'search_nodes', args: { query: 'PERSON' }, unordered: true },
  { tool: 'search_nodes', args: { query: 'anvil' }, unordered: true },
  { tool: 'search_nodes', args: { query: 'no such thing' }, unordered: true },
  { tool: 'open_nodes', args: { names: ['alice', 'ghost'] } },
  { tool: 'delete_observations', args: { deletions: [{ entityName: 'alice', observations: ['lives in Ghent'] }, { entityName: 'ghost', observations: ['x'] }] } },
  { tool: 'delete_relations', args: { relations: [{ from: 'bob', to: 'alice', relationType: 'knows' }, { from: 'x', to: 'y', relationType: 'z' }] } },
  { tool: 'delete_entities', args: { entityNames: ['acme', 'ghost'] } },
  { tool: 'read_graph', args: {} },
];

interface Answer {
  isError: boolean;
  structured: unknown;
  text: string;
}

async function call(client: Client, c: Call): Promise<Answer> {
  const res = (await client.callTool({ name: c.tool, arguments: c.args })) as { isError?: boolean; structuredContent?: any; content: Array<{ type: string; text: string }> };
  let structured = res.structuredContent ?? null;
  if (c.unordered && structured) {
    const byJson = (a: unknown, b: unknown) => JSON.stringify(a).localeCompare(JSON.stringify(b));
    structured = { entities: [...structured.entities].sort(byJson), relations: [...structured.relations].sort(byJson) };
  }
  return { isError: res.isError === true, structured, text: res.content[0]?.text ?? '' };
}

describe('knowledge graph over MCP: the reference memory server\'s tools', function () {
  let stack: Stack;
  let dir: string;
  let reference: Client;
  let ours: Client;
  let projectId: string;

  before(async function () {
    stack = await startStack({ worker: false });
    dir = await mkdtemp(path.join(os.tmpdir(), 'memory-ref-'));
    reference = new Client({ name: 'compat-test', version: '1.0.0' });
    await reference.connect(new StdioClientTransport({ command: process.execPath, args: [REFERENCE_SERVER], env: { MEMORY_FILE_PATH: path.join(dir, 'memory.jsonl') }, stderr: 'ignore' }));
    const alice = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'memory' } })).body.id;
    ours = new Client({ name: 'compat-test', version: '1.0.0' });
    await ours.connect(new StreamableHTTPClientTransport(new URL(`${stack.url}/v1/projects/${projectId}/kg/mcp`), { requestInit: { headers: { Authorization: `Bearer ${alice}` } } }));
  });

  after(async function () {
    await Promise.all([reference?.close(), ours?.close()]);
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists the same tools with the same argument shapes', async function () {
    const [theirs, mine] = await Promise.all([reference.listTools(), ours.listTools()]);
    const shape = (tools: typeof theirs.tools) =>
      Object.fromEntries(tools.map((t) => [t.name, { required: t.inputSchema.required ?? [], properties: Object.keys(t.inputSchema.properties ?? {}), annotations: t.annotations }]));
    assert.deepEqual(shape(mine.tools), shape(theirs.tools));
    assert.deepEqual(mine.tools.map((t) => t.name).sort(), [...MEMORY_TOOL_NAMES].sort());
  });

  it('answers a scripted sequence of calls as the reference server does, and ends with the same graph', async function () {
    for (const c of SCRIPT) {
      const [theirs, mine] = await Promise.all([call(reference, c), call(ours, c)]);
      const label = `${c.tool} ${JSON.stringify(c.args)}`;
      assert.equal(mine.isError, theirs.isError, `${label}: ours ${mine.text} / reference ${theirs.text}`);
      if (!theirs.isError) {
        assert.deepEqual(mine.structured, theirs.structured, label);
        if (!c.unordered) assert.deepEqual(JSON.parse(mine.text.startsWith('{') || mine.text.startsWith('[') ? mine.text : '""'), JSON.parse(theirs.text.startsWith('{') || theirs.text.startsWith('[') ? theirs.text : '""'), `${label}: text`);
      }
    }
    const graph = await call(ours, { tool: 'read_graph', args: {} });
    assert.equal((graph.structured as any).entities.length, 3, 'alice, bob and carol remain');
    // And it is the project's graph, in Postgres.
    const rows = await stack.world.db.selectFrom('kg_entities').select('name').where('project_id', '=', projectId).orderBy('id').execute();
    assert.deepEqual(rows.map((r) => r.name), ['alice', 'bob', 'carol']);
  });

  it('viewers read but cannot write; strangers get 404 and no tools', async function () {
    const [alice, vic, mallory] = await Promise.all(['alice', 'vic', 'mallory'].map((l) => stack.token(l)));
    assert.equal((await stack.api('POST', `/v1/projects/${projectId}/members`, { token: alice, body: { login: 'vic', role: 'viewer' } })).status, 201);
    const viewer = new Client({ name: 'viewer', version: '1.0.0' });
    await viewer.connect(new StreamableHTTPClientTransport(new URL(`${stack.url}/v1/projects/${projectId}/kg/mcp`), { requestInit: { headers: { Authorization: `Bearer ${vic}` } } }));
    try {
      const read = await call(viewer, { tool: 'open_nodes', args: { names: ['alice'] } });
      assert.equal(read.isError, false);
      assert.equal((read.structured as any).entities[0].name, 'alice');
      const write = await call(viewer, { tool: 'create_entities', args: { entities: [{ name: 'vic-was-here', entityType: 'x', observations: [] }] } });
      assert.equal(write.isError, true);
      assert.match(write.text, /member role/);
      assert.equal((await stack.world.db.selectFrom('kg_entities').select('name').where('name', '=', 'vic-was-here').execute()).length, 0);
    } finally {
      await viewer.close();
    }
    const stranger = await stack.api('POST', `/v1/projects/${projectId}/kg/mcp`, {
      token: mallory,
      headers: { Accept: 'application/json, text/event-stream' },
      body: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'read_graph', arguments: {} } },
    });
    assert.equal(stranger.status, 404);
    assert.equal(stranger.headers.get('content-type'), 'application/problem+json');
  });

  it('refuses arguments beyond the bounds as tool errors, and stores nothing', async function () {
    const long = await call(ours, { tool: 'create_entities', args: { entities: [{ name: 'x'.repeat(300), entityType: 't', observations: [] }] } });
    assert.equal(long.isError, true);
    // A NUL never gets past the request body check: the HTTP request itself is refused.
    await assert.rejects(call(ours, { tool: 'create_entities', args: { entities: [{ name: 'a\u0000b', entityType: 't', observations: [] }] } }), /NulCharacter/);
    const many = await call(ours, { tool: 'open_nodes', args: { names: Array.from({ length: 1001 }, (_, i) => `n${i}`) } });
    assert.equal(many.isError, true);
    const count = await stack.world.db.selectFrom('kg_entities').select((eb) => eb.fn.countAll<string>().as('n')).where('project_id', '=', projectId).executeTakeFirstOrThrow();
    assert.equal(Number(count.n), 3);
  });

  it('read_graph past its cap is an error pointing to the paged REST graph; search_nodes answers the best matches up to its cap', async function () {
    const alice = await stack.token('alice');
    const big = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'big memory' } })).body.id;
    const n = KG_LIMITS.readGraphCap + 1;
    const entities = Array.from({ length: n }, (_, i) => ({ name: `w-${i}`, entityType: 'widget', observations: [i === 7 ? 'widget widget widget' : `part ${i}`] }));
    for (let i = 0; i < n; i += 1000) await stack.world.kg.upsert(big, { entities: entities.slice(i, i + 1000) });
    await stack.world.kg.upsert(big, { relations: [{ from: 'w-7', to: 'w-8', relationType: 'fits' }] });
    const client = new Client({ name: 'big', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${stack.url}/v1/projects/${big}/kg/mcp`), { requestInit: { headers: { Authorization: `Bearer ${alice}` } } }));
    try {
      const whole = await call(client, { tool: 'read_graph', args: {} });
      assert.equal(whole.isError, true);
      assert.match(whole.text, new RegExp(`more than ${KG_LIMITS.readGraphCap} entities or relations`));
      assert.ok(whole.text.includes(`GET /v1/projects/${big}/kg/graph`), whole.text);
      // The route it names pages through all of it.
      const page = await stack.api('GET', `/v1/projects/${big}/kg/graph?limit=1000`, { token: alice });
      assert.equal(page.status, 200);
      assert.equal(page.body.entities.length, 1000);
      assert.equal(typeof page.body.nextCursor, 'string');

      const found = await call(client, { tool: 'search_nodes', args: { query: 'WIDGET' } });
      assert.equal(found.isError, false);
      const graph = found.structured as { entities: Array<{ name: string }>; relations: unknown[]; truncated?: boolean };
      assert.equal(graph.entities.length, KG_LIMITS.searchNodesCap);
      assert.equal(graph.truncated, true);
      assert.equal(graph.entities[0]!.name, 'w-7', 'the best full-text match comes first');
      assert.deepEqual(graph.relations, [{ from: 'w-7', to: 'w-8', relationType: 'fits' }]);
      assert.equal(JSON.parse(found.text).truncated, true);
      // Under the cap nothing says truncated, as the reference answers.
      const few = await call(client, { tool: 'search_nodes', args: { query: 'part 12' } });
      assert.equal((few.structured as any).truncated, undefined);
      assert.deepEqual((few.structured as any).entities.map((e: any) => e.name).sort(), ['w-12', ...Array.from({ length: 10 }, (_, i) => `w-${120 + i}`), ...Array.from({ length: 100 }, (_, i) => `w-${1200 + i}`)].sort());
    } finally {
      await client.close();
    }
  });
});

import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// The `kg.upsert` step kind end to end: a run whose first step calls a real MCP tool (on 127.0.0.1) and whose second
// step maps that tool's output into the project knowledge graph; the graph is read back through REST.

describe('agent step kind kg.upsert', function () {
  let stack: Stack;
  let mcp: TestMcpServer;
  let alice: string;
  let projectId: string;

  before(async function () {
    mcp = await startTestMcpServer({ name: 'kg-tools' });
    stack = await startStack();
    alice = await stack.token('alice');
    assert.equal((await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'tools', oracleUrl: mcp.url } })).status, 201);
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'kg-runs' } })).body.id;
  });

  after(async function () {
    await stack?.stop();
    await mcp?.stop();
  });

  const define = (name: string, steps: unknown[]) => stack.api('POST', `/v1/projects/${projectId}/agents`, { token: alice, body: { name, steps } });

  async function waitRun(id: string): Promise<any> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await stack.api('GET', `/v1/agent-runs/${id}`, { token: alice });
      assert.equal(r.status, 200, r.text);
      if (['succeeded', 'failed', 'canceled'].includes(r.body.status)) return r.body;
      if (Date.now() > deadline) throw new Error(`run stayed ${r.body.status}: ${JSON.stringify(r.body)}`);
      await new Promise((res) => setTimeout(res, 150));
    }
  }

  // The echo tool answers its text; text that is JSON becomes a structured step output.
  const learn = [
    { id: 'fetch', tool: 'echo', arguments: { text: { $ref: 'input.found' } } },
    {
      id: 'remember',
      kind: 'kg.upsert',
      arguments: {
        entities: { $ref: 'steps.fetch.output.people' },
        relations: [{ from: { $ref: 'steps.fetch.output.people.0.name' }, to: { $ref: 'input.team' }, relationType: 'works_in' }],
      },
    },
  ];

  it('upserts a real tool output into the graph; running again merges instead of duplicating', async function () {
    const saved = await define('learn', learn);
    assert.equal(saved.status, 201, saved.text);
    const found = JSON.stringify({ people: [{ name: 'Ada', entityType: 'person', observations: ['writes programs'] }, { name: 'Team Engine', entityType: 'team' }] });
    const started = await stack.api('POST', `/v1/projects/${projectId}/agents/learn/runs`, { token: alice, body: { input: { found, team: 'Team Engine' } } });
    assert.equal(started.status, 202, started.text);
    const run = await waitRun(started.body.id);
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    const output = await stack.world.db.selectFrom('agent_run_steps').select('output').where('run_id', '=', run.id).where('step_id', '=', 'remember').executeTakeFirstOrThrow();
    assert.deepEqual(output.output, { entities: 2, relations: 1 });

    const nodes = await stack.api('GET', `/v1/projects/${projectId}/kg/nodes?names=Ada&names=Team%20Engine`, { token: alice });
    assert.equal(nodes.status, 200, nodes.text);
    assert.deepEqual(
      nodes.body.entities.sort((a: any, b: any) => a.name.localeCompare(b.name)),
      [
        { name: 'Ada', entityType: 'person', observations: ['writes programs'] },
        { name: 'Team Engine', entityType: 'team', observations: [] },
      ],
    );
    assert.deepEqual(nodes.body.relations, [{ from: 'Ada', to: 'Team Engine', relationType: 'works_in' }]);

    // A second run with one more observation: merged into Ada, nothing duplicated.
    const more = JSON.stringify({ people: [{ name: 'Ada', entityType: 'person', observations: ['writes programs', 'reads papers'] }] });
    const again = await stack.api('POST', `/v1/projects/${projectId}/agents/learn/runs`, { token: alice, body: { input: { found: more, team: 'Team Engine' } } });
    assert.equal((await waitRun(again.body.id)).status, 'succeeded');
    const graph = await stack.api('GET', `/v1/projects/${projectId}/kg/graph`, { token: alice });
    assert.equal(graph.status, 200, graph.text);
    assert.equal(graph.body.entities.length, 2);
    assert.deepEqual(graph.body.entities.find((e: any) => e.name === 'Ada').observations, ['writes programs', 'reads papers']);
    assert.equal(graph.body.relations.length, 1);
  });

  it('arguments written out that do not fit are a 422 naming the step when the agent is saved', async function () {
    const missingType = await define('bad-shape', [{ id: 'save', kind: 'kg.upsert', arguments: { entities: [{ name: 'x' }] } }]);
    assert.equal(missingType.status, 422, missingType.text);
    assert.equal(missingType.body.step, 'save');
    assert.match(missingType.body.detail, /entities\.0\.entityType/);

    const unknownKey = await define('bad-key', [{ id: 'keep', kind: 'kg.upsert', arguments: { nodes: [] } }]);
    assert.equal(unknownKey.status, 422, unknownKey.text);
    assert.equal(unknownKey.body.step, 'keep');

    const nothing = await define('bad-empty', [{ id: 'empty', kind: 'kg.upsert', arguments: {} }]);
    assert.equal(nothing.status, 422, nothing.text);
    assert.equal(nothing.body.step, 'empty');

    const listed = await stack.api('GET', `/v1/projects/${projectId}/agents`, { token: alice });
    assert.ok(!JSON.stringify(listed.body).includes('bad-'), 'no refused agent was saved');
  });

  it('a referenced output that does not fit fails the run naming the step, and writes nothing', async function () {
    assert.equal((await define('learn-loose', learn)).status, 201);
    const found = JSON.stringify({ people: [{ name: 'Grace' }] });
    const started = await stack.api('POST', `/v1/projects/${projectId}/agents/learn-loose/runs`, { token: alice, body: { input: { found, team: 'Navy' } } });
    const run = await waitRun(started.body.id);
    assert.equal(run.status, 'failed', JSON.stringify(run));
    assert.equal(run.error.step, 'remember');
    assert.match(JSON.stringify(run.error), /entityType/);
    const nodes = await stack.api('GET', `/v1/projects/${projectId}/kg/nodes?names=Grace&names=Navy`, { token: alice });
    assert.deepEqual(nodes.body.entities, []);
  });
});

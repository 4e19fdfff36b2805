import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// Agent definitions over HTTP: create, read, version on update, delete; every invalid DAG is a 422 naming the step.

describe('agents: definitions, versions and DAG validation', function () {
  let stack: Stack;
  let mcp: TestMcpServer;
  let alice: string;
  let carol: string;
  let projectId: string;

  before(async function () {
    mcp = await startTestMcpServer({ name: 'agents-crud' });
    stack = await startStack({ worker: false });
    [alice, carol] = await Promise.all([stack.token('alice'), stack.token('carol')]);
    assert.equal((await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'tools', oracleUrl: mcp.url } })).status, 201);
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'agents' } })).body.id;
    await stack.api('POST', `/v1/projects/${projectId}/members`, { token: alice, body: { login: 'carol', role: 'viewer' } });
  });

  after(async function () {
    await stack?.stop();
    await mcp?.stop();
  });

  const twoSteps = [
    { id: 'first', tool: 'echo', arguments: { text: { $ref: 'input.text' } } },
    { id: 'second', tool: 'echo', arguments: { text: { $ref: 'steps.first.output' } } },
  ];

  it('creates version 1, lists and reads it, saves version 2 on update, and deletes it', async function () {
    const created = await stack.api('POST', `/v1/projects/${projectId}/agents`, { token: alice, body: { name: 'twice', description: 'echo twice', steps: twoSteps } });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.version, 1);
    assert.equal(created.headers.get('location'), `/v1/projects/${projectId}/agents/twice`);
    assert.deepEqual(created.body.steps, twoSteps);

    const again = await stack.api('POST', `/v1/projects/${projectId}/agents`, { token: alice, body: { name: 'twice', steps: twoSteps } });
    assert.equal(again.status, 409);
    assert.equal(again.body.code, 'AgentExists');

    const listed = await stack.api('GET', `/v1/projects/${projectId}/agents`, { token: carol });
    assert.deepEqual(listed.body.items.map((a: any) => [a.name, a.version]), [['twice', 1]]);

    const updated = await stack.api('PUT', `/v1/projects/${projectId}/agents/twice`, { token: alice, body: { steps: [twoSteps[0]] } });
    assert.equal(updated.status, 200, updated.text);
    assert.equal(updated.body.version, 2);
    assert.equal(updated.body.description, undefined, 'a new version replaces the whole definition');
    const versions = await stack.world.db.selectFrom('agent_versions').select(['version', 'definition']).orderBy('version').execute();
    assert.deepEqual(versions.map((v) => [v.version, (v.definition as any).steps.length]), [[1, 2], [2, 1]]);

    const read = await stack.api('GET', `/v1/projects/${projectId}/agents/twice`, { token: carol });
    assert.equal(read.body.version, 2);

    assert.equal((await stack.api('PUT', `/v1/projects/${projectId}/agents/twice`, { token: carol, body: { steps: twoSteps } })).status, 403, 'viewers read only');
    assert.equal((await stack.api('PUT', `/v1/projects/${projectId}/agents/ghost`, { token: alice, body: { steps: twoSteps } })).status, 404);
    const renamed = await stack.api('PUT', `/v1/projects/${projectId}/agents/twice`, { token: alice, body: { name: 'other', steps: twoSteps } });
    assert.equal(renamed.status, 422);

    assert.equal((await stack.api('DELETE', `/v1/projects/${projectId}/agents/twice`, { token: alice })).status, 204);
    assert.equal((await stack.api('GET', `/v1/projects/${projectId}/agents/twice`, { token: alice })).status, 404);
    assert.equal((await stack.world.db.selectFrom('agent_versions').select('version').execute()).length, 0);
  });

  it('answers 422 naming the step for an unknown step, reference, tool or kind and for a cycle', async function () {
    const cases: Array<[string, unknown[], string, string]> = [
      ['unknown step', [{ id: 'a', tool: 'echo', arguments: {}, dependsOn: ['nope'] }], 'UnknownStep', 'a'],
      ['unknown reference', [{ id: 'a', tool: 'echo', arguments: {} }, { id: 'b', tool: 'echo', arguments: { text: { $ref: 'steps.zzz.output' } } }], 'UnknownReference', 'b'],
      ['cycle', [{ id: 'a', tool: 'echo', arguments: {}, dependsOn: ['b'] }, { id: 'b', tool: 'echo', arguments: { text: { $ref: 'steps.a.output' } } }], 'DependencyCycle', 'a'],
      ['unknown tool', [{ id: 'a', tool: 'echo', arguments: {} }, { id: 'scan', tool: 'no-such-tool', arguments: {} }], 'UnknownTool', 'scan'],
      ['unknown kind', [{ id: 'k', kind: 'kg.nothing', arguments: {} }], 'UnknownStepKind', 'k'],
    ];
    for (const [what, steps, code, step] of cases) {
      const res = await stack.api('POST', `/v1/projects/${projectId}/agents`, { token: alice, body: { name: 'bad', steps } });
      assert.equal(res.status, 422, `${what}: ${res.text}`);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      assert.equal(res.body.code, code, what);
      assert.equal(res.body.step, step, what);
      assert.match(res.body.detail, new RegExp(`step "${step}"`));
    }
    for (const body of [{ name: 'Bad Name', steps: twoSteps }, { name: 'x', steps: [] }, { name: 'x', steps: [{ id: '1a', tool: 'echo' }] }, { name: 'x', steps: twoSteps, extra: 1 }]) {
      const res = await stack.api('POST', `/v1/projects/${projectId}/agents`, { token: alice, body });
      assert.equal(res.status, 400, JSON.stringify(body));
    }
    assert.equal((await stack.world.db.selectFrom('agents').select('id').execute()).length, 0, 'nothing invalid was stored');
  });
});

import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type ApiResponse, type Stack } from '../support/stack.ts';

// Input that once answered 500: NUL characters anywhere, deep nesting, numbers past their column's range, duplicate
// names. Each is now a 4xx problem with a stable code, and a registration is stored whole or not at all.

describe('hostile input gets a 4xx, never a 500', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;

  before(async function () {
    oracle = await startTestMcpServer();
    stack = await startStack({ worker: false });
    token = await stack.token('alice');
    const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
    assert.equal(reg.status, 201, reg.text);
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'p' } })).body.id;
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  function assert4xx(what: string, res: ApiResponse, status: number, code: string): void {
    assert.equal(res.status, status, `${what}: ${res.text}`);
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/, what);
    assert.equal(res.body.code, code, `${what}: ${res.text}`);
  }

  it('a NUL character in any string, key or URL part → 400 NulCharacter', async function () {
    const cases: Array<[string, string, unknown]> = [
      ['POST', '/v1/projects', { name: 'a\u0000b' }],
      ['POST', '/v1/projects', { name: 'ok', description: '\u0000' }],
      ['PATCH', `/v1/projects/${projectId}`, { description: 'x\u0000' }],
      ['POST', `/v1/projects/${projectId}/members`, { login: 'bob\u0000' }],
      ['POST', '/v1/mcps', { name: 'nul', description: 'd\u0000', tools: [{ name: 't' }] }],
      ['POST', '/v1/mcps', { name: 'nul', tools: [{ name: 't\u0000' }] }],
      ['POST', '/v1/mcps', { name: 'nul', tools: [{ name: 't', inputSchema: { type: 'object', 'k\u0000': 1 } }] }],
      ['POST', '/v1/tasks', { projectId, tool: 'echo', arguments: { text: 'v\u0000' } }],
      ['POST', '/v1/tasks', { projectId, tool: 'echo', arguments: { text: 'v', 'k\u0000': 1 } }],
      ['POST', '/v1/tasks', { projectId, tool: 'ec\u0000ho', arguments: {} }],
    ];
    for (const [method, path, body] of cases) assert4xx(`${method} ${path} ${JSON.stringify(body)}`, await stack.api(method, path, { token, body }), 400, 'NulCharacter');
    for (const path of ['/v1/mcps/%00x', `/v1/projects/${projectId}/members/%00`, '/v1/tasks?cursor=%00', `/v1/projects/${projectId}/spaces/a%00`]) {
      assert4xx(path, await stack.api(path.includes('members') || path.includes('spaces') ? 'DELETE' : 'GET', path, { token }), 400, 'NulCharacter');
    }
    assert.equal((await stack.world.db.selectFrom('projects').select('id').execute()).length, 1, 'nothing was stored');
  });

  it('JSON nested deeper than 64 levels → 400 NestingTooDeep, even 5,000 deep', async function () {
    for (const depth of [65, 5000]) {
      const deep = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      const rawBody = `{"projectId":"${projectId}","tool":"echo","arguments":${deep}}`;
      const res = await stack.api('POST', '/v1/tasks', { token, rawBody, headers: { 'Content-Type': 'application/json' } });
      assert4xx(`depth ${depth}`, res, 400, 'NestingTooDeep');
    }
    const arrays = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const res = await stack.api('POST', '/v1/projects', { token, rawBody: arrays, headers: { 'Content-Type': 'application/json' } });
    assert.ok(res.status === 400, `100,000 nested arrays: ${res.status} ${res.text}`);
  });

  it('numbers beyond what their column holds → 400 ValidationFailed', async function () {
    for (const body of [
      { name: 'big', tools: [{ name: 't' }], cost: 1e308 },
      { name: 'big', tools: [{ name: 't' }], maxConcurrency: 1e12 },
      { name: 'big', tools: [{ name: 't' }], toolTimeouts: { t: 1e15 } },
      { name: 'big', tools: [{ name: 't' }], cost: -1 },
    ]) {
      assert4xx(JSON.stringify(body), await stack.api('POST', '/v1/mcps', { token, body }), 400, 'ValidationFailed');
    }
    assert4xx('limit', await stack.api('GET', '/v1/tasks?limit=1e400', { token }), 400, 'ValidationFailed');
    assert.equal((await stack.api('GET', '/v1/mcps/big', { token })).status, 404);
  });

  it('duplicate tool names → 422 DuplicateTool; overlong strings → 400', async function () {
    const dup = await stack.api('POST', '/v1/mcps', { token, body: { name: 'dup', tools: [{ name: 't' }, { name: 't' }] } });
    assert4xx('duplicate', dup, 422, 'DuplicateTool');
    const long = await stack.api('POST', '/v1/mcps', { token, body: { name: 'long', description: 'x'.repeat(2001), tools: [{ name: 't' }] } });
    assert4xx('long description', long, 400, 'ValidationFailed');
    const longTool = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 't'.repeat(201), arguments: {} } });
    assert4xx('long tool', longTool, 400, 'ValidationFailed');
    const patchDup = await stack.api('PATCH', '/v1/mcps/tools', { token, body: { tools: [{ name: 'a' }, { name: 'a' }] } });
    assert4xx('duplicate on patch', patchDup, 422, 'DuplicateTool');
    assert.equal((await stack.api('GET', '/v1/mcps/dup', { token })).status, 404);
  });

  it('registration is one transaction: when its tools cannot be stored, no server row is left behind', async function () {
    const { db } = stack.world;
    await sql`create function refuse_tools() returns trigger language plpgsql as $$ begin raise exception 'tools refused'; end $$`.execute(db);
    await sql`create trigger refuse_tools before insert on mcp_tools for each row execute function refuse_tools()`.execute(db);
    try {
      const res = await stack.api('POST', '/v1/mcps', { token, body: { name: 'orphan', tools: [{ name: 't' }] } });
      assert.equal(res.status, 500, res.text);
      assert.doesNotMatch(res.text, /tools refused/, 'the database error stays inside');
      const rows = await db.selectFrom('mcp_servers').select('id').where('name', '=', 'orphan').execute();
      assert.deepEqual(rows, [], 'no orphan server row');
    } finally {
      await sql`drop trigger refuse_tools on mcp_tools`.execute(db);
      await sql`drop function refuse_tools()`.execute(db);
    }
    const ok = await stack.api('POST', '/v1/mcps', { token, body: { name: 'orphan', tools: [{ name: 't' }] } });
    assert.equal(ok.status, 201, 'the name is free: nothing half-registered holds it');
  });

  it('a project with unfinished tasks cannot be deleted under them → 409 ProjectHasActiveTasks', async function () {
    const task = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'stays queued' } } });
    assert.equal(task.status, 202, task.text);
    assert4xx('delete', await stack.api('DELETE', `/v1/projects/${projectId}`, { token }), 409, 'ProjectHasActiveTasks');
    assert.equal((await stack.api('GET', `/v1/projects/${projectId}`, { token })).status, 200, 'still there');
  });
});

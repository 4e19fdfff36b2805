import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// The services write the trail as they act, with the actor, target and what changed; project admins read their
// project's trail, platform admins all of it, newest first, a page at a time, filtered by actor and action.

describe('audit trail', function () {
  let stack: Stack;
  let server: TestMcpServer;
  let alice: string;
  let bob: string;
  let root: string;
  let projectId: string;
  let serverId: string;

  before(async function () {
    server = await startTestMcpServer({ name: 'audit-server' });
    stack = await startStack({ env: { ADMIN_LOGINS: 'root' } });
    [alice, bob, root] = await Promise.all([stack.token('alice'), stack.token('bob'), stack.token('root'), stack.token('mallory')]);
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'audited' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'audit-server', oracleUrl: server.url } });
    assert.equal(reg.status, 201, reg.text);
    serverId = reg.body.id;
    assert.equal((await stack.api('PATCH', '/v1/mcps/audit-server', { token: alice, body: { description: 'd' } })).status, 200);
    assert.equal((await stack.api('POST', '/v1/mcps/audit-server/refresh', { token: alice })).status, 200);
    assert.equal((await stack.api('POST', `/v1/projects/${projectId}/members`, { token: alice, body: { login: 'bob', role: 'viewer' } })).status, 201);
    assert.equal((await stack.api('PATCH', `/v1/projects/${projectId}/members/bob`, { token: alice, body: { role: 'member' } })).status, 200);
    assert.equal((await stack.api('PUT', `/v1/projects/${projectId}/spaces/audit-server`, { token: alice, body: { url: 'http://127.0.0.1:9/mcp', token: 'hf_secret_token_value' } })).status, 200);
    assert.equal((await stack.api('DELETE', `/v1/projects/${projectId}/spaces/audit-server`, { token: alice })).status, 204);
  });

  after(async function () {
    await stack?.stop();
    await server?.stop();
  });

  const trail = (token: string, query = '') => stack.api('GET', `/v1/projects/${projectId}/audit${query}`, { token });

  it('records registry, member and Space changes with their actor and detail, never a secret', async function () {
    const res = await trail(alice);
    assert.equal(res.status, 200, res.text);
    const actions = res.body.items.map((e: any) => e.action);
    assert.deepEqual(actions, ['space.unbind', 'space.bind', 'member.role_change', 'member.add', 'project.create']);
    const [unbind, bind, roleChange, add] = res.body.items;
    assert.deepEqual(roleChange.detail, { login: 'bob', from: 'viewer', to: 'member' });
    assert.deepEqual(add.detail, { login: 'bob', role: 'viewer' });
    assert.equal(add.actor.kind, 'user');
    assert.equal(add.actor.login, 'alice');
    assert.ok(add.requestId && add.ip);
    assert.deepEqual(bind.detail, { server: 'audit-server', spaceId: null, url: 'http://127.0.0.1:9/mcp', withToken: true });
    assert.deepEqual(unbind.target, { type: 'mcp_server', id: serverId });
    assert.ok(!res.text.includes('hf_secret_token_value'));

    const platform = await stack.api('GET', '/v1/audit?action=registry.update', { token: root });
    assert.equal(platform.status, 200, platform.text);
    assert.equal(platform.body.items.length, 1);
    assert.deepEqual(platform.body.items[0].detail, { name: 'audit-server', changes: { description: 'd' } });
    const all = (await stack.api('GET', '/v1/audit?actor=alice&limit=200', { token: root })).body.items.map((e: any) => e.action);
    for (const a of ['registry.create', 'registry.update', 'registry.refresh']) assert.ok(all.includes(a), `${a} in ${all}`);
  });

  it('records cancellations, retries and API keys, naming the key an act came through', async function () {
    const task = await stack.api('POST', '/v1/tasks', { token: alice, body: { projectId, tool: 'slow', arguments: { ms: 20_000 } } });
    assert.equal(task.status, 202, task.text);
    assert.equal((await stack.api('POST', `/v1/tasks/${task.body.id}/cancel`, { token: bob })).status, 202);
    await stack.waitForStatus(alice, task.body.id, ['canceled']);
    const key = (await stack.api('POST', '/v1/api-keys', { token: alice, body: { name: 'ci', projectId } })).body;
    const rerun = await stack.api('POST', `/v1/tasks/${task.body.id}/retry`, { token: key.key });
    assert.equal(rerun.status, 202, rerun.text);
    assert.equal((await stack.api('DELETE', `/v1/api-keys/${key.id}`, { token: alice })).status, 204);

    const items = (await trail(alice, '?limit=4')).body.items;
    assert.deepEqual(items.map((e: any) => e.action), ['api_key.revoke', 'task.retry', 'api_key.create', 'task.cancel']);
    assert.deepEqual(items[1].actor, { kind: 'api_key', userId: items[0].actor.userId, login: 'alice', keyId: key.id });
    assert.deepEqual(items[1].detail, { rerunId: rerun.body.id, tool: 'slow' });
    assert.deepEqual(items[2].detail, { name: 'ci', projectId, role: null, expiresAt: key.expiresAt });
    assert.equal(items[3].actor.login, 'bob');
    assert.equal(items[3].target.id, task.body.id);
  });

  it('pages with a cursor and filters by actor and action', async function () {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await trail(alice, `?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(page.status, 200);
      assert.ok(page.body.items.length <= 3);
      seen.push(...page.body.items.map((e: any) => e.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    const whole = (await trail(alice, '?limit=200')).body.items.map((e: any) => e.id);
    assert.deepEqual(seen, whole, 'pages add up to the whole trail, no gap and no duplicate');
    assert.deepEqual((await trail(alice, '?actor=bob')).body.items.map((e: any) => e.action), ['task.cancel']);
    assert.deepEqual((await trail(alice, '?action=member.add')).body.items.map((e: any) => e.detail.login), ['bob']);
    assert.equal((await trail(alice, '?action=nope')).status, 400);
    assert.equal((await trail(alice, '?cursor=abc')).status, 400);
  });

  it('only project admins read the project trail, only platform admins the whole one; a refused change leaves no entry', async function () {
    assert.equal((await trail(bob)).status, 403, 'a member is not an admin');
    assert.equal((await trail(await stack.token('mallory'))).status, 404);
    assert.equal((await stack.api('GET', '/v1/audit', { token: alice })).status, 403);
    const before = (await trail(alice, '?limit=200')).body.items.length;
    assert.equal((await stack.api('PATCH', `/v1/projects/${projectId}/members/alice`, { token: alice, body: { role: 'viewer' } })).status, 409, 'LastOwner');
    assert.equal((await trail(alice, '?limit=200')).body.items.length, before);
  });
});

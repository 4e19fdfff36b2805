import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// API keys for scripts: shown once, stored hashed, accepted as a bearer, never more than their creator may do,
// bound to one project when asked, refused at once when revoked or expired.

describe('API keys', function () {
  let stack: Stack;
  let server: TestMcpServer;
  let alice: string;
  let bob: string;
  let projectA: string;
  let projectB: string;

  before(async function () {
    server = await startTestMcpServer({ name: 'keys-server' });
    stack = await startStack({ env: { API_KEYS_PER_USER: '6', API_KEY_MAX_TTL: '48h', ADMIN_LOGINS: 'alice' } });
    [alice, bob] = await Promise.all([stack.token('alice'), stack.token('bob')]);
    assert.equal((await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'keys-server', oracleUrl: server.url } })).status, 201);
    projectA = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'a' } })).body.id;
    projectB = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'b' } })).body.id;
  });

  after(async function () {
    await stack?.stop();
    await server?.stop();
  });

  const createKey = (token: string, body: Record<string, unknown>) => stack.api('POST', '/v1/api-keys', { token, body });

  it('shows the key once, stores only its hash, and accepts it as a bearer', async function () {
    const created = await createKey(alice, { name: 'ci' });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.headers.get('cache-control'), 'no-store');
    assert.match(created.body.key, /^orch_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.body.key.split('_')[1], created.body.id);
    assert.equal(created.body.projectId, null);
    assert.equal(created.body.lastUsedAt, null);
    // Without expiresAt a key lives the longest allowed (API_KEY_MAX_TTL=48h).
    const ttl = Date.parse(created.body.expiresAt) - Date.now();
    assert.ok(ttl > 47 * 3_600_000 && ttl <= 48 * 3_600_000, `ttl ${ttl}`);

    const row = await stack.world.db.selectFrom('api_keys').selectAll().where('id', '=', created.body.id).executeTakeFirstOrThrow();
    const secret = created.body.key.slice(`orch_${created.body.id}_`.length);
    assert.equal(row.secret_hash.length, 32);
    assert.ok(!row.secret_hash.toString('latin1').includes(secret) && !row.secret_hash.toString('base64url').includes(secret), 'the secret is not stored');

    const projects = await stack.api('GET', '/v1/projects', { token: created.body.key });
    assert.equal(projects.status, 200, projects.text);
    assert.deepEqual(projects.body.items.map((p: any) => p.name).sort(), ['a', 'b']);

    const listed = await stack.api('GET', '/v1/api-keys', { token: alice });
    const mine = listed.body.items.find((k: any) => k.id === created.body.id);
    assert.ok(mine.lastUsedAt, 'last use is recorded');
    assert.equal(mine.key, undefined, 'listing never shows the secret');
    assert.ok(!listed.text.includes(secret));
    assert.ok(!stack.logLines.some((l) => l.includes(secret)), 'the secret never reaches the logs');

    // A wrong secret for a real id, and garbage in the key format, are both plain 401s.
    const forged = `orch_${created.body.id}_${'A'.repeat(43)}`;
    for (const bad of [forged, 'orch_nothex_x', `orch_${'0'.repeat(16)}_${'B'.repeat(43)}`]) {
      const r = await stack.api('GET', '/v1/projects', { token: bad });
      assert.equal(r.status, 401, `${bad}: ${r.text}`);
      assert.equal(r.body.code, 'InvalidToken');
    }
  });

  it('updates the last-used time at most once a minute', async function () {
    const { body } = await createKey(alice, { name: 'busy' });
    await stack.api('GET', '/v1/projects', { token: body.key });
    const first = (await stack.world.db.selectFrom('api_keys').select('last_used_at').where('id', '=', body.id).executeTakeFirstOrThrow()).last_used_at!;
    await new Promise((r) => setTimeout(r, 20));
    await stack.api('GET', '/v1/projects', { token: body.key });
    const second = (await stack.world.db.selectFrom('api_keys').select('last_used_at').where('id', '=', body.id).executeTakeFirstOrThrow()).last_used_at!;
    assert.equal(second.getTime(), first.getTime());
    await stack.api('DELETE', `/v1/api-keys/${body.id}`, { token: alice });
  });

  it('a revoked key is refused at once; only its owner revokes it', async function () {
    const { body } = await createKey(alice, { name: 'to-revoke' });
    assert.equal((await stack.api('GET', '/v1/projects', { token: body.key })).status, 200);
    assert.equal((await stack.api('DELETE', `/v1/api-keys/${body.id}`, { token: bob })).status, 404, "bob cannot revoke alice's key");
    assert.equal((await stack.api('GET', '/v1/projects', { token: body.key })).status, 200);
    assert.equal((await stack.api('DELETE', `/v1/api-keys/${body.id}`, { token: alice })).status, 204);
    const refused = await stack.api('GET', '/v1/projects', { token: body.key });
    assert.equal(refused.status, 401);
    assert.match(refused.body.detail, /revoked/);
    assert.equal((await stack.api('DELETE', `/v1/api-keys/${body.id}`, { token: alice })).status, 404, 'revoking twice');
    const listed = (await stack.api('GET', '/v1/api-keys', { token: alice })).body.items.find((k: any) => k.id === body.id);
    assert.ok(listed.revokedAt);
  });

  it('an expired key is refused; expiry must be in the future and within the maximum', async function () {
    const { body } = await createKey(alice, { name: 'short', expiresAt: new Date(Date.now() + 1500).toISOString() });
    assert.equal((await stack.api('GET', '/v1/projects', { token: body.key })).status, 200);
    await new Promise((r) => setTimeout(r, 1600));
    const expired = await stack.api('GET', '/v1/projects', { token: body.key });
    assert.equal(expired.status, 401);
    assert.match(expired.body.detail, /expired/);

    const past = await createKey(alice, { name: 'past', expiresAt: '2001-01-01T00:00:00Z' });
    assert.equal(past.status, 422);
    assert.equal(past.body.code, 'InvalidExpiry');
    const tooLong = await createKey(alice, { name: 'long', expiresAt: new Date(Date.now() + 49 * 3_600_000).toISOString() });
    assert.equal(tooLong.status, 422);
    for (const bad of [{}, { name: '' }, { name: 'x', role: 'god' }, { name: 'x', projectId: 'nope' }, { name: 'x', expiresAt: 'tomorrow' }, { name: 'x', extra: 1 }]) {
      const r = await createKey(alice, bad);
      assert.equal(r.status, 400, `${JSON.stringify(bad)} → ${r.status} ${r.text}`);
      assert.equal(r.headers.get('content-type'), 'application/problem+json');
    }
  });

  it('a key bound to a project sees only that project; others are 404', async function () {
    const { body } = await createKey(alice, { name: 'only-a', projectId: projectA });
    assert.equal(body.projectId, projectA);
    const listed = await stack.api('GET', '/v1/projects', { token: body.key });
    assert.deepEqual(listed.body.items.map((p: any) => p.id), [projectA]);
    assert.equal((await stack.api('GET', `/v1/projects/${projectB}`, { token: body.key })).status, 404);

    const inB = await stack.api('POST', '/v1/tasks', { token: alice, body: { projectId: projectB, tool: 'echo', arguments: { text: 'b' } } });
    assert.equal(inB.status, 202);
    const viaKey = await stack.api('POST', '/v1/tasks', { token: body.key, body: { projectId: projectA, tool: 'echo', arguments: { text: 'a' } } });
    assert.equal(viaKey.status, 202, viaKey.text);
    await stack.waitForStatus(alice, inB.body.id, ['succeeded']);
    const done = await stack.waitForStatus(body.key, viaKey.body.id, ['succeeded']);
    assert.equal(done.result.content[0].text, 'a');

    assert.equal((await stack.api('GET', `/v1/tasks/${inB.body.id}`, { token: body.key })).status, 404, "another project's task");
    assert.equal((await stack.api('GET', `/v1/tasks/${inB.body.id}/events`, { token: body.key })).status, 404);
    assert.equal((await stack.api('POST', '/v1/tasks', { token: body.key, body: { projectId: projectB, tool: 'echo', arguments: { text: 'x' } } })).status, 404);
    const tasks = await stack.api('GET', '/v1/tasks', { token: body.key });
    assert.deepEqual(tasks.body.items.map((t: any) => t.projectId), [projectA], 'the task list is narrowed to the project');
    assert.equal((await stack.api('GET', `/v1/tasks?projectId=${projectB}`, { token: body.key })).status, 404);

    // Acts outside the project are refused: creating projects, changing the registry, minting keys.
    assert.equal((await stack.api('POST', '/v1/projects', { token: body.key, body: { name: 'escape' } })).status, 403);
    assert.equal((await stack.api('POST', '/v1/mcps/keys-server/refresh', { token: body.key })).status, 403);
    assert.equal((await createKey(body.key, { name: 'child' })).status, 403);
    assert.equal((await stack.api('GET', '/v1/audit', { token: body.key })).status, 403, 'admin rights do not pass through a bound key');
  });

  it("a key's role caps its creator's role, and never exceeds it", async function () {
    const viewerKey = (await createKey(alice, { name: 'read-only', role: 'viewer' })).body;
    const read = await stack.api('GET', `/v1/projects/${projectA}`, { token: viewerKey.key });
    assert.equal(read.status, 200);
    assert.equal(read.body.role, 'viewer', 'the owner is seen as a viewer through this key');
    const submit = await stack.api('POST', '/v1/tasks', { token: viewerKey.key, body: { projectId: projectA, tool: 'echo', arguments: { text: 'no' } } });
    assert.equal(submit.status, 403);
    assert.equal((await stack.api('PATCH', `/v1/projects/${projectA}`, { token: viewerKey.key, body: { name: 'renamed' } })).status, 403);
    assert.equal((await stack.api('POST', '/v1/mcps', { token: viewerKey.key, body: { name: 'nope', oracleUrl: server.url } })).status, 403);
    assert.equal((await stack.api('GET', `/v1/projects/${projectA}`, { token: alice })).body.name, 'a', 'unchanged');

    // Bob is a member of project A: his key may not ask for more, and a key without a role follows his role.
    assert.equal((await stack.api('POST', `/v1/projects/${projectA}/members`, { token: alice, body: { login: 'bob', role: 'member' } })).status, 201);
    const tooHigh = await createKey(bob, { name: 'grab', projectId: projectA, role: 'owner' });
    assert.equal(tooHigh.status, 403, tooHigh.text);
    const bobKey = (await createKey(bob, { name: 'bob-ci', role: 'owner' })).body;
    assert.equal((await stack.api('GET', `/v1/projects/${projectA}`, { token: bobKey.key })).body.role, 'member', 'a key role never raises the member role');
    assert.equal((await stack.api('DELETE', `/v1/projects/${projectA}`, { token: bobKey.key })).status, 403);
    // Demoted, his key loses the rights with him.
    await stack.api('PATCH', `/v1/projects/${projectA}/members/bob`, { token: alice, body: { role: 'viewer' } });
    assert.equal((await stack.api('POST', '/v1/tasks', { token: bobKey.key, body: { projectId: projectA, tool: 'echo', arguments: { text: 'x' } } })).status, 403);
    assert.equal((await createKey(bob, { name: 'elsewhere', projectId: projectB })).status, 404, 'no key for a project he is not in');
  });

  it('caps the number of active keys per user', async function () {
    const existing = (await stack.api('GET', '/v1/api-keys', { token: alice })).body.items.filter((k: any) => !k.revokedAt && Date.parse(k.expiresAt) > Date.now()).length;
    for (let i = existing; i < 6; i++) assert.equal((await createKey(alice, { name: `fill-${i}` })).status, 201);
    const over = await createKey(alice, { name: 'one-too-many' });
    assert.equal(over.status, 409);
    assert.equal(over.body.code, 'TooManyApiKeys');
    const victim = (await stack.api('GET', '/v1/api-keys', { token: alice })).body.items.find((k: any) => k.name.startsWith('fill-'));
    assert.equal((await stack.api('DELETE', `/v1/api-keys/${victim.id}`, { token: alice })).status, 204);
    assert.equal((await createKey(alice, { name: 'after-revoke' })).status, 201, 'revoking frees a place');
  });
});

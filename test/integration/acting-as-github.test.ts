import assert from 'node:assert/strict';
import { startLocalGithub, type LocalGithub } from '../support/local-github.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// Registry servers acting as the user on GitHub, end to end: users sign in through the GitHub stand-in (so their
// token is a real one it issued), the MCP servers accept only tokens GitHub issued and their `github_login` tool asks
// GitHub who the caller is with the token the call carried.

describe('servers acting as the user with their GitHub token (actsAs)', function () {
  let stack: Stack;
  let github: LocalGithub;
  let publicServer: TestMcpServer;
  let privateServer: TestMcpServer;
  let root: string;
  let ada: { token: string; id: string; github: string };
  let carol: { token: string; id: string; github: string };
  let bob: string;
  let projectId: string;

  const issuedByGithub = (auth: string | undefined) => auth !== undefined && github.issuedTokens.some((t) => auth === `Bearer ${t}`);

  before(async function () {
    github = await startLocalGithub({ clientId: 'gh-client', clientSecret: 'gh-secret' });
    // Stateful, so the sessions the worker opens are visible: each carries one user's token or none.
    publicServer = await startTestMcpServer({ name: 'gh-public', stateful: true, authorize: issuedByGithub, githubApiUrl: github.url });
    privateServer = await startTestMcpServer({ name: 'gh-private', toolPrefix: 'p_', authorize: issuedByGithub, githubApiUrl: github.url });
    stack = await startStack({
      env: { ADMIN_LOGINS: 'root', GITHUB_CLIENT_ID: 'gh-client', GITHUB_CLIENT_SECRET: 'gh-secret', GITHUB_URL: github.url, GITHUB_API_URL: github.url },
    });
    root = await stack.token('root');
    ada = await signInWithGithub(101, 'ada');
    carol = await signInWithGithub(102, 'carol');
    bob = await stack.token('bob');
    projectId = (await stack.api('POST', '/v1/projects', { token: ada.token, body: { name: 'acting' } })).body.id;
    for (const login of ['bob', 'carol']) {
      const r = await stack.api('POST', `/v1/projects/${projectId}/members`, { token: ada.token, body: { login, role: 'member' } });
      assert.equal(r.status, 201, r.text);
    }
    const pub = await stack.api('POST', '/v1/mcps', {
      token: root,
      // The server refuses calls without a GitHub token, tools/list included: its tools are declared.
      body: { name: 'gh-public', oracleUrl: publicServer.url, actsAs: 'github', visibility: 'public', tools: [{ name: 'github_login' }, { name: 'echo', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } }] },
    });
    assert.equal(pub.status, 201, pub.text);
    const priv = await stack.api('POST', '/v1/mcps', { token: ada.token, body: { name: 'gh-private', oracleUrl: privateServer.url, actsAs: 'github', tools: [{ name: 'p_github_login' }] } });
    assert.equal(priv.status, 201, priv.text);
  });

  after(async function () {
    await stack?.stop();
    await publicServer?.stop();
    await privateServer?.stop();
    await github?.stop();
  });

  /** The OAuth web flow against the GitHub stand-in; the user's GitHub token is the last one it issued. */
  async function signInWithGithub(id: number, login: string) {
    github.signInAs({ id, login, name: null });
    const start = await fetch(`${stack.url}/v1/auth/github/login`, { redirect: 'manual' });
    assert.equal(start.status, 302, await start.text());
    const back = await fetch(new URL(start.headers.get('location')!), { redirect: 'manual' });
    const callback = new URL(back.headers.get('location')!);
    const res = await stack.api('GET', `${callback.pathname}${callback.search}`);
    assert.equal(res.status, 200, res.text);
    return { token: res.body.accessToken as string, id: res.body.user.id as string, github: github.issuedTokens.at(-1)! };
  }

  const submit = async (bearer: string, tool: string, args: Record<string, unknown> = {}) => {
    const r = await stack.api('POST', '/v1/tasks', { token: bearer, body: { projectId, tool, arguments: args } });
    assert.equal(r.status, 202, r.text);
    return r.body.id as string;
  };
  const finished = (bearer: string, id: string) => stack.waitForStatus(bearer, id, ['succeeded', 'failed']);

  /** Workflow history as text, payloads decoded: what an operator (or anyone with history access) could read. */
  async function historyText(taskId: string): Promise<string> {
    const history = await stack.world.client.workflow.getHandle(`task-${taskId}`).fetchHistory();
    // Payload bytes come as base64 strings (or as bytes): decoded, so a token in any payload would show.
    return JSON.stringify(history, (k, v: unknown) => {
      if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
      return k === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v;
    });
  }

  it('validates, stores, shows and audits actsAs on registration and updates', async function () {
    const bad = await stack.api('POST', '/v1/mcps', { token: ada.token, body: { name: 'gl', oracleUrl: publicServer.url, actsAs: 'gitlab', tools: [{ name: 'x' }] } });
    assert.equal(bad.status, 400, bad.text);
    const noOracle = await stack.api('POST', '/v1/mcps', { token: ada.token, body: { name: 'no-oracle', actsAs: 'github', canRunOnUserSpace: true, tools: [{ name: 'x' }] } });
    assert.equal(noOracle.status, 422, noOracle.text);
    assert.equal(noOracle.body.code, 'ActsAsNeedsOracle');
    // Plain http to a host that is not this machine: refused before anyone is contacted.
    const plain = await stack.api('POST', '/v1/mcps', { token: ada.token, body: { name: 'plain', oracleUrl: 'http://mcp.example.com/mcp', actsAs: 'github', tools: [{ name: 'x' }] } });
    assert.equal(plain.status, 422, plain.text);
    assert.equal(plain.body.code, 'InsecureTokenTransport');
    assert.equal((await stack.api('GET', '/v1/mcps/plain', { token: ada.token })).status, 404);

    const shown = await stack.api('GET', '/v1/mcps/gh-private', { token: ada.token });
    assert.equal(shown.body.actsAs, 'github');
    const row = await stack.world.db.selectFrom('mcp_servers').select(['acts_as']).where('name', '=', 'gh-private').executeTakeFirstOrThrow();
    assert.equal(row.acts_as, 'github');
    const listed = (await stack.api('GET', '/v1/mcps', { token: bob })).body.items;
    assert.equal(listed.find((s: any) => s.name === 'gh-public').actsAs, 'github');

    const off = await stack.api('PATCH', '/v1/mcps/gh-private', { token: ada.token, body: { actsAs: null } });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.body.actsAs, null);
    // Moving a server that acts as the user to plain http is refused like registering it there.
    const move = await stack.api('PATCH', '/v1/mcps/gh-public', { token: root, body: { oracleUrl: 'http://mcp.example.com/mcp' } });
    assert.equal(move.status, 422, move.text);
    assert.equal(move.body.code, 'InsecureTokenTransport');
    const on = await stack.api('PATCH', '/v1/mcps/gh-private', { token: ada.token, body: { actsAs: 'github' } });
    assert.equal(on.body.actsAs, 'github');

    const doc = (await stack.api('GET', '/openapi.json')).body;
    assert.deepEqual(doc.components.schemas.McpServer.properties.actsAs.anyOf?.[0]?.enum ?? doc.components.schemas.McpServer.properties.actsAs.enum, ['github']);
    const registerSchema = doc.paths['/v1/mcps'].post.requestBody.content['application/json'].schema;
    assert.ok(JSON.stringify(registerSchema.$ref ? doc.components.schemas[registerSchema.$ref.split('/').at(-1)] : registerSchema).includes('actsAs'));

    const trail = await stack.api('GET', '/v1/audit?action=registry.update', { token: root });
    const changes = trail.body.items.filter((e: any) => e.detail.name === 'gh-private').map((e: any) => e.detail.changes);
    assert.deepEqual(changes.reverse(), [{ actsAs: null }, { actsAs: 'github' }]);
    const created = await stack.api('GET', '/v1/audit?action=registry.create', { token: root });
    assert.equal(created.body.items.find((e: any) => e.detail.name === 'gh-public').detail.actsAs, 'github');
  });

  it("calls the server with the submitting user's own GitHub token, which GitHub accepts", async function () {
    publicServer.resetStats();
    const forAda = await submit(ada.token, 'github_login');
    const forCarol = await submit(carol.token, 'github_login');
    const [a, c] = [await finished(ada.token, forAda), await finished(carol.token, forCarol)];
    assert.equal(a.status, 'succeeded', JSON.stringify(a));
    assert.equal(a.result.content[0].text, 'ada');
    assert.equal(c.status, 'succeeded', JSON.stringify(c));
    assert.equal(c.result.content[0].text, 'carol');
    const calls = publicServer.seenHeaders().filter((h) => h.authorization !== undefined);
    assert.ok(calls.some((h) => h.authorization === `Bearer ${ada.github}`));
    assert.ok(calls.some((h) => h.authorization === `Bearer ${carol.github}`));

    // Never stored with the task, never in workflow history, never logged.
    for (const [id, user] of [[forAda, ada], [forCarol, carol]] as const) {
      const row = await stack.world.db.selectFrom('tasks').select(['arguments', 'target', 'attempts']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.ok(!JSON.stringify(row).includes(user.github));
      const history = await historyText(id);
      // Decoded payloads sit inside JSON strings, so their quotes are escaped.
      assert.match(history, /actsAs\\*":\\*"github/, 'the plan says the server acts as the user');
      assert.ok(!history.includes(user.github), 'the token is not in history');
    }
    assert.ok(!stack.logLines.some((l) => l.includes(ada.github) || l.includes(carol.github)), 'no token in the logs');
  });

  it('uses the token from the latest sign-in: a new GitHub token replaces the old one for the next call', async function () {
    const again = await signInWithGithub(101, 'ada');
    assert.equal(again.id, ada.id);
    assert.notEqual(again.github, ada.github);
    publicServer.resetStats();
    const done = await finished(ada.token, await submit(ada.token, 'github_login'));
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    const used = new Set(publicServer.seenHeaders().flatMap((h) => (h.authorization ? [h.authorization] : [])));
    assert.deepEqual([...used], [`Bearer ${again.github}`]);
    ada = { ...ada, github: again.github };
  });

  it('never lets two users share an MCP session', async function () {
    publicServer.resetStats();
    const ids = await Promise.all([ada, carol, ada, carol].map((u, i) => submit(u.token, 'echo', { text: `call ${i}` })));
    for (const [i, id] of ids.entries()) assert.equal((await finished([ada, carol, ada, carol][i]!.token, id)).status, 'succeeded');
    const bySession = new Map<string, Set<string>>();
    for (const h of publicServer.seenHeaders()) {
      const session = h['mcp-session-id'];
      if (!session) continue;
      bySession.set(session, (bySession.get(session) ?? new Set()).add(h.authorization ?? '(none)'));
    }
    assert.ok(bySession.size >= 2, `one session per user at least, saw ${bySession.size}`);
    for (const [session, auths] of bySession) assert.equal(auths.size, 1, `session ${session} carried ${[...auths].join(', ')}`);
    const users = new Set([...bySession.values()].map((s) => [...s][0]));
    assert.ok(users.has(`Bearer ${ada.github}`) && users.has(`Bearer ${carol.github}`));
  });

  it('acts as the key’s user for a task submitted with an API key', async function () {
    const key = await stack.api('POST', '/v1/api-keys', { token: ada.token, body: { name: 'ci' } });
    assert.equal(key.status, 201, key.text);
    publicServer.resetStats();
    const id = await submit(key.body.key, 'github_login');
    const done = await finished(key.body.key, id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(done.result.content[0].text, 'ada');
    assert.ok(publicServer.seenHeaders().every((h) => h.authorization === undefined || h.authorization === `Bearer ${ada.github}`));
  });

  it('fails clearly, without calling the server, for a user who never linked GitHub', async function () {
    publicServer.resetStats();
    const id = await submit(bob, 'github_login');
    const done = await finished(bob, id);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.code, 'ProviderTokenMissing');
    assert.equal(done.error.provider, 'github');
    assert.match(done.error.message, /sign in with GitHub/);
    assert.equal(publicServer.callCount(), 0, 'no unauthenticated call');
    assert.equal(done.attempts.length, 1, 'not retried');
  });

  it("never sends a user's token to another member's private server", async function () {
    privateServer.resetStats();
    const refused = await submit(carol.token, 'p_github_login');
    const done = await finished(carol.token, refused);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.code, 'ProviderTokenRefused');
    assert.equal(done.error.provider, 'github');
    assert.ok(privateServer.seenHeaders().every((h) => h.authorization !== `Bearer ${carol.github}`));
    assert.equal(privateServer.callCount(), 0);
    // Its owner's own tasks do act as them.
    const own = await finished(ada.token, await submit(ada.token, 'p_github_login'));
    assert.equal(own.status, 'succeeded', JSON.stringify(own));
    assert.equal(own.result.content[0].text, 'ada');
  });

  it('probes without any user token and counts the server’s 401 as reachable', async function () {
    publicServer.resetStats();
    const health = await stack.api('GET', '/v1/mcps/gh-public/health', { token: root });
    assert.equal(health.status, 200, health.text);
    assert.equal(health.body.oracle.healthy, true, JSON.stringify(health.body));
    const seen = publicServer.seenHeaders();
    assert.ok(seen.length > 0, 'the probe reached the server');
    assert.ok(seen.every((h) => h.authorization === undefined), 'a probe carries no token');
    publicServer.mode = 'down';
    try {
      const down = await stack.api('GET', '/v1/mcps/gh-public/health', { token: root });
      assert.equal(down.body.oracle.healthy, false, 'a 503 is still down');
    } finally {
      publicServer.mode = 'up';
    }
  });
});

import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startLocalGithub, type LocalGithub } from '../support/local-github.ts';
import { startLocalHub, type LocalHub } from '../support/local-hub/index.ts';
import type { TestSpace } from '../support/local-hub/spaces.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// The platform's own bearer (a signed-in user's JWT, an `orch_` API key) authenticates callers to the orchestrator and
// goes no further. Every way a tool call leaves the platform is exercised — the oracle, the user's Space on the
// (local) Hub, a server acting as the user on GitHub, the project MCP endpoint and an agent run, each with a JWT and
// with an API key — and every header every upstream received is checked: none carries the platform's bearer, and
// each upstream saw only the token meant for it.

const HUB_TOKEN = 'hf_ada_own_hub_token_0123456789';

describe("the platform's bearer never reaches an MCP server", function () {
  let stack: Stack;
  let github: LocalGithub;
  let hub: LocalHub;
  let oracle: TestMcpServer;
  let actsAs: TestMcpServer;
  let space: TestSpace;
  let jwt: string;
  let githubToken: string;
  let apiKey: string;
  let projectId: string;

  before(async function () {
    github = await startLocalGithub({ clientId: 'gh-client', clientSecret: 'gh-secret' });
    hub = await startLocalHub({ tokens: { [HUB_TOKEN]: 'ada' } });
    // Distinct tool names per server, so each task has exactly one place to go.
    oracle = await startTestMcpServer({ name: 'plain-oracle', toolPrefix: 'o_' });
    actsAs = await startTestMcpServer({
      name: 'gh-tools',
      toolPrefix: 'g_',
      authorize: (auth) => auth !== undefined && github.issuedTokens.some((t) => auth === `Bearer ${t}`),
      githubApiUrl: github.url,
    });
    space = await hub.spaces.add('ada/spacey', { stage: 'RUNNING', private: true, token: HUB_TOKEN });
    stack = await startStack({
      env: { HF_ENDPOINT: hub.url, GITHUB_CLIENT_ID: 'gh-client', GITHUB_CLIENT_SECRET: 'gh-secret', GITHUB_URL: github.url, GITHUB_API_URL: github.url },
    });

    github.signInAs({ id: 7, login: 'ada', name: null });
    const start = await fetch(`${stack.url}/v1/auth/github/login`, { redirect: 'manual' });
    const back = await fetch(new URL(start.headers.get('location')!), { redirect: 'manual' });
    const callback = new URL(back.headers.get('location')!);
    const signedIn = await stack.api('GET', `${callback.pathname}${callback.search}`);
    assert.equal(signedIn.status, 200, signedIn.text);
    jwt = signedIn.body.accessToken;
    githubToken = github.issuedTokens.at(-1)!;
    const key = await stack.api('POST', '/v1/api-keys', { token: jwt, body: { name: 'script' } });
    assert.equal(key.status, 201, key.text);
    apiKey = key.body.key;

    projectId = (await stack.api('POST', '/v1/projects', { token: jwt, body: { name: 'bearer' } })).body.id;
    const registrations = [
      { name: 'plain', oracleUrl: oracle.url },
      { name: 'gh-tools', oracleUrl: actsAs.url, actsAs: 'github', tools: [{ name: 'g_github_login' }] },
      // Runs on the Space only (no oracle): the Space answers `spacey_whoami` for the server's `whoami`.
      { name: 'spacey', canRunOnUserSpace: true, tools: [{ name: 'whoami' }] },
    ];
    for (const body of registrations) {
      const r = await stack.api('POST', '/v1/mcps', { token: jwt, body });
      assert.equal(r.status, 201, r.text);
    }
    const bind = await stack.api('PUT', `/v1/projects/${projectId}/spaces/spacey`, { token: jwt, body: { spaceId: 'ada/spacey', token: HUB_TOKEN } });
    assert.equal(bind.status, 200, bind.text);
  });

  after(async function () {
    await stack?.stop();
    await Promise.all([oracle?.stop(), actsAs?.stop(), hub?.stop(), github?.stop()]);
  });

  /** What each tool answers when it ran where it should. */
  const expected: Record<string, string> = { o_echo: 'hello', g_github_login: 'ada', whoami: 'ada/spacey' };
  const argumentsOf = (tool: string) => (tool === 'o_echo' ? { text: 'hello' } : {});

  async function viaRest(bearer: string, tool: string) {
    const r = await stack.api('POST', '/v1/tasks', { token: bearer, body: { projectId, tool, arguments: argumentsOf(tool) } });
    assert.equal(r.status, 202, r.text);
    const done = await stack.waitForStatus(bearer, r.body.id, ['succeeded', 'failed']);
    assert.equal(done.status, 'succeeded', `${tool}: ${JSON.stringify(done)}`);
    assert.equal(done.result.content[0].text, expected[tool]);
  }

  async function viaMcpEndpoint(bearer: string) {
    const client = new Client({ name: 'bearer-test', version: '1.0.0' }, { capabilities: {} });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${stack.url}/mcp/projects/${projectId}`), { requestInit: { headers: { Authorization: `Bearer ${bearer}` } } }));
    try {
      for (const tool of Object.keys(expected)) {
        const result = await client.callTool({ name: tool, arguments: argumentsOf(tool) });
        assert.equal(result.isError, undefined, `${tool}: ${JSON.stringify(result)}`);
        assert.deepEqual(result.content, [{ type: 'text', text: expected[tool] }]);
      }
    } finally {
      await client.close();
    }
  }

  async function viaAgentRun(bearer: string, name: string) {
    const steps = Object.keys(expected).map((tool, i) => ({ id: `s${i}`, tool, arguments: argumentsOf(tool) }));
    const defined = await stack.api('POST', `/v1/projects/${projectId}/agents`, { token: bearer, body: { name, steps } });
    assert.equal(defined.status, 201, defined.text);
    const started = await stack.api('POST', `/v1/projects/${projectId}/agents/${name}/runs`, { token: bearer, body: { input: {} } });
    assert.equal(started.status, 202, started.text);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const run = (await stack.api('GET', `/v1/agent-runs/${started.body.id}`, { token: bearer })).body;
      if (run.status === 'succeeded') return;
      assert.ok(run.status !== 'failed' && run.status !== 'canceled' && Date.now() < deadline, JSON.stringify(run));
      await new Promise((res) => setTimeout(res, 150));
    }
  }

  it('runs every path with a JWT and with an API key', async function () {
    for (const bearer of [jwt, apiKey]) {
      for (const tool of Object.keys(expected)) await viaRest(bearer, tool);
      await viaMcpEndpoint(bearer);
    }
    await viaAgentRun(jwt, 'all-paths-jwt');
    await viaAgentRun(apiKey, 'all-paths-key');
    // 2 bearers × (REST + MCP endpoint + agent run): six calls on each upstream.
    assert.equal(oracle.callCount('o_echo'), 6);
    assert.equal(actsAs.callCount('g_github_login'), 6);
    assert.equal(space.mcp.callCount('spacey_whoami'), 6);
  });

  it('no upstream request carried the platform bearer, and each upstream only its own token', async function () {
    // The key is orch_<16 hex id>_<secret>; the secret is base64url and may itself hold '_'.
    const platformSecrets = [jwt, apiKey, apiKey.slice('orch_'.length + 16 + 1)];
    const upstreams: Array<[string, Array<Record<string, string>>, string | undefined]> = [
      ['oracle', oracle.seenHeaders(), undefined],
      ['actsAs server', actsAs.seenHeaders(), `Bearer ${githubToken}`],
      ['Space', space.mcp.seenHeaders(), `Bearer ${HUB_TOKEN}`],
    ];
    for (const [name, requests, ownToken] of upstreams) {
      assert.ok(requests.length > 0, `${name} was called`);
      for (const headers of requests) {
        for (const [header, value] of Object.entries(headers)) {
          for (const secret of platformSecrets) assert.ok(!value.includes(secret), `${name} got the platform's bearer in ${header}`);
          assert.ok(!/\borch_[0-9a-f]{16}_/.test(value), `${name} got an API key in ${header}`);
        }
        if (headers.authorization !== undefined) assert.equal(headers.authorization, ownToken, `${name} got a token not meant for it`);
      }
    }
    // Each token reached its upstream (the checks above are not vacuous), and only its own.
    assert.ok(actsAs.seenHeaders().some((h) => h.authorization === `Bearer ${githubToken}`));
    assert.ok(space.mcp.seenHeaders().some((h) => h.authorization === `Bearer ${HUB_TOKEN}`));
    assert.ok(oracle.seenHeaders().every((h) => h.authorization === undefined));
    // The Hub API (Space stages) saw the Hub token or none, never the platform's bearer or the GitHub token.
    for (const r of hub.requests()) assert.ok(r.authorization === undefined || r.authorization === `Bearer ${HUB_TOKEN}`, `the Hub got ${r.authorization?.slice(0, 12)}…`);
  });
});

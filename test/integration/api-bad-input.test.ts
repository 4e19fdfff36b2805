import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { createTokenService } from '../../src/core/auth-tokens.ts';
import { freePort } from '../../src/lib/free-port.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type ApiResponse, type Stack } from '../support/stack.ts';

// A newcomer's mistakes, one by one: each gets a 4xx problem+json with a stable code and nothing internal in it.

const MAX_REQUEST_BYTES = 2048;
// Things that must never reach a client: stack frames, file paths, SQL, connection strings, driver errors.
const LEAKS = [/\bat \S+ \(.*:\d+:\d+\)/, /\bat .*:\d+:\d+/, /node_modules/, /\/work\//, /\.ts\b/, /postgres:\/\//i, /redis:\/\//i, /\bselect\b.*\bfrom\b/i, /\binsert into\b/i, /violates/i, /TypeError|ReferenceError|SyntaxError/];

describe('API answers bad input with clear problems', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;
  const seen: { what: string; status: number }[] = [];
  const accepted: string[] = [];

  function assertProblem(what: string, res: ApiResponse, status: number, code: string): any {
    seen.push({ what, status: res.status });
    assert.equal(res.status, status, `${what}: ${res.text}`);
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json\b/, `${what}: content-type`);
    const body = res.body;
    assert.equal(typeof body, 'object', `${what}: a JSON body`);
    assert.equal(body.code, code, `${what}: ${res.text}`);
    assert.equal(body.status, status, `${what}: status in the body`);
    assert.equal(body.type, `urn:orchestrator:problem:${code}`);
    assert.equal(typeof body.title, 'string');
    assert.equal(typeof body.requestId, 'string', `${what}: a request id to quote`);
    assert.ok(!('stack' in body), `${what}: no stack`);
    for (const leak of LEAKS) assert.doesNotMatch(res.text, leak, `${what}: leaks internal text`);
    return body;
  }

  const submit = (body: unknown, headers?: Record<string, string>) => stack.api('POST', '/v1/tasks', { token, body, ...(headers ? { headers } : {}) });
  const valid = () => ({ projectId, tool: 'echo', arguments: { text: 'hi' } });

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack({ env: { MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES) } });
    token = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'bad-input' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
    assert.equal(reg.status, 201, reg.text);
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  describe('authentication', function () {
    it('no token → 401 Unauthenticated with a Bearer challenge', async function () {
      const res = await stack.api('GET', '/v1/projects');
      assertProblem('no token', res, 401, 'Unauthenticated');
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      const post = await stack.api('POST', '/v1/tasks', { body: valid() });
      assertProblem('no token on submit', post, 401, 'Unauthenticated');
      const basic = await stack.api('GET', '/v1/projects', { headers: { Authorization: 'Basic YWxpY2U6c2VjcmV0' } });
      assertProblem('basic auth', basic, 401, 'Unauthenticated');
    });

    it('bad token → 401 InvalidToken', async function () {
      const garbage = await stack.api('GET', '/v1/projects', { token: 'not-a-jwt' });
      const body = assertProblem('garbage token', garbage, 401, 'InvalidToken');
      assert.match(garbage.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
      assert.doesNotMatch(body.detail ?? '', /not-a-jwt/, 'the token is not echoed back');

      const { jwt } = stack.config;
      const forger = createTokenService({ secret: randomBytes(32).toString('hex'), issuer: jwt.issuer, audience: jwt.audience, ttlSeconds: 60 });
      const forged = await forger.sign({ sub: randomUUID(), login: 'mallory' });
      const res = await stack.api('GET', '/v1/projects', { token: forged });
      const forgedBody = assertProblem('token signed with another key', res, 401, 'InvalidToken');
      assert.equal(forgedBody.detail, 'signature invalid');
      assert.doesNotMatch(res.text, new RegExp(jwt.secret!), 'the key never leaks');
    });
  });

  describe('request bodies', function () {
    it('malformed JSON → 400 MalformedJson without quoting the body', async function () {
      const res = await stack.api('POST', '/v1/tasks', { token, rawBody: '{"projectId": "secret-looking-value", "tool": ', headers: { 'Content-Type': 'application/json' } });
      const body = assertProblem('malformed JSON', res, 400, 'MalformedJson');
      assert.doesNotMatch(res.text, /secret-looking-value/);
      assert.match(body.detail, /not valid JSON/);
    });

    it('wrong types → 400 ValidationFailed with errors[] naming each field', async function () {
      const res = await submit({ projectId: 42, tool: 7, arguments: 'text' });
      const body = assertProblem('wrong types', res, 400, 'ValidationFailed');
      assert.ok(Array.isArray(body.errors), res.text);
      const paths = body.errors.map((e: { path: string }) => e.path).sort();
      assert.deepEqual(paths, ['arguments', 'projectId', 'tool']);
      for (const e of body.errors) assert.equal(typeof e.message, 'string');
    });

    it('missing project → 400 ValidationFailed naming projectId', async function () {
      const res = await submit({ tool: 'echo', arguments: {} });
      const body = assertProblem('missing projectId', res, 400, 'ValidationFailed');
      assert.deepEqual(body.errors.map((e: { path: string }) => e.path), ['projectId']);
    });

    it('a body that is not an object → 400 ValidationFailed', async function () {
      const res = await submit(['echo']);
      assertProblem('array body', res, 400, 'ValidationFailed');
      const none = await stack.api('POST', '/v1/tasks', { token });
      assertProblem('no body', none, 400, 'ValidationFailed');
    });

    it('unknown field → 400 ValidationFailed naming it', async function () {
      const res = await submit({ ...valid(), priority: 'high' });
      const body = assertProblem('unknown field', res, 400, 'ValidationFailed');
      assert.match(JSON.stringify(body.errors), /priority/);
    });

    it('wrong content-type → 415', async function () {
      const res = await stack.api('POST', '/v1/tasks', { token, rawBody: JSON.stringify(valid()), headers: { 'Content-Type': 'text/plain' } });
      assertProblem('text/plain body', res, 415, 'UnsupportedMediaType');
      const form = await stack.api('POST', '/v1/tasks', { token, rawBody: 'projectId=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
      assertProblem('form body', form, 415, 'UnsupportedMediaType');
      const latin1 = await stack.api('POST', '/v1/tasks', { token, rawBody: JSON.stringify(valid()), headers: { 'Content-Type': 'application/json; charset=latin1' } });
      assertProblem('latin1 JSON', latin1, 415, 'UnsupportedMediaType');
    });

    it(`a body over MAX_REQUEST_BYTES (${MAX_REQUEST_BYTES}) → 413 PayloadTooLarge`, async function () {
      const big = { ...valid(), arguments: { text: 'x'.repeat(MAX_REQUEST_BYTES) } };
      const res = await submit(big);
      const body = assertProblem('oversize body', res, 413, 'PayloadTooLarge');
      assert.equal(body.maxBytes, MAX_REQUEST_BYTES);
    });

    it('a chunked body that grows past the limit → 413 PayloadTooLarge', async function () {
      const url = new URL(`${stack.url}/v1/tasks`);
      const res = await new Promise<ApiResponse>((resolve, reject) => {
        const req = http.request(
          { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' } },
          (r) => {
            const chunks: Buffer[] = [];
            r.on('data', (c: Buffer) => chunks.push(c));
            r.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              const headers = new Headers(Object.entries(r.headers).map(([k, v]) => [k, String(v)] as [string, string]));
              resolve({ status: r.statusCode!, headers, body: JSON.parse(text), text });
            });
            r.on('error', reject);
          },
        );
        // The server may close the connection before the whole upload is written; only the response matters.
        req.on('error', (err) => (req.writableEnded ? undefined : reject(err)));
        req.write(`{"projectId":"${projectId}","tool":"echo","arguments":{"text":"`);
        for (let i = 0; i < 4; i++) req.write('y'.repeat(1000));
        req.end('"}}');
      });
      assertProblem('chunked oversize body', res, 413, 'PayloadTooLarge');
    });

    it('bad Idempotency-Key → 400 InvalidIdempotencyKey', async function () {
      const spaced = await submit(valid(), { 'Idempotency-Key': 'has spaces in it' });
      assertProblem('key with spaces', spaced, 400, 'InvalidIdempotencyKey');
      const long = await submit(valid(), { 'Idempotency-Key': 'k'.repeat(256) });
      assertProblem('key of 256 characters', long, 400, 'InvalidIdempotencyKey');
    });
  });

  describe('things that do not exist', function () {
    it('unknown tool → 422 UnknownTool', async function () {
      const res = await submit({ projectId, tool: 'no-such-tool', arguments: {} });
      const body = assertProblem('unknown tool', res, 422, 'UnknownTool');
      assert.equal(body.tool, 'no-such-tool');
    });

    it('arguments that do not fit the tool\'s input schema → 422 InvalidArguments naming them', async function () {
      const wrongType = await submit({ projectId, tool: 'echo', arguments: { text: 5 } });
      const body = assertProblem('echo with a number', wrongType, 422, 'InvalidArguments');
      assert.deepEqual(body.errors.map((e: { path: string }) => e.path), ['arguments.text']);
      const missing = await submit({ projectId, tool: 'echo', arguments: {} });
      const m = assertProblem('echo without text', missing, 422, 'InvalidArguments');
      assert.match(m.errors[0].message, /text/);
    });

    it('a random project id, or someone else\'s project → 404 ProjectNotFound', async function () {
      const random = await submit({ projectId: randomUUID(), tool: 'echo', arguments: {} });
      assertProblem('random project id', random, 404, 'ProjectNotFound');
      const bobToken = await stack.token('bob');
      const bobs = await stack.api('POST', '/v1/projects', { token: bobToken, body: { name: 'bobs' } });
      assert.equal(bobs.status, 201, bobs.text);
      const foreign = await submit({ projectId: bobs.body.id, tool: 'echo', arguments: {} });
      assertProblem("another user's project", foreign, 404, 'ProjectNotFound');
      const get = await stack.api('GET', `/v1/projects/${bobs.body.id}`, { token });
      assertProblem("reading another user's project", get, 404, 'ProjectNotFound');
    });

    it('non-uuid or unknown task id → 404 TaskNotFound', async function () {
      for (const id of ['not-a-uuid', '1', randomUUID()]) {
        for (const p of [`/v1/tasks/${id}`, `/v1/tasks/${id}/result`]) {
          assertProblem(`GET ${p}`, await stack.api('GET', p, { token }), 404, 'TaskNotFound');
        }
        assertProblem(`cancel ${id}`, await stack.api('POST', `/v1/tasks/${id}/cancel`, { token }), 404, 'TaskNotFound');
      }
    });

    it('unknown route → 404 NotFound; wrong method → 405 with Allow', async function () {
      assertProblem('unknown /v1 route', await stack.api('GET', '/v1/nothing-here', { token }), 404, 'NotFound');
      assertProblem('unknown top-level route', await stack.api('GET', '/nothing-here'), 404, 'NotFound');
      const put = await stack.api('PUT', '/v1/tasks', { token, body: valid() });
      const body = assertProblem('PUT /v1/tasks', put, 405, 'MethodNotAllowed');
      assert.match(put.headers.get('allow') ?? '', /\bPOST\b/);
      assert.ok(body.allowed.includes('GET') && body.allowed.includes('POST'), put.text);
      const del = await stack.api('DELETE', '/v1/tasks', { token });
      assertProblem('DELETE /v1/tasks', del, 405, 'MethodNotAllowed');
    });
  });

  describe('task state conflicts', function () {
    let finishedId: string;

    before(async function () {
      const res = await submit(valid());
      assert.equal(res.status, 202, res.text);
      finishedId = res.body.id;
      accepted.push(finishedId);
      const t = await stack.waitForStatus(token, finishedId, ['succeeded', 'failed', 'canceled']);
      assert.equal(t.status, 'succeeded', JSON.stringify(t));
    });

    it('bad Last-Event-ID → 400 InvalidLastEventId', async function () {
      for (const bad of ['abc', '-1', '1.5', '99999999999999999']) {
        const res = await stack.api('GET', `/v1/tasks/${finishedId}/events`, { token, headers: { 'Last-Event-ID': bad, Accept: 'text/event-stream' } });
        assertProblem(`Last-Event-ID ${bad}`, res, 400, 'InvalidLastEventId');
      }
    });

    it('consent when not awaiting → 409 NotAwaitingConsent', async function () {
      const res = await stack.api('POST', `/v1/tasks/${finishedId}/consent`, { token, body: { grant: true } });
      const body = assertProblem('consent on a succeeded task', res, 409, 'NotAwaitingConsent');
      assert.equal(body.status, 409);
      const wrong = await stack.api('POST', `/v1/tasks/${finishedId}/consent`, { token, body: { grant: 'yes' } });
      assertProblem('consent with a non-boolean grant', wrong, 400, 'ValidationFailed');
    });

    it('cancel a finished task → 409 TaskFinished', async function () {
      const res = await stack.api('POST', `/v1/tasks/${finishedId}/cancel`, { token });
      assertProblem('cancel a succeeded task', res, 409, 'TaskFinished');
      const after = await stack.api('GET', `/v1/tasks/${finishedId}`, { token });
      assert.equal(after.body.status, 'succeeded', 'the task stays succeeded');
    });

    it('result of an unfinished task → 409 ResultNotReady', async function () {
      const res = await submit({ projectId, tool: 'slow', arguments: { ms: 20_000, steps: 20 } });
      assert.equal(res.status, 202, res.text);
      const id: string = res.body.id;
      accepted.push(id);
      const early = await stack.api('GET', `/v1/tasks/${id}/result`, { token });
      const body = assertProblem('result while queued/running', early, 409, 'ResultNotReady');
      assert.match(body.detail, /\(status: (queued|routing|running)\)$/, early.text);

      const cancel = await stack.api('POST', `/v1/tasks/${id}/cancel`, { token });
      assert.equal(cancel.status, 202, cancel.text);
      const t = await stack.waitForStatus(token, id, ['succeeded', 'failed', 'canceled']);
      assert.equal(t.status, 'canceled');
      const late = await stack.api('GET', `/v1/tasks/${id}/result`, { token });
      assertProblem('result of a canceled task', late, 409, 'ResultNotReady');
    });
  });

  describe('registry', function () {
    it('duplicate server name → 409 ServerNameTaken', async function () {
      const res = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
      assertProblem('duplicate name', res, 409, 'ServerNameTaken');
      const count = await stack.world.db.selectFrom('mcp_servers').select((eb) => eb.fn.countAll<string>().as('n')).where('name', '=', 'tools').executeTakeFirstOrThrow();
      assert.equal(Number(count.n), 1);
    });

    it('a server whose oracleUrl is down → 422 DiscoveryFailed, nothing registered', async function () {
      const port = await freePort();
      const res = await stack.api('POST', '/v1/mcps', { token, body: { name: 'down', oracleUrl: `http://127.0.0.1:${port}/mcp` } });
      assertProblem('oracle down', res, 422, 'DiscoveryFailed');
      const row = await stack.world.db.selectFrom('mcp_servers').select('id').where('name', '=', 'down').executeTakeFirst();
      assert.equal(row, undefined);
    });

    it('a bad server name or URL → 400 ValidationFailed', async function () {
      const res = await stack.api('POST', '/v1/mcps', { token, body: { name: 'Not A Slug', oracleUrl: 'ftp://example.com' } });
      const body = assertProblem('bad name and url', res, 400, 'ValidationFailed');
      assert.deepEqual(body.errors.map((e: { path: string }) => e.path).sort(), ['name', 'oracleUrl']);
    });
  });

  describe('afterwards', function () {
    it('nothing answered 500, nothing rejected was stored, nothing was logged as unhandled', async function () {
      assert.ok(seen.length >= 40, `checked ${seen.length} answers`);
      assert.deepEqual(seen.filter((s) => s.status >= 500), [], 'no 5xx');
      const rows = await stack.world.db.selectFrom('tasks').select('id').execute();
      assert.deepEqual(rows.map((r) => r.id).sort(), [...accepted].sort(), 'only accepted submissions have task rows');
      const unhandled = stack.logLines.filter((l) => l.includes('unhandled error'));
      assert.deepEqual(unhandled, []);
    });
  });
});

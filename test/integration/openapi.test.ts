import assert from 'node:assert/strict';
import { compileErrors, validate } from '@readme/openapi-parser';
import { API_OPERATIONS } from '../../src/api/openapi.ts';
import { startStack, type Stack } from '../support/stack.ts';

// The contract between the router and its description: every route is documented, every documented operation is
// served, examples pass the schemas that validate requests, and the document is valid OpenAPI 3.1.

/** `/v1/projects/:id/` as the router writes it → `/v1/projects/{id}` as OpenAPI does. */
function openApiPath(routerPath: string): string {
  const p = routerPath.replace(/:(\w+)/g, '{$1}');
  return p.length > 1 ? p.replace(/\/$/, '') : p;
}

describe('OpenAPI document and /docs', function () {
  let stack: Stack;
  let doc: any;

  before(async function () {
    stack = await startStack({ worker: false });
    const res = await stack.api('GET', '/openapi.json');
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    doc = res.body;
  });

  after(async function () {
    await stack?.stop();
  });

  const routerOperations = () =>
    new Set(stack.routeTable.flatMap((r) => r.methods.map((m) => `${m.toLowerCase()} ${openApiPath(r.path)}`)));
  const documentedOperations = () =>
    new Set(Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)));

  it('documents every route the router serves, bearer and public', function () {
    const served = routerOperations();
    assert.ok(served.size >= 30, `the router table has ${served.size} operations`);
    const missing = [...served].filter((op) => !documentedOperations().has(op));
    assert.deepEqual(missing, []);
  });

  it('documents no operation the router does not serve', function () {
    const extra = [...documentedOperations()].filter((op) => !routerOperations().has(op));
    assert.deepEqual(extra, []);
  });

  it('marks bearer routes with the bearer scheme and public ones with none, as the router guards them', function () {
    for (const route of stack.routeTable) {
      for (const method of route.methods) {
        const op = doc.paths[openApiPath(route.path)][method.toLowerCase()];
        const expected = route.auth === 'bearer' ? [{ bearer: [] }] : [];
        assert.deepEqual(op.security, expected, `${method} ${route.path}`);
      }
    }
    assert.equal(doc.components.securitySchemes.bearer.type, 'http');
    assert.equal(doc.components.securitySchemes.bearer.scheme, 'bearer');
  });

  it('has an example for every operation with a body, and each passes the schema that validates requests', function () {
    const withBody = API_OPERATIONS.filter((op) => op.body);
    assert.ok(withBody.length >= 8, `${withBody.length} operations take a body`);
    for (const op of withBody) {
      assert.notEqual(op.example, undefined, `${op.operationId} has no example`);
      const parsed = op.body!.safeParse(op.example);
      assert.ok(parsed.success, `${op.operationId}: ${parsed.success ? '' : parsed.error.message}`);
      assert.deepEqual(doc.paths[op.path][op.method].requestBody.content['application/json'].example, op.example);
    }
  });

  it('the schemas that validate requests reject what the document says they reject', function () {
    const submit = API_OPERATIONS.find((op) => op.operationId === 'submitTask')!;
    assert.equal(submit.body!.safeParse({ ...(submit.example as object), surprise: 1 }).success, false);
    const schema = doc.paths['/v1/tasks'].post.requestBody.content['application/json'].schema;
    assert.equal(schema.additionalProperties, false);
    assert.deepEqual([...schema.required].sort(), ['projectId', 'tool']);
  });

  it('documents problem responses with their codes and the Problem schema', function () {
    const problem = doc.components.schemas.Problem;
    assert.deepEqual([...problem.required].sort(), ['code', 'instance', 'status', 'title', 'type']);
    for (const [status, response] of Object.entries<any>(doc.components.responses)) {
      assert.match(status, /^Problem\d{3}$/);
      assert.deepEqual(response.content['application/problem+json'].schema, { $ref: '#/components/schemas/Problem' });
    }
    for (const op of API_OPERATIONS) {
      const responses = doc.paths[op.path][op.method].responses;
      if (op.auth === 'bearer') {
        assert.deepEqual(responses['401'], { $ref: '#/components/responses/Problem401' }, `${op.operationId} documents 401`);
        assert.ok(responses['429'], `${op.operationId} documents 429`);
      }
      if (op.body) assert.ok(responses['400'] && responses['413'] && responses['415'], `${op.operationId} documents body problems`);
      for (const status of op.problems ?? []) assert.ok(responses[String(status)], `${op.operationId} documents ${status}`);
    }
  });

  it('answers with a documented problem: a 401 without a token and a 400 for a bad body', async function () {
    const unauthenticated = await stack.api('POST', '/v1/tasks', { body: {} });
    assert.equal(unauthenticated.status, 401);
    assert.ok(doc.paths['/v1/tasks'].post.responses['401']);
    assert.match(unauthenticated.headers.get('content-type') ?? '', /^application\/problem\+json/);
    for (const key of doc.components.schemas.Problem.required) assert.ok(key in unauthenticated.body, `problem has ${key}`);

    const token = await stack.token('docs-reader');
    const invalid = await stack.api('POST', '/v1/projects', { token, body: { name: '' } });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.code, 'ValidationFailed');
    assert.ok(doc.paths['/v1/projects'].post.responses['400']);
  });

  it('is a valid OpenAPI 3.1 document', async function () {
    assert.equal(doc.openapi, '3.1.0');
    const result = await validate(structuredClone(doc));
    assert.ok(result.valid, result.valid ? '' : compileErrors(result));
    assert.equal(result.specification, 'OpenAPI');
  });

  it('serves /docs as HTML with a CSP, and every asset the page loads', async function () {
    const page = await fetch(`${stack.url}/docs`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /default-src 'none'/);
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.length >= 4, `the page loads ${assets.join(', ')}`);
    for (const asset of assets) {
      assert.ok(asset.startsWith('/docs/'), `${asset} is served by us, not a CDN`);
      const res = await fetch(`${stack.url}${asset}`);
      assert.equal(res.status, 200, asset);
      assert.ok((await res.arrayBuffer()).byteLength > 100, `${asset} has content`);
    }
    const start = await (await fetch(`${stack.url}/docs/start.js`)).text();
    assert.match(start, /url: '\/openapi\.json'/);
    const bundle = await fetch(`${stack.url}/docs/swagger-ui-bundle.js`);
    assert.match(bundle.headers.get('content-type') ?? '', /javascript/);
    assert.match(await bundle.text(), /SwaggerUIBundle/);
  });

  it('serves no file outside its fixed list', async function () {
    for (const name of ['package.json', 'index.html', 'swagger-ui.js.map', '..%2Fpackage.json', '%2e%2e%2F%2e%2e%2Fpackage.json', 'constructor', '__proto__']) {
      const res = await stack.api('GET', `/docs/${name}`);
      assert.equal(res.status, 404, `${name} → ${res.status}`);
      assert.equal(res.body.code, 'NotFound');
    }
    const escaped = await stack.api('GET', '/docs/../package.json');
    assert.equal(escaped.status, 404);
  });
});

import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { Router } from '@koa/router';
import Koa from 'koa';
import { Registry } from 'prom-client';
import { z } from 'zod';
import { noSniff } from '../../src/api/no-sniff.ts';
import { Problem, notFoundFallback, problemMiddleware } from '../../src/api/problem.ts';
import { requestContext } from '../../src/api/request-context.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { createMetrics } from '../../src/lib/metrics.ts';

class ProjectNotFoundError extends Error {}

describe('problemMiddleware', () => {
  let baseUrl: string;
  let server: ReturnType<Koa['listen']>;
  let logLines: string[];

  before(async () => {
    logLines = [];
    const log = createLogger({ level: 'info', destination: { write: (line: string) => void logLines.push(line) } });
    const app = new Koa();
    app.use(
      problemMiddleware({
        log,
        mapError: (err) => {
          if (err instanceof ProjectNotFoundError) return new Problem(404, 'ProjectNotFound', 'Project not found');
          if (err instanceof RangeError) throw new Error('mapper bug');
          return undefined;
        },
      }),
    );
    app.use(noSniff());
    app.use(requestContext({ log, metrics: createMetrics(new Registry()) }));

    const router = new Router();
    router.get('/problem', () => {
      throw new Problem(409, 'TaskNotFinished', 'Task is not finished', 'task t1 is still running', {
        taskStatus: 'running',
        status: 200,
        code: 'Hijacked',
      }, { headers: { 'Retry-After': '5' } });
    });
    router.post('/zod', () => {
      z.object({ a: z.object({ b: z.number() }), list: z.array(z.string()) }).parse({ a: { b: 'x' }, list: [1] });
    });
    router.get('/domain', () => {
      throw new ProjectNotFoundError('project p1');
    });
    router.get('/http-error', (ctx) => {
      ctx.throw(403, 'not your project');
    });
    router.get('/http-error-5xx', (ctx) => {
      ctx.throw(503, 'db pool exhausted at 10.0.0.5');
    });
    router.get('/crash', (ctx) => {
      ctx.set('X-Partial', 'yes');
      throw new Error('connect ECONNREFUSED postgres://admin:s3cr3t@db:5432');
    });
    router.get('/mapper-crash', () => {
      throw new RangeError('internal detail');
    });
    router.get('/things/:id', (ctx) => {
      ctx.body = { id: ctx.params.id };
    });
    app.use(router.routes());
    app.use(router.allowedMethods());
    app.use(notFoundFallback());

    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => {
    logLines.length = 0;
  });

  async function problemOf(res: Response) {
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    return (await res.json()) as Record<string, unknown>;
  }

  it('renders a thrown Problem as RFC 9457 JSON with its headers', async () => {
    const res = await fetch(`${baseUrl}/problem`, { headers: { 'X-Request-Id': 'req-123' } });
    assert.equal(res.status, 409);
    assert.equal(res.headers.get('retry-after'), '5');
    assert.equal(res.headers.get('x-request-id'), 'req-123');
    assert.deepEqual(await problemOf(res), {
      type: 'urn:orchestrator:problem:TaskNotFinished',
      title: 'Task is not finished',
      status: 409,
      code: 'TaskNotFinished',
      detail: 'task t1 is still running',
      instance: '/problem',
      requestId: 'req-123',
      taskStatus: 'running',
    });
  });

  it('turns a ZodError into 400 ValidationFailed with dotted paths', async () => {
    const res = await fetch(`${baseUrl}/zod`, { method: 'POST' });
    assert.equal(res.status, 400);
    const body = await problemOf(res);
    assert.equal(body.code, 'ValidationFailed');
    const errors = body.errors as Array<{ path: string; message: string }>;
    assert.deepEqual(errors.map((e) => e.path), ['a.b', 'list.0']);
    assert.ok(errors.every((e) => typeof e.message === 'string' && e.message.length > 0));
  });

  it('lets the app map its domain errors', async () => {
    const res = await fetch(`${baseUrl}/domain`);
    assert.equal(res.status, 404);
    assert.equal((await problemOf(res)).code, 'ProjectNotFound');
  });

  it('passes exposed 4xx http errors through with their message', async () => {
    const res = await fetch(`${baseUrl}/http-error`);
    assert.equal(res.status, 403);
    const body = await problemOf(res);
    assert.equal(body.code, 'HttpError');
    assert.equal(body.title, 'Forbidden');
    assert.equal(body.detail, 'not your project');
  });

  it('keeps the status of a 5xx http error but not its message', async () => {
    const res = await fetch(`${baseUrl}/http-error-5xx`);
    assert.equal(res.status, 503);
    const text = await res.text();
    assert.doesNotMatch(text, /10\.0\.0\.5|pool/);
  });

  it('answers an unexpected error with a bare 500 and logs it once with the request id', async () => {
    const res = await fetch(`${baseUrl}/crash`, { headers: { 'X-Request-Id': 'crash-1' } });
    assert.equal(res.status, 500);
    assert.equal(res.headers.get('x-partial'), null);
    assert.equal(res.headers.get('x-request-id'), 'crash-1');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', 'nosniff survives the header reset');
    const text = await res.clone().text();
    assert.doesNotMatch(text, /ECONNREFUSED|s3cr3t|postgres/);
    assert.deepEqual(await problemOf(res), {
      type: 'urn:orchestrator:problem:InternalError',
      title: 'Internal Server Error',
      status: 500,
      code: 'InternalError',
      instance: '/crash',
      requestId: 'crash-1',
    });
    await new Promise((resolve) => setImmediate(resolve));
    const rawErrorLines = logLines.filter((line) => JSON.parse(line).level >= 50);
    assert.equal(rawErrorLines.length, 1);
    assert.equal(rawErrorLines[0]!.split('"reqId"').length - 1, 1);
    const errorLines = rawErrorLines.map((line) => JSON.parse(line));
    assert.equal(errorLines[0].reqId, 'crash-1');
    assert.match(errorLines[0].err.message, /ECONNREFUSED/);
  });

  it('answers 500 when the error mapper itself throws', async () => {
    const res = await fetch(`${baseUrl}/mapper-crash`);
    assert.equal(res.status, 500);
    assert.equal((await problemOf(res)).code, 'InternalError');
  });

  it('answers 404 NotFound for an unmatched route', async () => {
    const res = await fetch(`${baseUrl}/nowhere?x=1`);
    assert.equal(res.status, 404);
    const body = await problemOf(res);
    assert.equal(body.code, 'NotFound');
    assert.equal(body.instance, '/nowhere');
  });

  it('answers 405 MethodNotAllowed with Allow for a known path', async () => {
    const res = await fetch(`${baseUrl}/things/7`, { method: 'DELETE' });
    assert.equal(res.status, 405);
    assert.match(res.headers.get('allow') ?? '', /GET/);
    const body = await problemOf(res);
    assert.equal(body.code, 'MethodNotAllowed');
    assert.ok((body.allowed as string[]).includes('GET'));
  });

  it('still serves matched routes', async () => {
    const res = await fetch(`${baseUrl}/things/7`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { id: '7' });
  });
});

describe('notFoundFallback without allowedMethods', () => {
  it('answers 405 from the matched layers alone', async () => {
    const app = new Koa();
    app.use(problemMiddleware({ log: createLogger({ level: 'silent' }) }));
    const router = new Router();
    router.post('/items', (ctx) => {
      ctx.status = 201;
    });
    app.use(router.routes());
    app.use(notFoundFallback());
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const wrongMethod = await fetch(`${url}/items`);
      assert.equal(wrongMethod.status, 405);
      assert.equal(wrongMethod.headers.get('allow'), 'POST');
      const missing = await fetch(`${url}/other`);
      assert.equal(missing.status, 404);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

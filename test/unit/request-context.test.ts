import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { Router } from '@koa/router';
import Koa from 'koa';
import { Registry } from 'prom-client';
import { notFoundFallback, problemMiddleware } from '../../src/api/problem.ts';
import { requestContext } from '../../src/api/request-context.ts';
import { openEventStream } from '../../src/api/sse.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { collectProcessMetrics, createMetrics } from '../../src/lib/metrics.ts';

describe('requestContext', () => {
  let baseUrl: string;
  let server: ReturnType<Koa['listen']>;
  let registry: Registry;
  let metrics: ReturnType<typeof createMetrics>;
  let lines: string[];
  let seenState: { requestId?: string; hasLog?: boolean } = {};

  before(async () => {
    lines = [];
    registry = new Registry();
    const log = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(line) } });
    const app = new Koa();
    app.use(problemMiddleware({ log }));
    metrics = createMetrics(registry);
    app.use(requestContext({ log, metrics }));
    const router = new Router();
    router.get('/tasks/:id', (ctx) => {
      seenState = { requestId: ctx.state.requestId, hasLog: typeof ctx.state.log?.info === 'function' };
      ctx.state.log.info({ taskId: ctx.params.id }, 'looked up');
      ctx.body = { id: ctx.params.id };
    });
    router.get('/tasks/:id/events', async (ctx) => {
      const stream = openEventStream(ctx, { heartbeatMs: 1000 });
      stream.send({ id: 1, event: 'snapshot', data: {} });
      setTimeout(() => stream.close(), 150);
      await stream.closed;
    });
    app.use(router.routes());
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
    lines.length = 0;
    registry.resetMetrics();
  });

  const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

  async function durationSamples() {
    const { values } = await metrics.httpRequestDuration.get();
    return values.filter((v) => v.metricName?.endsWith('_count') && v.value > 0).map((v) => v.labels);
  }

  it('accepts a well-formed inbound X-Request-Id and exposes it to handlers and logs', async () => {
    const res = await fetch(`${baseUrl}/tasks/t-1?verbose=1`, { headers: { 'X-Request-Id': 'abc.DEF_123-x' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-request-id'), 'abc.DEF_123-x');
    assert.deepEqual(seenState, { requestId: 'abc.DEF_123-x', hasLog: true });
    await settle();
    const handlerLine = entries().find((e) => e.msg === 'looked up');
    assert.equal(handlerLine?.reqId, 'abc.DEF_123-x');
  });

  it('replaces a missing or malformed X-Request-Id with a UUID', async () => {
    for (const headers of [{}, { 'X-Request-Id': 'bad id with spaces' }, { 'X-Request-Id': 'x'.repeat(65) }] as Array<Record<string, string>>) {
      const res = await fetch(`${baseUrl}/tasks/1`, { headers });
      assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });

  it('writes one access line per request without the query string', async () => {
    await (await fetch(`${baseUrl}/tasks/t-2?token=SECRETQUERY`)).text();
    await settle();
    const access = entries().filter((e) => e.msg === 'request');
    assert.equal(access.length, 1);
    assert.equal(access[0]!.method, 'GET');
    assert.equal(access[0]!.path, '/tasks/t-2');
    assert.equal(access[0]!.status, 200);
    assert.equal(typeof access[0]!.ms, 'number');
    assert.ok(!lines.join('').includes('SECRETQUERY'));
  });

  it('labels the duration histogram with the route pattern, never the raw path', async () => {
    await (await fetch(`${baseUrl}/tasks/a`)).text();
    await (await fetch(`${baseUrl}/tasks/b`)).text();
    await (await fetch(`${baseUrl}/no/such/thing`)).text();
    await settle();
    const samples = await durationSamples();
    assert.deepEqual(
      samples.map((l) => `${l.method} ${l.route} ${l.status}`).sort(),
      ['GET /tasks/:id 200', 'GET unmatched 404'],
    );
    const text = await registry.metrics();
    assert.match(text, /orchestrator_http_request_duration_seconds_count\{method="GET",route="\/tasks\/:id",status="200"\} 2/);
    assert.doesNotMatch(text, /\/tasks\/a|no\/such/);
  });

  it('observes a streaming response when it ends, with its full duration', async () => {
    const res = await fetch(`${baseUrl}/tasks/t-3/events`);
    assert.equal(res.status, 200);
    assert.deepEqual(await durationSamples(), []);
    await res.text();
    await settle();
    const samples = await durationSamples();
    assert.deepEqual(samples, [{ method: 'GET', route: '/tasks/:id/events', status: '200' }]);
    const access = entries().find((e) => e.msg === 'request');
    assert.ok((access?.ms as number) >= 140, `duration ${String(access?.ms)}`);
  });
});

describe('createMetrics', () => {
  it('registers every metric under the orchestrator_ prefix on the given registry only', async () => {
    const registry = new Registry();
    const metrics = createMetrics(registry);
    metrics.tasksTotal.inc({ outcome: 'succeeded' });
    metrics.dispatchDuration.observe({ target_kind: 'oracle', outcome: 'ok' }, 0.2);
    metrics.dispatchesInFlight.inc();
    metrics.eventsPublished.inc({ type: 'status' });
    metrics.rateLimitRejections.inc({ limit: 'requests' });
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name).sort();
    assert.deepEqual(names, [
      'orchestrator_best_effort_failures_total',
      'orchestrator_dispatch_duration_seconds',
      'orchestrator_dispatches_in_flight',
      'orchestrator_events_published_total',
      'orchestrator_http_request_duration_seconds',
      'orchestrator_rate_limit_rejections_total',
      'orchestrator_slot_attempts_total',
      'orchestrator_sse_streams_open',
      'orchestrator_tasks_reconciled_total',
      'orchestrator_tasks_total',
    ]);
    // A second registry gets its own metrics: nothing lives in prom-client's global register.
    assert.doesNotThrow(() => createMetrics(new Registry()));
  });

  it('adds process metrics only when asked', async () => {
    const registry = new Registry();
    collectProcessMetrics(registry);
    assert.match(await registry.metrics(), /process_cpu_user_seconds_total/);
  });
});

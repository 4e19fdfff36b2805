import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import type { Logger } from '../lib/logger.ts';
import type { Metrics } from '../lib/metrics.ts';
import type { AppState } from './authenticate.ts';

const INBOUND_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export function requestContext(opts: { log: Logger; metrics: Metrics }): Koa.Middleware {
  const { metrics } = opts;
  return async function withRequestContext(ctx, next) {
    const started = process.hrtime.bigint();
    const inbound = ctx.get('X-Request-Id');
    const requestId = INBOUND_REQUEST_ID.test(inbound) ? inbound : randomUUID();
    const log = opts.log.child({ reqId: requestId });
    const state = ctx.state as Partial<AppState>;
    state.requestId = requestId;
    state.log = log;
    ctx.set('X-Request-Id', requestId);

    // Read on 'finish'/'close' rather than after next(): the status is final only then, and an
    // SSE response outlives the middleware chain.
    const method = ctx.method;
    const path = ctx.path;
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      ctx.res.off('finish', record);
      ctx.res.off('close', record);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const status = ctx.res.statusCode;
      const matched: unknown = ctx._matchedRoute;
      // Only the route pattern, never the raw path: ids in paths would explode label cardinality.
      const route = matched === undefined ? 'unmatched' : String(matched);
      metrics.httpRequestDuration.observe({ method, route, status: String(status) }, seconds);
      const line = { method, path, status, ms: Math.round(seconds * 1e4) / 10, ...(ctx.res.writableFinished ? {} : { aborted: true }) };
      if (status >= 500) log.warn(line, 'request');
      else log.info(line, 'request');
    };
    ctx.res.once('finish', record);
    ctx.res.once('close', record);
    await next();
  };
}

import { STATUS_CODES } from 'node:http';
import Koa from 'koa';
import { $ZodError } from 'zod/v4/core';
import type { Logger } from '../lib/logger.ts';

// RFC 9457 problem details; `code` is the stable, machine-readable part clients switch on.
export class Problem extends Error {
  override name = 'Problem';
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string | undefined;
  readonly extra: Record<string, unknown>;
  // Response headers that belong with this problem (WWW-Authenticate, Allow, Retry-After).
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    title: string,
    detail?: string,
    extra?: Record<string, unknown>,
    opts?: { headers?: Record<string, string>; cause?: unknown },
  ) {
    super(detail ?? title, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.status = status;
    this.code = code;
    this.title = title;
    this.detail = detail;
    this.extra = extra ?? {};
    this.headers = opts?.headers ?? {};
  }
}

const RESERVED_KEYS = new Set(['type', 'title', 'status', 'code', 'detail', 'instance', 'requestId']);

// Headers that must survive an error: correlation, CORS so browsers can read the problem, and nosniff.
function keepHeaderOnError(name: string): boolean {
  return name === 'x-request-id' || name === 'vary' || name === 'x-content-type-options' || name.startsWith('access-control-');
}

function statusTitle(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

function fromZod(err: $ZodError): Problem {
  const errors = err.issues.map((issue) => ({
    path: issue.path.map((segment) => String(segment)).join('.'),
    message: issue.message,
  }));
  return new Problem(400, 'ValidationFailed', 'Request validation failed', errors[0] ? `${errors[0].path || '(root)'}: ${errors[0].message}` : undefined, { errors });
}

interface HttpErrorLike {
  status: number;
  expose: boolean;
  message: string;
  headers?: Record<string, string>;
}

function isHttpError(err: unknown): err is HttpErrorLike {
  return err instanceof Koa.HttpError;
}

function fromHttpError(err: HttpErrorLike): Problem {
  const status = err.status >= 400 && err.status <= 599 ? err.status : 500;
  const headers = status < 500 && err.headers ? { ...err.headers } : {};
  const detail = status < 500 && err.expose ? err.message : undefined;
  return new Problem(status, 'HttpError', statusTitle(status), detail, undefined, { headers });
}

function internalError(): Problem {
  return new Problem(500, 'InternalError', 'Internal Server Error');
}

function toProblem(err: unknown, mapError?: (err: unknown) => Problem | undefined): { problem: Problem; unexpected: boolean } {
  if (err instanceof Problem) return { problem: err, unexpected: false };
  const mapped = mapError?.(err);
  if (mapped) return { problem: mapped, unexpected: false };
  if (err instanceof $ZodError) return { problem: fromZod(err), unexpected: false };
  if (isHttpError(err)) {
    const problem = fromHttpError(err);
    return { problem, unexpected: problem.status >= 500 };
  }
  return { problem: internalError(), unexpected: true };
}

export function problemBody(problem: Problem, instance: string, requestId: string | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = {
    type: `urn:orchestrator:problem:${problem.code}`,
    title: problem.title,
    status: problem.status,
    code: problem.code,
  };
  if (problem.detail !== undefined) body.detail = problem.detail;
  body.instance = instance;
  if (requestId !== undefined) body.requestId = requestId;
  for (const [key, value] of Object.entries(problem.extra)) {
    if (!RESERVED_KEYS.has(key)) body[key] = value;
  }
  return body;
}

export function problemMiddleware(opts: {
  log: Logger;
  mapError?: (err: unknown) => Problem | undefined;
}): Koa.Middleware {
  return async function problem(ctx, next) {
    try {
      await next();
    } catch (err) {
      const requestId: string | undefined = ctx.state.requestId;
      // The request's child logger already carries reqId; the root one needs it added.
      const log: Logger = ctx.state.log ?? (requestId === undefined ? opts.log : opts.log.child({ reqId: requestId }));

      let result: { problem: Problem; unexpected: boolean };
      try {
        result = toProblem(err, opts.mapError);
      } catch (mapFailure) {
        log.error({ err: mapFailure }, 'error mapping failed');
        result = { problem: internalError(), unexpected: true };
      }
      if (result.unexpected) log.error({ err }, 'unhandled error');

      // A streaming response (SSE) already sent its status; all that is left is to end it.
      if (ctx.headerSent || !ctx.writable) {
        if (!result.unexpected) log.warn({ err }, 'error after response started');
        if (!ctx.res.writableEnded) ctx.res.end();
        return;
      }

      const { problem } = result;
      for (const name of ctx.res.getHeaderNames()) {
        if (!keepHeaderOnError(name)) ctx.res.removeHeader(name);
      }
      ctx.set(problem.headers);
      ctx.status = problem.status;
      ctx.body = JSON.stringify(problemBody(problem, ctx.path, requestId));
      ctx.type = 'application/problem+json';
    }
  };
}

interface MatchedLayer {
  methods: string[];
}

// Mount after the routers. Turns the empty 404/405/501 that Koa and @koa/router leave behind
// into problems, so a caller never sees a plain-text "Not Found".
export function notFoundFallback(): Koa.Middleware {
  return async function notFound(ctx, next) {
    await next();
    if (ctx.body != null || ctx.respond === false || ctx.headerSent) return;

    if (ctx.status === 404) {
      const matched: MatchedLayer[] = Array.isArray(ctx.matched) ? ctx.matched : [];
      const allowed = [...new Set(matched.flatMap((layer) => layer.methods ?? []))];
      if (allowed.length > 0 && !allowed.includes(ctx.method)) {
        throw methodNotAllowed(ctx.method, allowed);
      }
      throw new Problem(404, 'NotFound', 'Not Found', `no resource at ${ctx.path}`);
    }
    if (ctx.status === 405) {
      const allowed = (ctx.response.get('Allow') || '').split(',').map((m) => m.trim()).filter(Boolean);
      throw methodNotAllowed(ctx.method, allowed);
    }
    if (ctx.status === 501) {
      throw new Problem(501, 'NotImplemented', 'Not Implemented', `method ${ctx.method} is not supported`);
    }
  };
}

function methodNotAllowed(method: string, allowed: string[]): Problem {
  return new Problem(405, 'MethodNotAllowed', 'Method Not Allowed', `method ${method} is not allowed here`, { allowed }, {
    headers: { Allow: allowed.join(', ') },
  });
}

import type Koa from 'koa';
import { Problem } from './problem.ts';

export interface EventStream {
  // false once the socket buffer is full (or the stream closed): the caller should slow down.
  send(ev: { id?: number | string; event: string; data: unknown }): boolean;
  // Resolves when the buffer has drained or the stream closed.
  waitForDrain(): Promise<void>;
  close(): void;
  readonly closed: Promise<void>;
  readonly isClosed: boolean;
}

const DEFAULT_RETRY_MS = 3000;
// The SSE parser splits lines on CR, LF and CRLF; none may appear inside a field.
const LINE_BREAK = /\r\n|\r|\n/;

function field(name: string, value: string): string {
  if (/[\r\n\0]/.test(value)) throw new TypeError(`SSE ${name} must not contain line breaks or NUL`);
  return `${name}: ${value}\n`;
}

function frame(ev: { id?: number | string; event: string; data: unknown }): string {
  let out = '';
  if (ev.id !== undefined) out += field('id', String(ev.id));
  out += field('event', ev.event);
  const json = JSON.stringify(ev.data) ?? 'null';
  for (const line of json.split(LINE_BREAK)) out += `data: ${line}\n`;
  return `${out}\n`;
}

export function openEventStream(ctx: Koa.Context, opts: { heartbeatMs: number; retryMs?: number; onHeartbeat?: () => void }): EventStream {
  const { res, req } = ctx;
  ctx.status = 200;
  ctx.set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    // nginx buffers proxied responses unless told not to, which would hold events back.
    'X-Accel-Buffering': 'no',
  });
  // We write to the socket ourselves; Koa must not try to send a body when the chain returns.
  ctx.respond = false;
  req.socket.setNoDelay(true);
  req.socket.setKeepAlive(true);
  req.setTimeout(0);
  res.flushHeaders();

  let isClosed = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });

  const heartbeat = setInterval(() => {
    if (isClosed) return;
    if (!res.writableNeedDrain) res.write(': heartbeat\n\n');
    opts.onHeartbeat?.();
  }, opts.heartbeatMs);

  const finish = () => {
    if (isClosed) return;
    isClosed = true;
    clearInterval(heartbeat);
    res.off('close', finish);
    res.off('error', finish);
    resolveClosed();
  };
  res.on('close', finish);
  res.on('error', finish);

  res.write(`retry: ${opts.retryMs ?? DEFAULT_RETRY_MS}\n\n`);

  return {
    send(ev) {
      const text = frame(ev);
      if (isClosed || res.writableEnded) return false;
      return res.write(text);
    },
    waitForDrain() {
      if (isClosed || !res.writableNeedDrain) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    },
    close() {
      if (!res.writableEnded) res.end();
      finish();
    },
    closed,
    get isClosed() {
      return isClosed;
    },
  };
}

// Event ids are task_events.seq, a Postgres integer: a larger id cannot name an event and would overflow the query.
const MAX_EVENT_ID = 2_147_483_647;

/** The Last-Event-ID header or `lastEventId` query value; a repeated query parameter is as invalid as a non-number. */
export function parseLastEventId(value: string | string[] | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const id = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(id <= MAX_EVENT_ID)) {
    throw new Problem(400, 'InvalidLastEventId', 'Invalid Last-Event-ID', `Last-Event-ID must be an integer from 0 to ${MAX_EVENT_ID}`);
  }
  return id;
}

/** An event of a stored, ordered log (task or run events), as both streams send it. */
export interface LoggedEvent {
  seq: number;
  type: string;
  data: Record<string, unknown>;
  createdAt: string;
}

/**
 * The shape task and run streams share: hold one of the user's stream slots (renewed by the heartbeat), send a
 * `snapshot` (no id, so it never moves the client's Last-Event-ID), then each logged event after `after` with
 * `id:` = its seq, until `follow` returns (the terminal event) or the client goes away.
 */
export async function streamLoggedEvents(
  ctx: Koa.Context,
  opts: {
    slot: { renew(): Promise<void>; release(): Promise<void> };
    heartbeatMs: number;
    snapshot: unknown;
    follow: (onEvent: (e: LoggedEvent) => Promise<void>, signal: AbortSignal) => Promise<void>;
  },
): Promise<void> {
  const { slot } = opts;
  const stream = openEventStream(ctx, { heartbeatMs: opts.heartbeatMs, onHeartbeat: () => void slot.renew() });
  const stop = new AbortController();
  void stream.closed.then(() => {
    stop.abort();
    void slot.release();
  });
  stream.send({ event: 'snapshot', data: opts.snapshot });
  try {
    await opts.follow(async (e) => {
      if (!stream.send({ id: e.seq, event: e.type, data: { ...e.data, seq: e.seq, at: e.createdAt } })) await stream.waitForDrain();
    }, stop.signal);
  } finally {
    stream.close();
  }
}

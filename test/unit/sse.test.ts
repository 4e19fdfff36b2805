import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { problemMiddleware, Problem } from '../../src/api/problem.ts';
import { openEventStream, parseLastEventId } from '../../src/api/sse.ts';
import type { EventStream } from '../../src/api/sse.ts';
import { createLogger } from '../../src/lib/logger.ts';

interface ParsedEvent {
  id?: string;
  event: string;
  data: string;
}

// Just enough of the WHATWG EventSource parsing rules to check what goes over the wire.
class SseParser {
  events: ParsedEvent[] = [];
  comments: string[] = [];
  retry: number | undefined;
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;

  push(text: string): void {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop() ?? '';
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) {
        const ev: ParsedEvent = { event: this.event || 'message', data: this.data.join('\n') };
        if (this.id !== undefined) ev.id = this.id;
        this.events.push(ev);
      }
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trim());
      return;
    }
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'data') this.data.push(value);
    else if (name === 'event') this.event = value;
    else if (name === 'id') this.id = value;
    else if (name === 'retry') this.retry = Number(value);
  }
}

async function readUntil(body: ReadableStream<Uint8Array>, parser: SseParser, done: () => boolean): Promise<boolean> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    while (!done()) {
      const { value, done: ended } = await reader.read();
      if (ended) return false;
      parser.push(decoder.decode(value, { stream: true }));
    }
    return true;
  } finally {
    reader.releaseLock();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms).unref()),
  ]);
}

describe('SSE parser used by these tests', () => {
  it('joins multi-line data and keeps the last id', () => {
    const parser = new SseParser();
    parser.push('id: 4\nevent: progress\ndata: one\r\ndata: two\n\n: ping\n\ndata:three\rid: 5\r\r');
    assert.deepEqual(parser.events, [
      { id: '4', event: 'progress', data: 'one\ntwo' },
      { id: '5', event: 'message', data: 'three' },
    ]);
    assert.deepEqual(parser.comments, ['ping']);
  });
});

describe('openEventStream', () => {
  let baseUrl: string;
  let server: ReturnType<Koa['listen']>;
  let streams: EventStream[];
  let floodResult: { sentBeforeFull: number; drained: Promise<void> } | undefined;

  before(async () => {
    streams = [];
    const app = new Koa();
    // A client that aborts with unsent data buffered makes Koa emit ECONNRESET; that is expected here.
    app.silent = true;
    app.use(problemMiddleware({ log: createLogger({ level: 'silent' }) }));
    app.use(async (ctx, next) => {
      if (ctx.path !== '/flood') return next();
      const stream = openEventStream(ctx, { heartbeatMs: 60_000 });
      streams.push(stream);
      const chunk = 'x'.repeat(256 * 1024);
      let sent = 0;
      while (sent < 1000 && stream.send({ id: sent, event: 'progress', data: chunk })) sent++;
      floodResult = { sentBeforeFull: sent, drained: stream.waitForDrain() };
      await stream.closed;
    });
    app.use(async (ctx) => {
      const after = parseLastEventId(ctx.get('Last-Event-ID') || undefined) ?? 0;
      const stream = openEventStream(ctx, { heartbeatMs: 30 });
      streams.push(stream);
      stream.send({ id: after + 1, event: 'snapshot', data: { text: 'line1\nline2\r\nline3\rend', n: 1 } });
      stream.send({ id: String(after + 2), event: 'status', data: 'multi\n\nline' });
      stream.send({ event: 'progress', data: undefined });
      if (ctx.path === '/close-now') stream.close();
      if (ctx.path === '/throw-later') throw new Error('route failed after the stream opened');
      await stream.closed;
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sets the streaming headers and a retry hint', async () => {
    const controller = new AbortController();
    const res = await fetch(`${baseUrl}/events`, { signal: controller.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    const parser = new SseParser();
    await readUntil(res.body!, parser, () => parser.events.length >= 3);
    assert.equal(parser.retry, 3000);
    controller.abort();
  });

  it('delivers events whose data round-trips through JSON, newlines included', async () => {
    const controller = new AbortController();
    const res = await fetch(`${baseUrl}/events`, { signal: controller.signal, headers: { 'Last-Event-ID': '41' } });
    const parser = new SseParser();
    await readUntil(res.body!, parser, () => parser.events.length >= 3);
    controller.abort();
    const [snapshot, status, progress] = parser.events;
    assert.equal(snapshot!.id, '42');
    assert.equal(snapshot!.event, 'snapshot');
    assert.deepEqual(JSON.parse(snapshot!.data), { text: 'line1\nline2\r\nline3\rend', n: 1 });
    assert.equal(status!.id, '43');
    assert.equal(JSON.parse(status!.data), 'multi\n\nline');
    assert.equal(progress!.event, 'progress');
    assert.equal(progress!.data, 'null');
  });

  it('writes heartbeat comments while idle', async () => {
    const controller = new AbortController();
    const res = await fetch(`${baseUrl}/events`, { signal: controller.signal });
    const parser = new SseParser();
    await withTimeout(readUntil(res.body!, parser, () => parser.comments.filter((c) => c === 'heartbeat').length >= 2), 5000, 'heartbeats');
    controller.abort();
  });

  it('resolves closed and stops sending when the client goes away', async () => {
    const controller = new AbortController();
    const res = await fetch(`${baseUrl}/events`, { signal: controller.signal });
    const parser = new SseParser();
    await readUntil(res.body!, parser, () => parser.events.length >= 1);
    const stream = streams.at(-1)!;
    assert.equal(stream.isClosed, false);
    controller.abort();
    await withTimeout(stream.closed, 5000, 'closed after abort');
    assert.equal(stream.isClosed, true);
    assert.equal(stream.send({ event: 'status', data: {} }), false);
  });

  it('ends the response when the server calls close()', async () => {
    const res = await fetch(`${baseUrl}/close-now`);
    const parser = new SseParser();
    const stillOpen = await withTimeout(readUntil(res.body!, parser, () => false), 5000, 'end of stream');
    assert.equal(stillOpen, false);
    assert.equal(parser.events.length, 3);
    assert.equal(streams.at(-1)!.isClosed, true);
  });

  it('ends the stream when the route fails after it opened', async () => {
    const res = await fetch(`${baseUrl}/throw-later`);
    assert.equal(res.status, 200);
    const parser = new SseParser();
    await withTimeout(readUntil(res.body!, parser, () => false), 5000, 'end of stream');
    await withTimeout(streams.at(-1)!.closed, 5000, 'closed after route failure');
  });

  it('reports a full socket buffer from send() and resolves waitForDrain once it empties', async () => {
    const controller = new AbortController();
    const res = await fetch(`${baseUrl}/flood`, { signal: controller.signal });
    assert.equal(res.status, 200);
    // The client has not read a byte yet, so the server must hit its buffer limit well before 1000 sends.
    const deadline = Date.now() + 5000;
    while (!floodResult && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(floodResult, 'flood route never ran');
    assert.ok(floodResult.sentBeforeFull < 1000, `send() never returned false (${floodResult.sentBeforeFull} sends)`);
    const parser = new SseParser();
    await readUntil(res.body!, parser, () => parser.events.length >= floodResult!.sentBeforeFull);
    await withTimeout(floodResult.drained, 5000, 'drain');
    controller.abort();
  });

  it('answers 400 InvalidLastEventId before opening the stream', async () => {
    const res = await fetch(`${baseUrl}/events`, { headers: { 'Last-Event-ID': 'abc' } });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, 'InvalidLastEventId');
  });
});

describe('parseLastEventId', () => {
  it('accepts absent and integers from 0 to the largest event seq', () => {
    assert.equal(parseLastEventId(undefined), undefined);
    assert.equal(parseLastEventId(''), undefined);
    assert.equal(parseLastEventId('0'), 0);
    assert.equal(parseLastEventId('007'), 7);
    assert.equal(parseLastEventId('12345'), 12345);
    assert.equal(parseLastEventId('2147483647'), 2147483647);
  });

  it('throws a 400 Problem for anything else, including ids past the seq column', () => {
    const bad: Array<string | string[]> = [
      '-1', '1.5', '1e3', ' 7', 'abc', '0x10', '٣', '2147483648', '4294967296', '9007199254740991', '9007199254740992',
      '99999999999999999999', '9'.repeat(400), ['1', '2'], [],
    ];
    for (const value of bad) {
      assert.throws(
        () => parseLastEventId(value),
        (err: unknown) => err instanceof Problem && err.status === 400 && err.code === 'InvalidLastEventId',
        JSON.stringify(value),
      );
    }
  });
});

import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { jsonBody } from '../../src/api/json-body.ts';
import { problemMiddleware } from '../../src/api/problem.ts';
import { createLogger } from '../../src/lib/logger.ts';

const MAX_BYTES = 1024;

describe('jsonBody', () => {
  let baseUrl: string;
  let server: ReturnType<Koa['listen']>;

  before(async () => {
    const app = new Koa();
    app.use(problemMiddleware({ log: createLogger({ level: 'silent' }) }));
    app.use(jsonBody({ maxBytes: MAX_BYTES }));
    app.use((ctx) => {
      ctx.body = { received: ctx.request.body === undefined ? '<none>' : ctx.request.body };
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const post = (body: BodyInit | undefined, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    fetch(`${baseUrl}/x`, { method: 'POST', body, headers });

  it('parses a JSON body onto ctx.request.body', async () => {
    const res = await post(JSON.stringify({ a: [1, 'ü'] }), { 'content-type': 'application/json; charset=UTF-8' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { received: { a: [1, 'ü'] } });
  });

  it('accepts a body of exactly maxBytes', async () => {
    const body = JSON.stringify({ s: 'x'.repeat(MAX_BYTES - 8) });
    assert.equal(Buffer.byteLength(body), MAX_BYTES);
    const res = await post(body);
    assert.equal(res.status, 200);
  });

  it('leaves an empty body undefined, whatever its content type', async () => {
    const res = await post(undefined, {});
    assert.deepEqual(await res.json(), { received: '<none>' });
    const empty = await post('', { 'content-type': 'text/plain' });
    assert.deepEqual(await empty.json(), { received: '<none>' });
  });

  it('does not touch GET requests', async () => {
    const res = await fetch(`${baseUrl}/x`);
    assert.deepEqual(await res.json(), { received: '<none>' });
  });

  it('answers 413 from Content-Length alone', async () => {
    const res = await post(JSON.stringify({ s: 'x'.repeat(MAX_BYTES) }));
    assert.equal(res.status, 413);
    assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const problem = await res.json();
    assert.equal(problem.code, 'PayloadTooLarge');
    assert.equal(problem.maxBytes, MAX_BYTES);
  });

  it('answers 413 to a chunked body without reading it to the end', async () => {
    // An endless upload: the test can only finish if the server stops reading and answers early.
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new TextEncoder().encode(' '.repeat(256)));
      },
    });
    const res = await fetch(`${baseUrl}/x`, {
      method: 'POST',
      body: endless,
      headers: { 'content-type': 'application/json' },
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 413);
    assert.equal(res.headers.get('connection'), 'close');
    assert.equal((await res.json()).code, 'PayloadTooLarge');
  });

  it('answers 415 to a body that is not application/json', async () => {
    for (const type of ['text/plain', 'application/jsonx', 'application/json; charset=latin1']) {
      const res = await post('{}', { 'content-type': type });
      assert.equal(res.status, 415, type);
      assert.equal((await res.json()).code, 'UnsupportedMediaType');
    }
    const missing = await fetch(`${baseUrl}/x`, { method: 'PUT', body: new Blob(['{}']) });
    assert.equal(missing.status, 415);
  });

  it('answers 400 MalformedJson with a position and without echoing the body', async () => {
    const res = await post('{"password": "hunter2", }');
    assert.equal(res.status, 400);
    const problem = await res.json();
    assert.equal(problem.code, 'MalformedJson');
    assert.match(problem.detail, /position \d+/);
    assert.doesNotMatch(JSON.stringify(problem), /hunter2/);
  });

  it('answers 400 MalformedJson to bytes that are not UTF-8', async () => {
    const res = await post(new Uint8Array([0x22, 0xff, 0xfe, 0x22]));
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, 'MalformedJson');
  });
});

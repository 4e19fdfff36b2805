import type { IncomingMessage } from 'node:http';
import type Koa from 'koa';
import { inspectJson } from '../lib/json-shape.ts';
import { Problem } from './problem.ts';

declare module 'koa' {
  interface Request {
    body?: unknown;
  }
}

const METHODS_WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);

function tooLarge(maxBytes: number): Problem {
  // The rest of the upload is not worth reading: closing the connection stops the sender.
  return new Problem(413, 'PayloadTooLarge', 'Payload Too Large', `request body exceeds ${maxBytes} bytes`, { maxBytes }, {
    headers: { Connection: 'close' },
  });
}

// Refused before the body is read, so the connection closes rather than draining an unknown amount.
function unsupportedMediaType(detail: string): Problem {
  return new Problem(415, 'UnsupportedMediaType', 'Unsupported Media Type', detail, undefined, {
    headers: { Connection: 'close' },
  });
}

function malformed(detail: string): Problem {
  return new Problem(400, 'MalformedJson', 'Malformed JSON', detail);
}

// JSON is UTF-8 on the wire (RFC 8259 §8.1); any other declared charset is refused, not guessed.
function checkContentType(header: string | undefined): void {
  if (!header) throw unsupportedMediaType('a request body needs Content-Type: application/json');
  const [mediaType = '', ...params] = header.split(';').map((part) => part.trim());
  if (mediaType.toLowerCase() !== 'application/json') {
    throw unsupportedMediaType('request body must be application/json');
  }
  for (const param of params) {
    const [name = '', value = ''] = param.split('=').map((part) => part.trim());
    if (name.toLowerCase() !== 'charset') continue;
    if (!/^"?utf-8"?$/i.test(value)) throw unsupportedMediaType('request body must be UTF-8 encoded');
  }
}

function readLimited(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;

    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBytes) {
        cleanup();
        req.pause();
        chunks.length = 0;
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, received));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new Problem(400, 'BodyReadFailed', 'Bad Request', 'request body could not be read', undefined, { cause: err }));
    };
    // 'close' before 'end' means the client went away mid-upload.
    const onClose = () => onError(new Error('request closed before its body ended'));

    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function parseJson(bytes: Buffer): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw malformed('request body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    // V8's message can quote the body; only the position is safe and useful to return.
    const position = err instanceof Error ? /at position (\d+)/.exec(err.message)?.[1] : undefined;
    throw malformed(position ? `request body is not valid JSON (error at position ${position})` : 'request body is not valid JSON');
  }
}

// Deeper bodies are refused before any code walks them recursively (schemas, hashing, Postgres jsonb).
export const MAX_JSON_DEPTH = 64;

/** NUL cannot be stored in Postgres text or jsonb, and nothing this API accepts needs it. */
function checkShape(body: unknown): void {
  const problem = inspectJson(body, { maxDepth: MAX_JSON_DEPTH });
  if (problem?.kind === 'too_deep') {
    throw new Problem(400, 'NestingTooDeep', 'Bad Request', `request body nests deeper than ${MAX_JSON_DEPTH} levels`, { maxDepth: MAX_JSON_DEPTH });
  }
  if (problem?.kind === 'lone_surrogate') {
    throw new Problem(400, 'InvalidUnicode', 'Bad Request', `request body has a lone UTF-16 surrogate escape at ${problem.path.slice(0, 200)}`);
  }
  if (problem?.kind === 'nul') {
    throw new Problem(400, 'NulCharacter', 'Bad Request', `request body has a NUL character (\\u0000) at ${problem.path.slice(0, 200)}`);
  }
}

export function jsonBody(opts: { maxBytes: number }): Koa.Middleware {
  const { maxBytes } = opts;
  return async function parseJsonBody(ctx, next) {
    if (!METHODS_WITH_BODY.has(ctx.method) || ctx.state.bodyRead === true) return next();
    ctx.state.bodyRead = true;
    const { req } = ctx;
    const lengthHeader = req.headers['content-length'];
    const declaredLength = lengthHeader === undefined ? undefined : Number(lengthHeader);
    const chunked = req.headers['transfer-encoding'] !== undefined;

    if (declaredLength === 0 || (declaredLength === undefined && !chunked)) {
      ctx.request.body = undefined;
      return next();
    }
    if (declaredLength !== undefined && declaredLength > maxBytes) throw tooLarge(maxBytes);
    checkContentType(req.headers['content-type']);
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
      throw unsupportedMediaType('compressed request bodies are not accepted');
    }

    if (req.readableEnded) throw new Error('request body was already consumed by another middleware');
    const bytes = await readLimited(req, maxBytes);
    ctx.request.body = bytes.length === 0 ? undefined : parseJson(bytes);
    checkShape(ctx.request.body);
    return next();
  };
}

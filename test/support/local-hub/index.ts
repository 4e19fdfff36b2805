import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createDatasetsModule, type DatasetsControl } from './datasets.ts';
import { createSpacesModule, type SpacesControl } from './spaces.ts';

// A local stand-in for the Hugging Face Hub, speaking its real HTTP protocol for what orchestrator uses.
// Our code reaches it through HF_ENDPOINT / the library's `hubUrl`, exactly as it would reach huggingface.co.

export interface HubRequest {
  method: string;
  path: string;
  authorization?: string;
}

export interface HubRoute {
  method: string;
  pattern: RegExp;
  handle(req: IncomingMessage, res: ServerResponse, match: RegExpExecArray, url: URL): Promise<void>;
}

export interface HubModule<Control> {
  routes: HubRoute[];
  control: Control;
  stop(): Promise<void>;
}

/** Shared helpers the modules use, so every answer looks like the Hub's. */
export interface HubContext {
  /** The hub's own base URL (http://127.0.0.1:PORT), known once listening. */
  baseUrl(): string;
  /** The user a `Authorization: Bearer <token>` header names, or undefined (anonymous or unknown token). */
  userOf(req: IncomingMessage): string | undefined;
  readBody(req: IncomingMessage, limitBytes?: number): Promise<Buffer>;
  json(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void;
  /** The Hub's error shape: `{"error": "..."}` with the status, plus `X-Error-Message`. */
  error(res: ServerResponse, status: number, message: string): void;
}

export interface LocalHub {
  url: string;
  /** Every request received, in order (tests check where tokens were sent). */
  requests(): HubRequest[];
  datasets: DatasetsControl;
  spaces: SpacesControl;
  stop(): Promise<void>;
}

export async function startLocalHub(opts: { tokens?: Record<string, string>; port?: number } = {}): Promise<LocalHub> {
  const tokens = opts.tokens ?? {};
  const log: HubRequest[] = [];
  const sockets = new Set<Socket>();
  let baseUrl = '';

  const ctx: HubContext = {
    baseUrl: () => baseUrl,
    userOf(req) {
      const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      return m ? tokens[m[1]!] : undefined;
    },
    async readBody(req, limitBytes = 512 * 1024 * 1024) {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > limitBytes) throw new Error('body too large');
        chunks.push(chunk as Buffer);
      }
      return Buffer.concat(chunks);
    },
    json(res, status, body, headers = {}) {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers }).end(text);
    },
    error(res, status, message) {
      ctx.json(res, status, { error: message }, { 'X-Error-Message': message });
    },
  };

  const datasets = createDatasetsModule(ctx);
  const spaces = createSpacesModule(ctx);
  const routes = [...datasets.routes, ...spaces.routes];

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    log.push({ method: req.method ?? 'GET', path: url.pathname, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    try {
      for (const route of routes) {
        if (route.method !== req.method && !(route.method === 'GET' && req.method === 'HEAD')) continue;
        const match = route.pattern.exec(url.pathname);
        if (match) return await route.handle(req, res, match, url);
      }
      ctx.error(res, 404, `no route for ${req.method} ${url.pathname}`);
    } catch (err) {
      if (!res.headersSent) ctx.error(res, 500, (err as Error).message);
      else res.destroy();
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  return {
    url: baseUrl,
    requests: () => [...log],
    datasets: datasets.control,
    spaces: spaces.control,
    async stop() {
      await spaces.stop();
      await datasets.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}

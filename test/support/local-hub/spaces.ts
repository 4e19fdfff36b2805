import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startTestMcpServer } from '../mcp-test-server.ts';
import type { TestMcpGateAnswer, TestMcpServer } from '../mcp-test-server.ts';
import type { HubContext, HubModule, HubRoute } from './index.ts';

// Spaces on the local Hub: the Hub API's space info and runtime, and per Space a host (its own HTTP server
// speaking MCP at Gradio's paths) whose answers follow the Space's stage, like *.hf.space does.

export type SpaceStage =
  | 'RUNNING'
  | 'RUNNING_BUILDING'
  | 'RUNNING_APP_STARTING'
  | 'SLEEPING'
  | 'STOPPED'
  | 'BUILDING'
  | 'APP_STARTING'
  | 'PAUSED'
  | 'RUNTIME_ERROR'
  | 'BUILD_ERROR'
  | 'NO_APP_FILE'
  | 'DELETING'
  | (string & {});

export interface AddSpaceOptions {
  stage?: SpaceStage;
  private?: boolean;
  /**
   * A private Space accepts `Authorization: Bearer <token>` on its host and on the Hub API. Tokens the hub
   * knows for the Space's owner are accepted too.
   */
  token?: string;
  /** SLEEPING/STOPPED → APP_STARTING on the first request to the host, RUNNING after this (default 200 ms). */
  wakeDelayMs?: number;
  /** BUILDING/APP_STARTING → RUNNING after this, if set (from `add` or `setStage`). */
  buildDelayMs?: number;
  /** Default: Gradio-like prefix from the Space name, e.g. 'scanner_' for bob/scanner. */
  toolPrefix?: string;
  /** Hardware flavor reported while the Space runs (default 'cpu-basic'). */
  hardware?: string;
}

export interface TestSpace {
  id: string;
  /** e.g. http://127.0.0.1:PORT */
  host: string;
  /** host + '/gradio_api/mcp/' */
  mcpUrl: string;
  mcp: TestMcpServer;
}

export interface SpacesControl {
  add(id: string, opts?: AddSpaceOptions): Promise<TestSpace>;
  setStage(id: string, stage: SpaceStage): void;
  stage(id: string): SpaceStage;
  /** Every request the Space's host received, answered or not, in order. */
  hostRequests(id: string): Array<{ method: string; path: string; authorization?: string }>;
}

interface SpaceState {
  id: string;
  owner: string;
  name: string;
  objectId: string;
  sha: string;
  stage: SpaceStage;
  private: boolean;
  token: string | undefined;
  wakeDelayMs: number;
  buildDelayMs: number | undefined;
  hardware: string;
  createdAt: string;
  timer: NodeJS.Timeout | undefined;
  requests: Array<{ method: string; path: string; authorization?: string }>;
  space: TestSpace | undefined;
}

const SPACE_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

/** Gradio names a Space's tools `<space name>_<function>`, with anything but letters, digits and '_' as '_'. */
export function gradioToolPrefix(spaceId: string): string {
  const name = spaceId.split('/').pop() ?? spaceId;
  return `${name.replace(/[^A-Za-z0-9_]/g, '_')}_`;
}

export function createSpacesModule(ctx: HubContext): HubModule<SpacesControl> {
  const spaces = new Map<string, SpaceState>();

  const get = (id: string): SpaceState => {
    const s = spaces.get(id);
    if (!s) throw new Error(`local hub: no Space ${id}`);
    return s;
  };

  const clearTimer = (s: SpaceState) => {
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
  };

  const moveLater = (s: SpaceState, ms: number, to: SpaceStage) => {
    clearTimer(s);
    s.timer = setTimeout(() => {
      s.timer = undefined;
      s.stage = to;
    }, ms);
    s.timer.unref();
  };

  const enterStage = (s: SpaceState, stage: SpaceStage) => {
    clearTimer(s);
    s.stage = stage;
    if ((stage === 'BUILDING' || stage === 'APP_STARTING') && s.buildDelayMs !== undefined) {
      moveLater(s, s.buildDelayMs, 'RUNNING');
    }
  };

  const bearerOf = (req: IncomingMessage): string | undefined => /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];

  /** Whether this request may see the Space: public, or its token, or a token of the owner. */
  const mayAccess = (s: SpaceState, req: IncomingMessage): boolean => {
    if (!s.private) return true;
    const bearer = bearerOf(req);
    if (bearer !== undefined && s.token !== undefined && bearer === s.token) return true;
    return ctx.userOf(req) === s.owner;
  };

  const hostGate = (s: SpaceState, req: IncomingMessage): TestMcpGateAnswer | undefined => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    s.requests.push({
      method: req.method ?? 'GET',
      path,
      ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}),
    });
    // A private Space's host turns away anyone who may not see it, without waking it.
    if (!mayAccess(s, req)) return { status: 404, body: 'Space not found' };
    switch (s.stage) {
      case 'RUNNING':
      case 'RUNNING_BUILDING':
      case 'RUNNING_APP_STARTING':
        return undefined;
      case 'SLEEPING':
      case 'STOPPED':
        s.stage = 'APP_STARTING';
        moveLater(s, s.wakeDelayMs, 'RUNNING');
        return page(503, `Space ${s.id} is sleeping; it is starting up, retry in a moment.`);
      case 'APP_STARTING':
        return page(503, `Space ${s.id} is starting.`);
      case 'BUILDING':
        return page(503, `Space ${s.id} is building.`);
      case 'PAUSED':
        return page(503, `Space ${s.id} has been paused by its owner.`);
      default:
        return page(503, `Space ${s.id} is not running (${s.stage}).`);
    }
  };

  const runtimeOf = (s: SpaceState) => {
    const up = s.stage.startsWith('RUNNING');
    return {
      stage: s.stage,
      hardware: { current: up ? s.hardware : null, requested: s.hardware },
      storage: null,
      gcTimeout: 172800,
      replicas: { current: up ? 1 : 0, requested: 1 },
      devMode: false,
      domains: [{ domain: `${subdomainOf(s)}.hf.space`, stage: 'READY' }],
      sha: s.sha,
      ...(s.stage.endsWith('_ERROR') ? { errorMessage: `Space ${s.id} failed (${s.stage})` } : {}),
    };
  };

  const infoOf = (s: SpaceState) => ({
    _id: s.objectId,
    id: s.id,
    author: s.owner,
    sha: s.sha,
    lastModified: s.createdAt,
    createdAt: s.createdAt,
    private: s.private,
    gated: false,
    disabled: false,
    likes: 0,
    tags: ['gradio', 'mcp-server', 'region:us'],
    sdk: 'gradio',
    subdomain: subdomainOf(s),
    host: s.space?.host ?? '',
    runtime: runtimeOf(s),
    siblings: [{ rfilename: 'README.md' }, { rfilename: 'app.py' }],
    cardData: { title: s.name, sdk: 'gradio', app_file: 'app.py' },
  });

  /** The Hub hides what a caller may not see: 401 to anonymous callers, 404 to signed-in ones. */
  const lookup = (req: IncomingMessage, res: ServerResponse, id: string): SpaceState | undefined => {
    const bearer = bearerOf(req);
    const user = ctx.userOf(req);
    const s = spaces.get(id);
    if (bearer !== undefined && user === undefined && !(s && s.token !== undefined && bearer === s.token)) {
      ctx.json(res, 401, { error: 'Invalid credentials in Authorization header' }, {
        'X-Error-Message': 'Invalid credentials in Authorization header',
      });
      return undefined;
    }
    if (s && mayAccess(s, req)) return s;
    const message = 'Repository not found';
    ctx.json(res, bearer === undefined ? 401 : 404, { error: message }, { 'X-Error-Message': message, 'X-Error-Code': 'RepoNotFound' });
    return undefined;
  };

  const routes: HubRoute[] = [
    {
      method: 'GET',
      pattern: /^\/api\/spaces\/([^/]+)\/([^/]+)\/runtime$/,
      async handle(req, res, match) {
        const s = lookup(req, res, `${decodeURIComponent(match[1]!)}/${decodeURIComponent(match[2]!)}`);
        if (s) ctx.json(res, 200, runtimeOf(s));
      },
    },
    {
      method: 'GET',
      pattern: /^\/api\/spaces\/([^/]+)\/([^/]+)$/,
      async handle(req, res, match) {
        const s = lookup(req, res, `${decodeURIComponent(match[1]!)}/${decodeURIComponent(match[2]!)}`);
        if (s) ctx.json(res, 200, infoOf(s));
      },
    },
  ];

  const control: SpacesControl = {
    async add(id, opts = {}) {
      if (!SPACE_ID.test(id)) throw new Error(`local hub: bad Space id ${id}`);
      if (spaces.has(id)) throw new Error(`local hub: Space ${id} exists`);
      const [owner, name] = id.split('/') as [string, string];
      const s: SpaceState = {
        id,
        owner,
        name,
        objectId: randomBytes(12).toString('hex'),
        sha: randomBytes(20).toString('hex'),
        stage: 'RUNNING',
        private: opts.private ?? false,
        token: opts.token,
        wakeDelayMs: opts.wakeDelayMs ?? 200,
        buildDelayMs: opts.buildDelayMs,
        hardware: opts.hardware ?? 'cpu-basic',
        createdAt: new Date().toISOString(),
        timer: undefined,
        requests: [],
        space: undefined,
      };
      spaces.set(id, s);
      try {
        const mcp = await startTestMcpServer({
          name: id,
          basePath: '/gradio_api/mcp/',
          toolPrefix: opts.toolPrefix ?? gradioToolPrefix(id),
          gate: (req) => hostGate(s, req),
        });
        s.space = { id, host: mcp.origin, mcpUrl: `${mcp.origin}/gradio_api/mcp/`, mcp };
      } catch (e) {
        spaces.delete(id);
        throw e;
      }
      enterStage(s, opts.stage ?? 'RUNNING');
      return s.space;
    },
    setStage(id, stage) {
      enterStage(get(id), stage);
    },
    stage: (id) => get(id).stage,
    hostRequests: (id) => get(id).requests.map((r) => ({ ...r })),
  };

  return {
    routes,
    control,
    async stop() {
      for (const s of spaces.values()) {
        clearTimer(s);
        await s.space?.mcp.stop();
      }
      spaces.clear();
    },
  };
}

function subdomainOf(s: { owner: string; name: string }): string {
  return `${s.owner}-${s.name}`.toLowerCase().replace(/[^a-z0-9-]/g, '-');
}

function page(status: number, text: string): TestMcpGateAnswer {
  return {
    status,
    body: `<!doctype html><html><head><title>${text}</title></head><body><p>${text}</p></body></html>`,
    headers: { 'content-type': 'text/html; charset=utf-8' },
  };
}

import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { agentRouteGenerators } from './api-fuzz-agents.ts';

// Request generators for every route of the API: well-formed requests, and the same requests mutated the ways an
// attacker or a broken client would (wrong types, missing or extra fields, NUL, lone surrogates, huge numbers, deep
// nesting, long strings, foreign ids). Only 127.0.0.1 and IP literals appear in generated URLs, and the outbound
// guard refuses every address that is not loopback before connecting, so no generated request leaves the machine.

export interface FuzzRequest {
  method: string;
  path: string;
  token?: string;
  headers?: Record<string, string>;
  body?: unknown;
  rawBody?: string;
}

export interface FuzzWorld {
  tokens: string[];
  projectIds: string[];
  taskIds: string[];
  serverIds: string[];
  serverNames: string[];
  logins: string[];
  /** API key ids of the first token's user. */
  apiKeyIds?: string[];
  /** What the DELETE routes may remove, so the rest of the world lives through the whole run. */
  doomedProjectId: string;
  doomedServerId: string;
  /** Agents of the first project (one named doomed-agent may be deleted) and runs of them. */
  agentNames?: string[];
  agentRunIds?: string[];
  /** URLs that may be registered or bound: a real MCP server on 127.0.0.1, closed ports, refused addresses. */
  urls: string[];
}

const nasty = fc.constantFrom(
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff x',
  '😀',
  '../../etc/passwd',
  '%00',
  '%2F..%2F',
  '<script>alert(1)</script>',
  "'; drop table users; --",
  ' ',
  '',
  '\r\nX-Injected: 1',
  '^(a+)+$',
  'x'.repeat(5000),
);

const text = fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 40 }) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) }, { weight: 2, arbitrary: nasty });
const num = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 1e308, -1e308, 1e12, 2 ** 31, 2 ** 53, 1.5, Number.MAX_SAFE_INTEGER));
const jsonValue = fc.oneof(text, num, fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 3 }));

const LONE_SURROGATE = /^[\uD800-\uDFFF]$/;

/** encodeURIComponent, except that a lone surrogate (which it refuses) becomes invalid UTF-8 percent-escapes. */
function encodeSegment(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    const pair = code >= 0xd800 && code <= 0xdbff && i + 1 < s.length && /[\uDC00-\uDFFF]/.test(s[i + 1]!);
    if (pair) {
      out += encodeURIComponent(s.slice(i, i + 2));
      i++;
    } else out += LONE_SURROGATE.test(s[i]!) ? '%ED%A0%80' : encodeURIComponent(s[i]!);
  }
  return out;
}

function deep(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

/** A valid body, mutated or not: most runs change something, a few send it as generated. */
function mutated(valid: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 5, arbitrary: valid },
    {
      weight: 4,
      arbitrary: fc.tuple(valid, fc.string({ maxLength: 12 }), jsonValue, fc.nat()).map(([body, extraKey, value, pick]) => {
        const keys = Object.keys(body);
        const key = keys.length > 0 ? keys[pick % keys.length]! : extraKey;
        switch (pick % 5) {
          case 0:
            return { ...body, [key]: value };
          case 1: {
            const { [key]: _dropped, ...rest } = body;
            return rest;
          }
          case 2:
            return { ...body, [extraKey]: value };
          case 3:
            return { ...body, [key]: deep(70 + (pick % 200)) };
          default:
            return [body];
        }
      }),
    },
    { weight: 1, arbitrary: jsonValue },
  );
}

export function routeGenerators(w: FuzzWorld): Record<string, fc.Arbitrary<Omit<FuzzRequest, 'method' | 'token'>>> {
  // The first of each list belongs to the first token's user: prefer it, so requests can get past the access checks.
  const pick = (xs: string[]) =>
    fc.oneof({ weight: 4, arbitrary: fc.constant(xs[0]!) }, { weight: 2, arbitrary: fc.constantFrom(...xs) }, { weight: 1, arbitrary: fc.constant(randomUUID()) }, { weight: 1, arbitrary: text });
  const seg = (a: fc.Arbitrary<string>) => a.map(encodeSegment);
  const project = seg(pick(w.projectIds));
  const task = seg(pick(w.taskIds));
  const server = seg(fc.oneof(pick(w.serverIds), pick(w.serverNames)));
  const login = seg(pick(w.logins));
  const url = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...w.urls) }, { weight: 1, arbitrary: text });
  const role = fc.oneof(fc.constantFrom('viewer', 'member', 'admin', 'owner'), text);
  const toolName = fc.oneof(fc.constantFrom('echo', 'slow', 'whoami', 'large'), text);
  const schema = fc.oneof(
    fc.constant({ type: 'object' }),
    fc.constant({ type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' } } }),
    fc.dictionary(fc.string({ maxLength: 8 }), jsonValue, { maxKeys: 4 }),
  );
  const settings = fc.record(
    {
      description: fc.oneof(text, fc.constant(null)),
      oracleUrl: fc.oneof(url, fc.constant(null)),
      transport: fc.oneof(fc.constantFrom('auto', 'streamable-http', 'sse'), text),
      healthPath: fc.oneof(fc.constantFrom('/health', '//127.0.0.1:1/x', '/\\host/x', 'http://x/', '/a/../b'), text),
      canRunOnUserSpace: fc.boolean(),
      fallbackToOracle: fc.boolean(),
      location: text,
      cost: num,
      maxConcurrency: num,
      enabled: fc.boolean(),
      visibility: fc.oneof(fc.constantFrom('private', 'public'), text),
      heavyTools: fc.array(toolName, { maxLength: 3 }),
      capabilities: fc.dictionary(toolName, fc.array(text, { maxLength: 2 }), { maxKeys: 2 }),
      toolTimeouts: fc.dictionary(toolName, num, { maxKeys: 2 }),
      tools: fc.array(fc.record({ name: toolName, description: text, inputSchema: schema }, { requiredKeys: ['name'] }), { maxLength: 3 }),
    },
    { requiredKeys: [] },
  );
  const body = (valid: fc.Arbitrary<Record<string, unknown>>) => mutated(valid).map((b) => ({ body: b }));
  const noBody = fc.constant({});
  const query = (parts: Record<string, fc.Arbitrary<string>>) =>
    fc.record(parts, { requiredKeys: [] }).map((q) => {
      const s = new URLSearchParams(q as Record<string, string>).toString();
      return s ? `?${s}` : '';
    });

  return {
    'POST /v1/projects': body(fc.record({ name: text, description: text }, { requiredKeys: ['name'] })).map((r) => ({ path: '/v1/projects', ...r })),
    'GET /v1/projects': fc.constant({ path: '/v1/projects' }),
    'GET /v1/projects/:id': project.map((p) => ({ path: `/v1/projects/${p}` })),
    'PATCH /v1/projects/:id': fc.tuple(project, body(fc.record({ name: text, description: fc.oneof(text, fc.constant(null)) }, { requiredKeys: [] }))).map(([p, b]) => ({ path: `/v1/projects/${p}`, ...b })),
    'DELETE /v1/projects/:id': seg(fc.oneof(fc.constant(w.doomedProjectId), fc.constant(randomUUID()), text)).map((p) => ({ path: `/v1/projects/${p}` })),
    'GET /v1/projects/:id/members': project.map((p) => ({ path: `/v1/projects/${p}/members` })),
    'POST /v1/projects/:id/members': fc.tuple(project, body(fc.record({ login: fc.oneof(fc.constantFrom(...w.logins), text), role }, { requiredKeys: ['login'] }))).map(([p, b]) => ({ path: `/v1/projects/${p}/members`, ...b })),
    'PATCH /v1/projects/:id/members/:login': fc.tuple(project, login, body(fc.record({ role }))).map(([p, l, b]) => ({ path: `/v1/projects/${p}/members/${l}`, ...b })),
    'DELETE /v1/projects/:id/members/:login': fc.tuple(project, login).map(([p, l]) => ({ path: `/v1/projects/${p}/members/${l}` })),
    'GET /v1/projects/:id/spaces': project.map((p) => ({ path: `/v1/projects/${p}/spaces` })),
    'PUT /v1/projects/:id/spaces/:mcp': fc
      .tuple(project, server, body(fc.record({ spaceId: fc.oneof(fc.constantFrom('alice/space', 'x/y'), text), url, token: text }, { requiredKeys: [] })))
      .map(([p, s, b]) => ({ path: `/v1/projects/${p}/spaces/${s}`, ...b })),
    'DELETE /v1/projects/:id/spaces/:mcp': fc.tuple(project, server).map(([p, s]) => ({ path: `/v1/projects/${p}/spaces/${s}` })),
    'POST /v1/mcps': fc
      .tuple(settings, fc.oneof(fc.string({ unit: fc.constantFrom(...'abcdefgh0123-'), minLength: 1, maxLength: 12 }), text))
      .chain(([s, name]) => body(fc.constant({ name, ...s })))
      .map((b) => ({ path: '/v1/mcps', ...b })),
    'GET /v1/mcps': fc.constant({ path: '/v1/mcps' }),
    'GET /v1/mcps/:id': server.map((s) => ({ path: `/v1/mcps/${s}` })),
    'PATCH /v1/mcps/:id': fc.tuple(server, body(settings)).map(([s, b]) => ({ path: `/v1/mcps/${s}`, ...b })),
    'DELETE /v1/mcps/:id': seg(fc.oneof(fc.constant(w.doomedServerId), fc.constant(randomUUID()), text)).map((s) => ({ path: `/v1/mcps/${s}` })),
    'POST /v1/mcps/:id/refresh': server.map((s) => ({ path: `/v1/mcps/${s}/refresh` })),
    'GET /v1/mcps/:id/health': fc.tuple(server, query({ projectId: pick(w.projectIds) })).map(([s, q]) => ({ path: `/v1/mcps/${s}/health${q}` })),
    'GET /v1/tasks/:id/events': fc
      .tuple(task, fc.option(fc.oneof(fc.nat().map(String), fc.constantFrom('2147483648', '9007199254740993', '-1', 'abc', '1e3')), { nil: undefined }))
      .map(([t, last]) => ({ path: `/v1/tasks/${t}/events`, ...(last !== undefined ? { headers: { 'Last-Event-ID': last } } : {}) })),
    'POST /v1/tasks': fc
      .tuple(
        body(
          fc
            .tuple(
              fc.record({ projectId: pick(w.projectIds), heavy: fc.boolean(), consentToOracle: fc.boolean() }, { requiredKeys: ['projectId'] }),
              // Calls that fit the test server's tools, and calls that do not.
              fc.oneof(
                fc.record({ tool: fc.constant('echo'), arguments: fc.record({ text: fc.string({ maxLength: 40 }) }) }),
                fc.record({ tool: fc.constant('whoami'), arguments: fc.constant({}) }),
                fc.record({ tool: fc.constant('slow'), arguments: fc.record({ ms: fc.nat(2000) }) }),
                fc.record({ tool: toolName, arguments: fc.oneof(fc.record({ text }), fc.record({ ms: num, steps: num }), fc.dictionary(text, jsonValue, { maxKeys: 3 })) }, { requiredKeys: ['tool'] }),
              ),
            )
            .map(([base, call]) => ({ ...base, ...call })),
        ),
        fc.option(fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), nasty), { nil: undefined }),
      )
      .map(([b, key]) => ({ path: '/v1/tasks', ...b, ...(key !== undefined ? { headers: { 'Idempotency-Key': encodeSegment(key).slice(0, 300) } } : {}) })),
    'GET /v1/tasks': query({
      projectId: pick(w.projectIds),
      status: fc.oneof(fc.constantFrom('queued', 'running', 'succeeded'), text),
      limit: fc.oneof(num.map(String), text),
      cursor: fc.oneof(text, fc.base64String()),
    }).map((q) => ({ path: `/v1/tasks${q}` })),
    'GET /v1/tasks/:id': task.map((t) => ({ path: `/v1/tasks/${t}` })),
    'GET /v1/tasks/:id/result': task.map((t) => ({ path: `/v1/tasks/${t}/result` })),
    'POST /v1/tasks/:id/consent': fc.tuple(task, body(fc.record({ grant: fc.boolean() }))).map(([t, b]) => ({ path: `/v1/tasks/${t}/consent`, ...b })),
    'POST /v1/tasks/:id/cancel': task.map((t) => ({ path: `/v1/tasks/${t}/cancel` })),
    'POST /v1/tasks/:id/retry': task.map((t) => ({ path: `/v1/tasks/${t}/retry` })),
    'POST /v1/tasks/retry': body(
      fc.record(
        {
          projectId: pick(w.projectIds),
          status: fc.oneof(fc.constantFrom('failed', 'canceled', 'succeeded'), text),
          tool: toolName,
          since: fc.oneof(
            fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString()),
            fc.constantFrom('0000-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '2025-01-01T00:00:00+14:00', '2025-02-30T00:00:00Z', '2025-01-01'),
            text,
          ),
          limit: fc.oneof(fc.integer({ min: 1, max: 500 }), num),
        },
        { requiredKeys: ['projectId'] },
      ),
    ).map((b) => ({ path: '/v1/tasks/retry', ...b })),
    'POST /v1/api-keys': body(
      fc.record(
        {
          name: text,
          projectId: pick(w.projectIds),
          role: role,
          expiresAt: fc.oneof(
            fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2300-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString()),
            fc.constantFrom('2025-02-30T00:00:00Z', '9999-12-31T23:59:59.999Z', '2030-01-01'),
            text,
          ),
        },
        { requiredKeys: ['name'] },
      ),
    ).map((b) => ({ path: '/v1/api-keys', ...b })),
    'GET /v1/api-keys': fc.constant({ path: '/v1/api-keys' }),
    'DELETE /v1/api-keys/:id': seg(fc.oneof(fc.constantFrom(...(w.apiKeyIds?.length ? w.apiKeyIds : ['0000000000000000'])), fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 16, maxLength: 16 }), text)).map((k) => ({
      path: `/v1/api-keys/${k}`,
    })),
    'GET /v1/projects/:id/audit': fc
      .tuple(project, query({ actor: fc.oneof(fc.constantFrom(...w.logins), text), action: fc.oneof(fc.constantFrom('task.cancel', 'member.add'), text), limit: fc.oneof(num.map(String), text), cursor: fc.oneof(fc.nat().map(String), text) }))
      .map(([p, q]) => ({ path: `/v1/projects/${p}/audit${q}` })),
    'GET /v1/audit': query({ actor: fc.oneof(fc.constantFrom(...w.logins), text), action: fc.oneof(fc.constantFrom('registry.create'), text), limit: fc.oneof(num.map(String), text), cursor: fc.oneof(fc.nat().map(String), fc.constant('99999999999999999999'), text) }).map((q) => ({
      path: `/v1/audit${q}`,
    })),
    ...agentRouteGenerators({ project, text, jsonValue, body, seg, agentNames: w.agentNames ?? ['none'], agentRunIds: w.agentRunIds ?? [] }),
    'POST /mcp/projects/:projectId': fc
      .tuple(
        project,
        body(
          fc.record(
            {
              jsonrpc: fc.oneof(fc.constant('2.0'), text),
              id: fc.oneof(fc.integer(), text, fc.constant(null)),
              method: fc.oneof(fc.constantFrom('initialize', 'tools/list', 'tools/call', 'tasks/get', 'tasks/result', 'tasks/list', 'tasks/cancel', 'ping'), text),
              params: fc.record(
                {
                  name: fc.oneof(toolName, fc.constantFrom('consent', 'alice-tools__echo'), text),
                  arguments: fc.oneof(fc.record({ text, taskId: pick(w.taskIds), grant: fc.boolean() }, { requiredKeys: [] }), jsonValue),
                  taskId: pick(w.taskIds),
                  cursor: text,
                  task: fc.oneof(fc.record({ ttl: num }, { requiredKeys: [] }), jsonValue),
                  protocolVersion: fc.oneof(fc.constantFrom('2025-11-25', '2025-06-18'), text),
                  capabilities: fc.constant({}),
                  clientInfo: fc.constant({ name: 'fuzz', version: '1' }),
                },
                { requiredKeys: [] },
              ),
            },
            { requiredKeys: ['jsonrpc', 'method'] },
          ),
        ),
        fc.oneof({ weight: 4, arbitrary: fc.constant('application/json, text/event-stream') }, { weight: 1, arbitrary: text }),
      )
      .map(([p, b, accept]) => ({ path: `/mcp/projects/${p}`, ...b, headers: { Accept: accept.replace(/[^\x20-\x7e]/g, '') } })),
    ...knowledgeGraphGenerators(project, body, query, text),
    // Not routes of their own: raw bodies that are not JSON at all, or JSON nested far too deep.
    'RAW bodies': fc
      .tuple(fc.constantFrom('/v1/projects', '/v1/tasks', '/v1/mcps'), fc.oneof(fc.string({ maxLength: 50 }), fc.constant(`${'['.repeat(20_000)}${']'.repeat(20_000)}`), fc.constant('{"a":1,"a":2}')))
      .map(([path, raw]) => ({ path, rawBody: raw, headers: { 'Content-Type': 'application/json' } })),
    'no body': noBody.map(() => ({ path: '/v1/projects' })),
  };
}

/** One request for a route key ("METHOD /pattern"), sent with one of the world's tokens, none, or a bad one. */
export function requestArbitrary(w: FuzzWorld, generators = routeGenerators(w)): fc.Arbitrary<FuzzRequest> {
  // The first token owns most of the world's resources: it gets most requests, so many of them can succeed.
  const token = fc.oneof({ weight: 6, arbitrary: fc.constant(w.tokens[0]!) }, { weight: 2, arbitrary: fc.constantFrom(...w.tokens) }, { weight: 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('x.y.z', 'Bearer', '\u00ff') });
  const keyed = Object.entries(generators).map(([key, gen]) => {
    const method = key.startsWith('RAW') || key === 'no body' ? 'POST' : key.split(' ')[0]!;
    return fc.tuple(gen, token).map(([r, t]) => ({ method, ...r, ...(t !== undefined ? { token: t } : {}) }));
  });
  return fc.oneof(...keyed);
}

/** The knowledge graph routes: entity and relation batches, observation lists, queries and the MCP endpoint. */
function knowledgeGraphGenerators(
  project: fc.Arbitrary<string>,
  body: (valid: fc.Arbitrary<Record<string, unknown>>) => fc.Arbitrary<{ body: unknown }>,
  query: (parts: Record<string, fc.Arbitrary<string>>) => fc.Arbitrary<string>,
  text: fc.Arbitrary<string>,
): Record<string, fc.Arbitrary<Omit<FuzzRequest, 'method' | 'token'>>> {
  const kg = (p: string, rest: string) => `/v1/projects/${p}/kg${rest}`;
  const name = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('alice', 'acme', 'bob') }, { weight: 1, arbitrary: text });
  const strings = fc.array(fc.oneof(fc.string({ maxLength: 30 }), text), { maxLength: 4 });
  const entity = fc.record({ name, entityType: fc.oneof(fc.constantFrom('person', 'company'), text), observations: strings });
  const relation = fc.record({ from: name, to: name, relationType: fc.oneof(fc.constantFrom('knows', 'works_at'), text) });
  const entityPath = name.map(encodeSegment);
  const int = fc.oneof(fc.integer({ min: -2, max: 8 }).map(String), text);
  const rpc = fc.oneof(
    fc.record({ jsonrpc: fc.constant('2.0'), id: fc.nat(), method: fc.constant('tools/list') }),
    fc.record({
      jsonrpc: fc.constant('2.0'),
      id: fc.nat(),
      method: fc.constant('tools/call'),
      params: fc.oneof(
        fc.record({ name: fc.constant('create_entities'), arguments: fc.record({ entities: fc.array(entity, { maxLength: 3 }) }) }),
        fc.record({ name: fc.constant('search_nodes'), arguments: fc.record({ query: fc.oneof(name, text) }) }),
        fc.record({ name: fc.constant('open_nodes'), arguments: fc.record({ names: fc.array(name, { maxLength: 3 }) }) }),
        fc.record({ name: fc.oneof(fc.constantFrom('read_graph', 'delete_entities', 'add_observations'), text), arguments: fc.dictionary(text, jsonValue, { maxKeys: 2 }) }),
      ),
    }),
  );
  const mcpHeaders = { Accept: 'application/json, text/event-stream' };
  return {
    'POST /v1/projects/:id/kg/entities': fc.tuple(project, body(fc.record({ entities: fc.array(entity, { maxLength: 4 }) }))).map(([p, b]) => ({ path: kg(p, '/entities'), ...b })),
    'POST /v1/projects/:id/kg/entities/delete': fc.tuple(project, body(fc.record({ entityNames: fc.array(name, { maxLength: 3 }) }))).map(([p, b]) => ({ path: kg(p, '/entities/delete'), ...b })),
    'DELETE /v1/projects/:id/kg/entities/:name': fc.tuple(project, entityPath).map(([p, n]) => ({ path: kg(p, `/entities/${n}`) })),
    'POST /v1/projects/:id/kg/relations': fc.tuple(project, body(fc.record({ relations: fc.array(relation, { maxLength: 4 }) }))).map(([p, b]) => ({ path: kg(p, '/relations'), ...b })),
    'POST /v1/projects/:id/kg/relations/delete': fc.tuple(project, body(fc.record({ relations: fc.array(relation, { maxLength: 3 }) }))).map(([p, b]) => ({ path: kg(p, '/relations/delete'), ...b })),
    'POST /v1/projects/:id/kg/observations': fc.tuple(project, body(fc.record({ observations: fc.array(fc.record({ entityName: name, contents: strings }), { maxLength: 3 }) }))).map(([p, b]) => ({ path: kg(p, '/observations'), ...b })),
    'POST /v1/projects/:id/kg/observations/delete': fc.tuple(project, body(fc.record({ deletions: fc.array(fc.record({ entityName: name, observations: strings }), { maxLength: 3 }) }))).map(([p, b]) => ({ path: kg(p, '/observations/delete'), ...b })),
    'GET /v1/projects/:id/kg/search': fc.tuple(project, query({ q: fc.oneof(name, text), limit: int })).map(([p, q]) => ({ path: kg(p, `/search${q}`) })),
    'GET /v1/projects/:id/kg/nodes': fc.tuple(project, fc.array(name, { maxLength: 3 })).map(([p, names]) => ({ path: kg(p, `/nodes?${names.map((n) => `names=${encodeSegment(n)}`).join('&')}`) })),
    'GET /v1/projects/:id/kg/entities/:name/neighbours': fc.tuple(project, entityPath, query({ depth: int, relationType: text, limit: int })).map(([p, n, q]) => ({ path: kg(p, `/entities/${n}/neighbours${q}`) })),
    'GET /v1/projects/:id/kg/path': fc.tuple(project, query({ from: name, to: name, maxDepth: int, relationType: text })).map(([p, q]) => ({ path: kg(p, `/path${q}`) })),
    'GET /v1/projects/:id/kg/graph': fc.tuple(project, query({ limit: int, cursor: fc.oneof(text, fc.base64String()) })).map(([p, q]) => ({ path: kg(p, `/graph${q}`) })),
    'POST /v1/projects/:id/kg/mcp': fc.tuple(project, body(rpc)).map(([p, b]) => ({ path: kg(p, '/mcp'), headers: mcpHeaders, ...b })),
  };
}

import type { CallerScopes, RecordAudit } from './caller-scope.ts';
import type { KeyValueCache } from './key-value-cache.ts';
import type { Db } from '../db/create-db.ts';
import type { McpTransport } from './task-model.ts';
import { ConflictError, InvalidRequestError, NotFoundError } from './errors.ts';
import { ForbiddenError, isUuid } from './projects.ts';
import * as repo from './registry-repository.ts';
import { inspectJson } from '../lib/json-shape.ts';
import type { ActsAs } from './task-model.ts';
import { tokenTransportAllowed } from './space-bindings.ts';

export interface McpTool {
  name: string;
  description: string | null;
  inputSchema: Record<string, unknown>;
  heavy: boolean;
  capabilities: string[];
  timeoutMs: number | null;
}

export interface McpServer {
  id: string;
  name: string;
  description: string | null;
  oracleUrl: string | null;
  transport: McpTransport;
  healthPath: string | null;
  canRunOnUserSpace: boolean;
  fallbackToOracle: boolean;
  location: string | null;
  cost: number;
  maxConcurrency: number | null;
  enabled: boolean;
  /** private: only its owner's projects route to it; public: every project may (set by a platform admin). */
  visibility: Visibility;
  /** The provider whose token, from the submitting user's sign-in, goes with each call to the oracle; null: none. */
  actsAs: ActsAs | null;
  ownerId: string | null;
  createdAt: string;
  updatedAt: string;
}

export type Visibility = 'private' | 'public';

/** Who is acting on the registry: its owner or a platform admin may change a server. */
export interface Actor {
  userId: string;
  isAdmin: boolean;
}

export interface DiscoveredTool {
  name: string;
  description?: string;
  inputSchema: Record<string, unknown>;
}

/** Reads a server's tools with MCP tools/list. Injected so the registry knows nothing of the MCP client. */
export type DiscoverTools = (endpoint: { url: string; transport: McpTransport }) => Promise<DiscoveredTool[]>;

export interface ServerSettings {
  description?: string | null;
  oracleUrl?: string | null;
  transport?: McpTransport;
  healthPath?: string | null;
  canRunOnUserSpace?: boolean;
  fallbackToOracle?: boolean;
  location?: string | null;
  cost?: number;
  maxConcurrency?: number | null;
  enabled?: boolean;
  visibility?: Visibility;
  actsAs?: ActsAs | null;
  heavyTools?: string[];
  capabilities?: Record<string, string[]>;
  toolTimeouts?: Record<string, number>;
  /** Declared tools, for a server without an oracle to discover them from. */
  tools?: DiscoveredTool[];
}

export interface Offering {
  server: McpServer;
  tool: McpTool;
}

function toServer(r: repo.ServerRow): McpServer {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    oracleUrl: r.oracle_url,
    transport: r.transport as McpTransport,
    healthPath: r.health_path,
    canRunOnUserSpace: r.can_run_on_user_space,
    fallbackToOracle: r.fallback_to_oracle,
    location: r.location,
    cost: r.cost,
    maxConcurrency: r.max_concurrency,
    enabled: r.enabled,
    visibility: r.visibility,
    actsAs: r.acts_as,
    ownerId: r.created_by,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  };
}

function toTool(r: repo.ToolRow): McpTool {
  return {
    name: r.name,
    description: r.description,
    inputSchema: r.input_schema,
    heavy: r.heavy,
    capabilities: r.capabilities,
    timeoutMs: r.timeout_ms,
  };
}

/** Throws TargetNotAllowedError for a URL the platform must not contact; called before anything else touches it. */
export type CheckTarget = (url: string) => Promise<void>;

export function createRegistry(deps: {
  db: Db;
  /** Caches tool lookups; a version counter in it invalidates them all at once. */
  cache: KeyValueCache;
  discover: DiscoverTools;
  checkTarget: CheckTarget;
  /** Whose private servers a project may route to: its members. */
  projectMembers: (projectId: string) => Promise<string[]>;
  keyPrefix?: string;
  cacheTtlSeconds?: number;
  /** Refuses registry changes through API keys limited to a project or to reading. */
  scopes?: CallerScopes;
  /** The trail of registrations, updates, refreshes and deletions. */
  recordAudit?: RecordAudit;
  /** Hosts a user's token may reach over plain http (loopback during development); https everywhere else. */
  allowsPlainHttp?: (url: URL) => boolean;
}) {
  const recordAudit: RecordAudit = deps.recordAudit ?? (async () => {});
  const requireWriter = () => deps.scopes?.requireUnboundKey('change the registry');
  const { db, cache } = deps;
  const prefix = deps.keyPrefix ?? '';
  const versionKey = `${prefix}registry:version`;
  const ttl = deps.cacheTtlSeconds ?? 300;

  // Every change bumps the version, so every cached lookup of the old version is dead at once.
  const invalidate = async () => {
    await cache.incr(versionKey);
  };

  async function discoverOrDeclared(settings: { oracleUrl: string | null; transport: McpTransport; tools?: DiscoveredTool[] }) {
    if (settings.tools) return checkToolList(settings.tools, 'DuplicateTool');
    if (!settings.oracleUrl) {
      throw new InvalidRequestError('ToolsRequired', 'a server without an oracleUrl must declare its tools');
    }
    let discovered: DiscoveredTool[];
    try {
      discovered = await deps.discover({ url: settings.oracleUrl, transport: settings.transport });
    } catch {
      // One answer whatever went wrong, or the API would tell open ports from closed ones; `discover` logs the cause.
      throw new InvalidRequestError('DiscoveryFailed', "could not list the server's tools");
    }
    return checkToolList(discovered, 'InvalidToolList');
  }

  /** Merges discovered tools with the operator's flags, keeping earlier flags for tools not mentioned now. */
  function mergeTools(discovered: DiscoveredTool[], settings: ServerSettings, previous: McpTool[]): McpTool[] {
    const names = new Set(discovered.map((t) => t.name));
    const mentioned = [...(settings.heavyTools ?? []), ...Object.keys(settings.capabilities ?? {}), ...Object.keys(settings.toolTimeouts ?? {})];
    const unknown = mentioned.filter((n) => !names.has(n));
    if (unknown.length > 0) {
      throw new InvalidRequestError('UnknownTool', `the server does not offer: ${[...new Set(unknown)].join(', ')}`, { tools: unknown });
    }
    const before = new Map(previous.map((t) => [t.name, t]));
    return discovered.map((t) => ({
      name: t.name,
      description: t.description ?? null,
      inputSchema: t.inputSchema,
      heavy: settings.heavyTools ? settings.heavyTools.includes(t.name) : (before.get(t.name)?.heavy ?? false),
      capabilities: settings.capabilities?.[t.name] ?? before.get(t.name)?.capabilities ?? [],
      timeoutMs: settings.toolTimeouts?.[t.name] ?? before.get(t.name)?.timeoutMs ?? null,
    }));
  }

  async function find(idOrName: string): Promise<repo.ServerRow> {
    const row = await repo.findServer(db, idOrName, isUuid(idOrName));
    if (!row) throw new NotFoundError('Server', idOrName);
    return row;
  }

  const canSee = (actor: Actor, row: repo.ServerRow) => actor.isAdmin || row.visibility === 'public' || row.created_by === actor.userId;

  /** A server the actor may see; others' private servers do not exist for them. */
  async function findVisible(actor: Actor, idOrName: string): Promise<repo.ServerRow> {
    const row = await find(idOrName);
    if (!canSee(actor, row)) throw new NotFoundError('Server', idOrName);
    return row;
  }

  /** A server the actor may change: its owner or a platform admin. Public ones are seen, so others get 403. */
  async function findManaged(actor: Actor, idOrName: string): Promise<repo.ServerRow> {
    const row = await findVisible(actor, idOrName);
    if (!actor.isAdmin && row.created_by !== actor.userId) throw new ForbiddenError('only the server’s owner or a platform admin may change it');
    return row;
  }

  /** A server acting as the user needs an oracle reached over https: that is the only place the user's token goes. */
  function checkActsAs(actsAs: ActsAs | null, oracleUrl: string | null): void {
    if (!actsAs) return;
    if (!oracleUrl) throw new InvalidRequestError('ActsAsNeedsOracle', 'a server that acts as the user needs an oracleUrl: the user\'s token goes only there');
    if (!tokenTransportAllowed(oracleUrl, deps.allowsPlainHttp ?? (() => false))) {
      throw new InvalidRequestError('InsecureTokenTransport', "a user's token is only sent over https: give an https oracleUrl", { url: oracleUrl });
    }
  }

  function checkVisibility(actor: Actor, visibility: Visibility | undefined, current: Visibility): void {
    if (visibility === 'public' && current !== 'public' && !actor.isAdmin) {
      throw new ForbiddenError('only a platform admin may make a server public');
    }
  }

  async function withTools(row: repo.ServerRow): Promise<McpServer & { tools: McpTool[] }> {
    const tools = await repo.listTools(db, [row.id]);
    return { ...toServer(row), tools: tools.map(toTool) };
  }

  /** Every enabled server offering the tool, whoever may use it; cached (Redis, or this process's memory) until the registry next changes. */
  async function allOfferings(tool: string): Promise<Offering[]> {
    const version = (await cache.get(versionKey)) ?? '0';
    const key = `${prefix}registry:v${version}:tool:${tool}`;
    const cached = await cache.get(key);
    if (cached) return JSON.parse(cached) as Offering[];
    const found = (await repo.findOfferings(db, tool)).map((o) => ({ server: toServer(o.server), tool: toTool(o.tool) }));
    await cache.set(key, JSON.stringify(found), ttl);
    return found;
  }

  return {
    async register(actor: Actor, input: ServerSettings & { name: string }): Promise<McpServer & { tools: McpTool[] }> {
      requireWriter();
      const transport = input.transport ?? 'auto';
      checkVisibility(actor, input.visibility, 'private');
      checkActsAs(input.actsAs ?? null, input.oracleUrl ?? null);
      if (input.oracleUrl) await deps.checkTarget(input.oracleUrl);
      if (await repo.findServer(db, input.name, false)) {
        throw new ConflictError('ServerNameTaken', `a server named "${input.name}" is already registered`);
      }
      const discovered = await discoverOrDeclared({ oracleUrl: input.oracleUrl ?? null, transport, tools: input.tools });
      const tools = mergeTools(discovered, input, []);
      let row: repo.ServerRow;
      try {
        // The server and its tools land together or not at all.
        row = await db.transaction().execute(async (trx) => {
          const inserted = await repo.insertServer(trx, {
            name: input.name,
            description: input.description ?? null,
            oracle_url: input.oracleUrl ?? null,
            transport,
            health_path: input.healthPath ?? null,
            can_run_on_user_space: input.canRunOnUserSpace ?? false,
            fallback_to_oracle: input.fallbackToOracle ?? false,
            location: input.location ?? null,
            cost: input.cost ?? 0,
            max_concurrency: input.maxConcurrency ?? null,
            enabled: input.enabled ?? true,
            visibility: input.visibility ?? 'private',
            acts_as: input.actsAs ?? null,
            created_by: actor.userId,
          });
          await repo.replaceTools(trx, inserted.id, tools);
          await recordAudit(
            { action: 'registry.create', target: { type: 'mcp_server', id: inserted.id }, detail: { name: input.name, visibility: inserted.visibility, oracleUrl: inserted.oracle_url, actsAs: inserted.acts_as, tools: tools.map((t) => t.name) } },
            trx,
          );
          return inserted;
        });
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new ConflictError('ServerNameTaken', `a server named "${input.name}" is already registered`);
        throw err;
      }
      await invalidate();
      return withTools(row);
    },

    async update(actor: Actor, idOrName: string, patch: ServerSettings): Promise<McpServer & { tools: McpTool[] }> {
      requireWriter();
      const row = await findManaged(actor, idOrName);
      checkVisibility(actor, patch.visibility, row.visibility);
      checkActsAs(patch.actsAs !== undefined ? patch.actsAs : row.acts_as, patch.oracleUrl !== undefined ? patch.oracleUrl : row.oracle_url);
      if (patch.oracleUrl) await deps.checkTarget(patch.oracleUrl);
      const current = await withTools(row);
      const endpointChanged =
        (patch.oracleUrl !== undefined && patch.oracleUrl !== row.oracle_url) || (patch.transport !== undefined && patch.transport !== row.transport);
      const oracleUrl = patch.oracleUrl !== undefined ? patch.oracleUrl : row.oracle_url;
      const transport = patch.transport ?? (row.transport as McpTransport);
      const discovered = patch.tools
        ? await discoverOrDeclared({ oracleUrl, transport, tools: patch.tools })
        : endpointChanged
          ? await discoverOrDeclared({ oracleUrl, transport })
          : current.tools.map(({ name, description, inputSchema }) => ({ name, description: description ?? undefined, inputSchema }));
      const tools = mergeTools(discovered, patch, current.tools);
      await db.transaction().execute(async (trx) => {
        await repo.updateServer(trx, row.id, {
          ...(patch.description !== undefined && { description: patch.description }),
          ...(patch.oracleUrl !== undefined && { oracle_url: patch.oracleUrl }),
          ...(patch.transport !== undefined && { transport: patch.transport }),
          ...(patch.healthPath !== undefined && { health_path: patch.healthPath }),
          ...(patch.canRunOnUserSpace !== undefined && { can_run_on_user_space: patch.canRunOnUserSpace }),
          ...(patch.fallbackToOracle !== undefined && { fallback_to_oracle: patch.fallbackToOracle }),
          ...(patch.location !== undefined && { location: patch.location }),
          ...(patch.cost !== undefined && { cost: patch.cost }),
          ...(patch.maxConcurrency !== undefined && { max_concurrency: patch.maxConcurrency }),
          ...(patch.enabled !== undefined && { enabled: patch.enabled }),
          ...(patch.visibility !== undefined && { visibility: patch.visibility }),
          ...(patch.actsAs !== undefined && { acts_as: patch.actsAs }),
        });
        await repo.replaceTools(trx, row.id, tools);
        // The changed settings only, never a token (servers hold none; Space tokens live in their bindings).
        const { tools: declared, ...settings } = patch;
        await recordAudit(
          { action: 'registry.update', target: { type: 'mcp_server', id: row.id }, detail: { name: row.name, changes: settings, ...(declared ? { tools: tools.map((t) => t.name) } : {}) } },
          trx,
        );
      });
      await invalidate();
      return withTools((await repo.findServer(db, row.id, true))!);
    },

    async refresh(actor: Actor, idOrName: string): Promise<McpServer & { tools: McpTool[] }> {
      requireWriter();
      const row = await findManaged(actor, idOrName);
      const current = await withTools(row);
      const discovered = await discoverOrDeclared({ oracleUrl: row.oracle_url, transport: row.transport as McpTransport });
      const tools = mergeTools(discovered, {}, current.tools);
      await db.transaction().execute(async (trx) => {
        await repo.replaceTools(trx, row.id, tools);
        await recordAudit({ action: 'registry.refresh', target: { type: 'mcp_server', id: row.id }, detail: { name: row.name, tools: tools.map((t) => t.name) } }, trx);
      });
      await invalidate();
      return withTools(row);
    },

    async remove(actor: Actor, idOrName: string): Promise<void> {
      requireWriter();
      const row = await findManaged(actor, idOrName);
      await db.transaction().execute(async (trx) => {
        await repo.deleteServer(trx, row.id);
        await recordAudit({ action: 'registry.delete', target: { type: 'mcp_server', id: row.id }, detail: { name: row.name } }, trx);
      });
      await invalidate();
    },

    async get(actor: Actor, idOrName: string): Promise<McpServer & { tools: McpTool[] }> {
      return withTools(await findVisible(actor, idOrName));
    },

    /** A server a project may use (public, or owned by one of its members), for Space bindings. */
    async getForProject(projectId: string, idOrName: string): Promise<McpServer & { tools: McpTool[] }> {
      const row = await find(idOrName);
      if (row.visibility !== 'public' && !(row.created_by && (await deps.projectMembers(projectId)).includes(row.created_by))) {
        throw new NotFoundError('Server', idOrName);
      }
      return withTools(row);
    },

    /** For the worker: a server by id, whoever owns it (routing already decided the project may use it). */
    async getById(id: string): Promise<McpServer & { tools: McpTool[] }> {
      return withTools(await find(id));
    },

    async list(actor: Actor): Promise<Array<McpServer & { tools: McpTool[] }>> {
      const rows = await repo.listServers(db, actor.isAdmin ? undefined : actor.userId);
      const tools = await repo.listTools(db, rows.map((r) => r.id));
      return rows.map((r) => ({ ...toServer(r), tools: tools.filter((t) => t.server_id === r.id).map(toTool) }));
    },

    /** Every enabled server this project may route to (public, or owned by one of its members), with its tools. */
    async routableForProject(projectId: string): Promise<Array<McpServer & { tools: McpTool[] }>> {
      const members = new Set(await deps.projectMembers(projectId));
      const rows = (await repo.listServers(db)).filter((r) => r.enabled && (r.visibility === 'public' || (r.created_by !== null && members.has(r.created_by))));
      const tools = await repo.listTools(db, rows.map((r) => r.id));
      return rows.map((r) => ({ ...toServer(r), tools: tools.filter((t) => t.server_id === r.id).map(toTool) }));
    },

    /**
     * Enabled servers offering a tool (or capability) that this project may route to: public servers and private
     * servers owned by its members. Nobody else's server ever receives the project's arguments.
     */
    async offerings(tool: string, projectId: string): Promise<Offering[]> {
      const all = await allOfferings(tool);
      if (all.every((o) => o.server.visibility === 'public')) return all;
      const members = new Set(await deps.projectMembers(projectId));
      return all.filter((o) => o.server.visibility === 'public' || (o.server.ownerId !== null && members.has(o.server.ownerId)));
    },
  };
}

export type Registry = ReturnType<typeof createRegistry>;

const MAX_TOOLS = 1000;
// Postgres text and jsonb cannot hold U+0000; a tool list carrying one is refused whole, not half-stored.
const NUL = /\u0000/;

/** A tool list fit to store: unique, plausible names and no NUL anywhere (declared by a caller or sent by a server). */
function checkToolList(tools: DiscoveredTool[], duplicateCode: 'DuplicateTool' | 'InvalidToolList'): DiscoveredTool[] {
  if (tools.length > MAX_TOOLS) throw new InvalidRequestError('InvalidToolList', `a server may offer at most ${MAX_TOOLS} tools`);
  const seen = new Set<string>();
  for (const t of tools) {
    if (typeof t.name !== 'string' || t.name.length === 0 || t.name.length > 200 || NUL.test(t.name)) {
      throw new InvalidRequestError('InvalidToolList', 'a tool name must be 1-200 characters without NUL');
    }
    if (seen.has(t.name)) {
      throw new InvalidRequestError(duplicateCode, `the tool "${t.name}" is listed twice`, { tool: t.name });
    }
    seen.add(t.name);
    if (NUL.test(t.description ?? '') || inspectJson(t.inputSchema ?? {}, { maxDepth: 64 }) !== undefined) {
      throw new InvalidRequestError('InvalidToolList', `the tool "${t.name}" has a NUL character or nests deeper than 64 levels in its description or input schema`, { tool: t.name });
    }
  }
  return tools;
}

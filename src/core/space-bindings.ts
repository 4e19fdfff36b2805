import type { Db } from '../db/create-db.ts';
import { ConflictError, InvalidRequestError, NotFoundError, UnavailableError } from './errors.ts';
import type { RecordAudit } from './caller-scope.ts';
import type { ProjectService } from './projects.ts';
import type { CheckTarget, DiscoveredTool, Registry } from './registry.ts';
import { spaceBindingTokenAad, type SecretBox } from './sealed-secrets.ts';

/** A stored binding whose token must not be used: it does not open for its row, or its URL is not https. */
export class SpaceBindingUnusableError extends ConflictError {
  constructor(code: 'SpaceTokenUnreadable' | 'InsecureTokenTransport', projectId: string, serverName: string) {
    super(
      code,
      code === 'SpaceTokenUnreadable'
        ? `the stored token of the Space binding for "${serverName}" cannot be read; bind the Space again with its token`
        : `the Space binding for "${serverName}" has a token but a plain-http URL; bind the Space again with an https URL`,
      { projectId, server: serverName },
    );
  }
}

/**
 * A token goes only over https, or over plain http to a host trusted for it (`allowsPlainHttp`, e.g. loopback in
 * development); anything that is not an http(s) URL never gets one.
 */
export function tokenTransportAllowed(url: string, allowsPlainHttp: (url: URL) => boolean): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  return parsed.protocol === 'https:' || (parsed.protocol === 'http:' && allowsPlainHttp(parsed));
}

const insecureTransport = (url: string) =>
  new InvalidRequestError('InsecureTokenTransport', 'a Space token is only sent over https: give an https URL, or bind without a token', {
    url,
  });

/** What a binding needs of the Hub: a Space's MCP endpoint and whether it is up (reading this never wakes it). */
export interface SpaceDirectory {
  /** undefined: no such Space, or the token cannot read it. Other failures throw. */
  info(spaceId: string, token?: string): Promise<{ id: string; mcpUrl: string; stage: string } | undefined>;
  isReady(stage: string): boolean;
  mapTools(serverTools: string[], spaceTools: string[], spaceId: string): { map: Record<string, string>; missing: string[] };
}

/** What clients see: the token is never returned, only whether one is stored. */
export interface SpaceBinding {
  projectId: string;
  serverId: string;
  serverName: string;
  spaceId: string | null;
  url: string;
  hasToken: boolean;
  /** Server tool → the Space's tool, when the Space's tools could be listed (it was running). */
  toolMap: Record<string, string> | null;
  /** Server tools the Space does not offer. */
  missingTools: string[] | null;
  updatedAt: string;
}

interface Row {
  server_id: string;
  space_id: string | null;
  url: string;
  token_sealed: string | null;
  tool_map: Record<string, string> | null;
  missing_tools: string[] | null;
  updated_at: Date;
}

const view = (projectId: string, serverName: string, r: Row): SpaceBinding => ({
  projectId,
  serverId: r.server_id,
  serverName,
  spaceId: r.space_id,
  url: r.url,
  hasToken: r.token_sealed !== null,
  toolMap: r.tool_map,
  missingTools: r.missing_tools,
  updatedAt: r.updated_at.toISOString(),
});

export function createSpaceBindings(deps: {
  db: Db;
  secrets: SecretBox;
  /** Hosts a token may be sent to over plain http (loopback during development). */
  allowsPlainHttp: (url: URL) => boolean;
  projects: ProjectService;
  registry: Registry;
  spaces: SpaceDirectory;
  listTools: (endpoint: { url: string; token?: string }) => Promise<DiscoveredTool[]>;
  checkTarget: CheckTarget;
  /** The trail of bindings made and removed. */
  recordAudit?: RecordAudit;
  /** The caller's own Hub token from signing in with Hugging Face, if they did. */
  hubTokenOf?: (userId: string) => Promise<string | undefined>;
}) {
  const { db } = deps;

  /** Resolves the Space's endpoint from the Hub and, if it is running, maps its tools to the server's. */
  async function resolve(spaceId: string, explicitUrl: string | undefined, token: string | undefined, serverTools: string[]) {
    let info;
    try {
      info = await deps.spaces.info(spaceId, token);
    } catch {
      throw new UnavailableError('HubUnavailable', `could not read the Space "${spaceId}" from the Hub`);
    }
    if (!info) throw new InvalidRequestError('SpaceNotFound', `the Space "${spaceId}" was not found on the Hub, or the token cannot read it`);
    const url = explicitUrl ?? info.mcpUrl;
    if (token && !tokenTransportAllowed(url, deps.allowsPlainHttp)) throw insecureTransport(url);
    // The Hub's answer is as untrusted as a URL from the caller (a private Hub mirror could name anything).
    if (!explicitUrl) await deps.checkTarget(url);
    // Listing tools is a request to the Space: only when it is already up, so binding never wakes a sleeping Space.
    if (!deps.spaces.isReady(info.stage)) return { url, toolMap: null, missing: null, stage: info.stage };
    try {
      const tools = await deps.listTools({ url, token });
      const mapped = deps.spaces.mapTools(serverTools, tools.map((t) => t.name), spaceId);
      return { url, toolMap: mapped.map, missing: mapped.missing, stage: info.stage };
    } catch {
      return { url, toolMap: null, missing: null, stage: info.stage };
    }
  }

  return {
    async bind(
      userId: string,
      projectId: string,
      server: string,
      input: { spaceId?: string; url?: string; token?: string },
    ): Promise<SpaceBinding & { stage?: string }> {
      await deps.projects.requireRole(userId, projectId, 'admin');
      const s = await deps.registry.getForProject(projectId, server);
      if (!input.spaceId && !input.url) throw new InvalidRequestError('SpaceRequired', 'give the Space as spaceId (owner/name) or url');
      // Before any request: a token bound for a plain-http URL is refused without contacting anyone.
      if (input.token && input.url && !tokenTransportAllowed(input.url, deps.allowsPlainHttp)) throw insecureTransport(input.url);
      if (input.url) await deps.checkTarget(input.url);
      // Bound by id alone and no token pasted: the caller's Hub token from sign-in, if any. Only then, so it goes
      // nowhere but the Hub and the host the Hub names for that Space, never to a URL the caller typed.
      const signInToken = input.spaceId && !input.url && input.token === undefined ? await deps.hubTokenOf?.(userId) : undefined;
      const token = input.token ?? signInToken;
      const resolved = input.spaceId
        ? await resolve(input.spaceId, input.url, token, s.tools.map((t) => t.name))
        : { url: input.url!, toolMap: null, missing: null, stage: undefined };
      const values = {
        space_id: input.spaceId ?? null,
        url: resolved.url,
        token_sealed: token ? deps.secrets.seal(token, spaceBindingTokenAad(projectId, s.id)) : null,
        tool_map: resolved.toolMap ? JSON.stringify(resolved.toolMap) : null,
        missing_tools: resolved.missing,
      };
      const row = await db.transaction().execute(async (trx) => {
        const written = await trx
          .insertInto('space_bindings')
          .values({ project_id: projectId, server_id: s.id, ...values })
          .onConflict((oc) => oc.columns(['project_id', 'server_id']).doUpdateSet({ ...values, updated_at: new Date() }))
          .returningAll()
          .executeTakeFirstOrThrow();
        // Whether a token was given, never the token.
        await deps.recordAudit?.(
          { action: 'space.bind', projectId, target: { type: 'mcp_server', id: s.id }, detail: { server: s.name, spaceId: written.space_id, url: written.url, withToken: token !== undefined, ...(signInToken ? { tokenFrom: 'sign-in' } : {}) } },
          trx,
        );
        return written;
      });
      return { ...view(projectId, s.name, row), ...(resolved.stage ? { stage: resolved.stage } : {}) };
    },

    async unbind(userId: string, projectId: string, server: string): Promise<void> {
      await deps.projects.requireRole(userId, projectId, 'admin');
      const s = await deps.registry.getForProject(projectId, server);
      await db.transaction().execute(async (trx) => {
        const r = await trx.deleteFrom('space_bindings').where('project_id', '=', projectId).where('server_id', '=', s.id).executeTakeFirst();
        if (r.numDeletedRows === 0n) throw new NotFoundError('SpaceBinding', `${projectId}/${s.name}`);
        await deps.recordAudit?.({ action: 'space.unbind', projectId, target: { type: 'mcp_server', id: s.id }, detail: { server: s.name } }, trx);
      });
    },

    async list(userId: string, projectId: string): Promise<SpaceBinding[]> {
      await deps.projects.get(userId, projectId);
      const rows = await db
        .selectFrom('space_bindings as b')
        .innerJoin('mcp_servers as s', 's.id', 'b.server_id')
        .select(['b.server_id', 's.name', 'b.space_id', 'b.url', 'b.token_sealed', 'b.tool_map', 'b.missing_tools', 'b.updated_at'])
        .where('b.project_id', '=', projectId)
        .execute();
      return rows.map((r) => view(projectId, r.name, r));
    },

    /** For routing: which servers this project has a Space for (no secrets). */
    async spacesFor(projectId: string, serverIds: string[]): Promise<Map<string, { url: string; spaceId?: string }>> {
      if (serverIds.length === 0) return new Map();
      const rows = await db
        .selectFrom('space_bindings')
        .select(['server_id', 'url', 'space_id'])
        .where('project_id', '=', projectId)
        .where('server_id', 'in', serverIds)
        .execute();
      return new Map(rows.map((r) => [r.server_id, { url: r.url, ...(r.space_id ? { spaceId: r.space_id } : {}) }]));
    },

    /** Records which Space tool serves each server tool, learnt once the Space was awake. */
    async learnToolMap(projectId: string, serverId: string, toolMap: Record<string, string>, missing: string[]): Promise<void> {
      await db
        .updateTable('space_bindings')
        .set({ tool_map: JSON.stringify(toolMap), missing_tools: missing, updated_at: new Date() })
        .where('project_id', '=', projectId)
        .where('server_id', '=', serverId)
        .execute();
    },

    /**
     * For the worker only: how to call the Space, with its decrypted token. Never log the result. A token that does not
     * open for this row, or that would travel over plain http, is never handed out: SpaceBindingUnusableError.
     */
    async credentials(
      projectId: string,
      serverId: string,
    ): Promise<{ url: string; spaceId?: string; token?: string; toolMap?: Record<string, string> } | undefined> {
      const row = await db
        .selectFrom('space_bindings as b')
        .innerJoin('mcp_servers as s', 's.id', 'b.server_id')
        .select(['b.url', 'b.space_id', 'b.token_sealed', 'b.tool_map', 's.name'])
        .where('b.project_id', '=', projectId)
        .where('b.server_id', '=', serverId)
        .executeTakeFirst();
      if (!row) return undefined;
      let token: string | undefined;
      if (row.token_sealed) {
        if (!tokenTransportAllowed(row.url, deps.allowsPlainHttp)) throw new SpaceBindingUnusableError('InsecureTokenTransport', projectId, row.name);
        try {
          token = deps.secrets.open(row.token_sealed, spaceBindingTokenAad(projectId, serverId));
        } catch {
          throw new SpaceBindingUnusableError('SpaceTokenUnreadable', projectId, row.name);
        }
      }
      return {
        url: row.url,
        ...(row.space_id ? { spaceId: row.space_id } : {}),
        ...(token !== undefined ? { token } : {}),
        ...(row.tool_map ? { toolMap: row.tool_map } : {}),
      };
    },
  };
}

export type SpaceBindings = ReturnType<typeof createSpaceBindings>;

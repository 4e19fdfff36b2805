import type { Db } from '../db/create-db.ts';
import { NotFoundError } from './errors.ts';
import type { ProjectService } from './projects.ts';
import type { Registry } from './registry.ts';

export interface SecretBox {
  seal(plain: string): string;
  open(sealed: string): string;
}

/** What clients see: the token is never returned, only whether one is stored. */
export interface SpaceBinding {
  projectId: string;
  serverId: string;
  serverName: string;
  spaceId: string | null;
  url: string;
  hasToken: boolean;
  updatedAt: string;
}

export function createSpaceBindings(deps: { db: Db; secrets: SecretBox; projects: ProjectService; registry: Registry }) {
  const { db } = deps;

  return {
    async bind(userId: string, projectId: string, server: string, input: { spaceId?: string; url: string; token?: string }): Promise<SpaceBinding> {
      await deps.projects.get(userId, projectId);
      const s = await deps.registry.get(server);
      const sealed = input.token ? deps.secrets.seal(input.token) : null;
      const row = await db
        .insertInto('space_bindings')
        .values({ project_id: projectId, server_id: s.id, space_id: input.spaceId ?? null, url: input.url, token_sealed: sealed })
        .onConflict((oc) =>
          oc.columns(['project_id', 'server_id']).doUpdateSet({ space_id: input.spaceId ?? null, url: input.url, token_sealed: sealed, updated_at: new Date() }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      return { projectId, serverId: s.id, serverName: s.name, spaceId: row.space_id, url: row.url, hasToken: row.token_sealed !== null, updatedAt: row.updated_at.toISOString() };
    },

    async unbind(userId: string, projectId: string, server: string): Promise<void> {
      await deps.projects.get(userId, projectId);
      const s = await deps.registry.get(server);
      const r = await db.deleteFrom('space_bindings').where('project_id', '=', projectId).where('server_id', '=', s.id).executeTakeFirst();
      if (r.numDeletedRows === 0n) throw new NotFoundError('SpaceBinding', `${projectId}/${s.name}`);
    },

    async list(userId: string, projectId: string): Promise<SpaceBinding[]> {
      await deps.projects.get(userId, projectId);
      const rows = await db
        .selectFrom('space_bindings as b')
        .innerJoin('mcp_servers as s', 's.id', 'b.server_id')
        .select(['b.server_id', 's.name', 'b.space_id', 'b.url', 'b.token_sealed', 'b.updated_at'])
        .where('b.project_id', '=', projectId)
        .execute();
      return rows.map((r) => ({ projectId, serverId: r.server_id, serverName: r.name, spaceId: r.space_id, url: r.url, hasToken: r.token_sealed !== null, updatedAt: r.updated_at.toISOString() }));
    },

    /** For routing: which servers this project has a Space for (no secrets). */
    async urlsFor(projectId: string, serverIds: string[]): Promise<Map<string, string>> {
      if (serverIds.length === 0) return new Map();
      const rows = await db.selectFrom('space_bindings').select(['server_id', 'url']).where('project_id', '=', projectId).where('server_id', 'in', serverIds).execute();
      return new Map(rows.map((r) => [r.server_id, r.url]));
    },

    /** For the worker only: the Space URL and its decrypted token, to call the Space. Never log the result. */
    async credentials(projectId: string, serverId: string): Promise<{ url: string; token?: string } | undefined> {
      const row = await db.selectFrom('space_bindings').select(['url', 'token_sealed']).where('project_id', '=', projectId).where('server_id', '=', serverId).executeTakeFirst();
      if (!row) return undefined;
      return { url: row.url, ...(row.token_sealed ? { token: deps.secrets.open(row.token_sealed) } : {}) };
    },
  };
}

export type SpaceBindings = ReturnType<typeof createSpaceBindings>;

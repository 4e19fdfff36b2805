import type { Db } from '../db/create-db.ts';
import type { McpServersTable } from '../db/schema.ts';
import type { Insertable, Selectable, Updateable } from 'kysely';
import type { McpTool } from './registry.ts';

// The only place with registry SQL. Rows in, rows out; the service maps them to domain objects.

export type ServerRow = Selectable<McpServersTable>;
export interface ToolRow {
  server_id: string;
  name: string;
  description: string | null;
  input_schema: Record<string, unknown>;
  heavy: boolean;
  capabilities: string[];
  timeout_ms: number | null;
  discovered_at: Date;
}

export async function insertServer(db: Db, values: Insertable<McpServersTable>): Promise<ServerRow> {
  return db.insertInto('mcp_servers').values(values).returningAll().executeTakeFirstOrThrow();
}

export async function updateServer(db: Db, id: string, values: Updateable<McpServersTable>): Promise<void> {
  await db.updateTable('mcp_servers').set({ ...values, updated_at: new Date() }).where('id', '=', id).execute();
}

export async function deleteServer(db: Db, id: string): Promise<boolean> {
  const r = await db.deleteFrom('mcp_servers').where('id', '=', id).executeTakeFirst();
  return r.numDeletedRows > 0n;
}

export async function findServer(db: Db, idOrName: string, byId: boolean): Promise<ServerRow | undefined> {
  return db
    .selectFrom('mcp_servers')
    .selectAll()
    .where(byId ? 'id' : 'name', '=', idOrName)
    .executeTakeFirst();
}

/** All servers, or with `visibleTo` only the public ones and that user's own. */
export async function listServers(db: Db, visibleTo?: string): Promise<ServerRow[]> {
  let query = db.selectFrom('mcp_servers').selectAll();
  if (visibleTo !== undefined) query = query.where((eb) => eb.or([eb('visibility', '=', 'public'), eb('created_by', '=', visibleTo)]));
  return query.orderBy('name').execute();
}

export async function listTools(db: Db, serverIds: string[]): Promise<ToolRow[]> {
  if (serverIds.length === 0) return [];
  return db.selectFrom('mcp_tools').selectAll().where('server_id', 'in', serverIds).orderBy('name').execute();
}

/** Enabled servers offering the tool by name, or declaring it as a capability of one of their tools. */
export async function findOfferings(db: Db, toolOrCapability: string): Promise<Array<{ server: ServerRow; tool: ToolRow }>> {
  const rows = await db
    .selectFrom('mcp_tools as t')
    .innerJoin('mcp_servers as s', 's.id', 't.server_id')
    .selectAll('s')
    .select([
      't.name as tool_name',
      't.description as tool_description',
      't.input_schema as tool_input_schema',
      't.heavy as tool_heavy',
      't.capabilities as tool_capabilities',
      't.timeout_ms as tool_timeout_ms',
      't.discovered_at as tool_discovered_at',
    ])
    .where('s.enabled', '=', true)
    .where((eb) => eb.or([eb('t.name', '=', toolOrCapability), eb(eb.val(toolOrCapability), '=', eb.fn.any('t.capabilities'))]))
    .orderBy('s.id')
    .execute();
  return rows.map((r) => ({
    server: {
      id: r.id,
      name: r.name,
      description: r.description,
      oracle_url: r.oracle_url,
      transport: r.transport,
      health_path: r.health_path,
      can_run_on_user_space: r.can_run_on_user_space,
      fallback_to_oracle: r.fallback_to_oracle,
      location: r.location,
      cost: r.cost,
      max_concurrency: r.max_concurrency,
      enabled: r.enabled,
      visibility: r.visibility,
      acts_as: r.acts_as,
      created_by: r.created_by,
      created_at: r.created_at,
      updated_at: r.updated_at,
    },
    tool: {
      server_id: r.id,
      name: r.tool_name,
      description: r.tool_description,
      input_schema: r.tool_input_schema,
      heavy: r.tool_heavy,
      capabilities: r.tool_capabilities,
      timeout_ms: r.tool_timeout_ms,
      discovered_at: r.tool_discovered_at,
    },
  }));
}

/** Replaces the server's tool list with `tools` in one transaction (nested in the caller's, if it has one). */
export async function replaceTools(db: Db, serverId: string, tools: McpTool[]): Promise<void> {
  const run = async (trx: Db) => {
    await trx.deleteFrom('mcp_tools').where('server_id', '=', serverId).execute();
    if (tools.length === 0) return;
    await trx
      .insertInto('mcp_tools')
      .values(
        tools.map((t) => ({
          server_id: serverId,
          name: t.name,
          description: t.description,
          input_schema: JSON.stringify(t.inputSchema),
          heavy: t.heavy,
          capabilities: t.capabilities,
          timeout_ms: t.timeoutMs,
        })),
      )
      .execute();
  };
  if (db.isTransaction) await run(db);
  else await db.transaction().execute(run);
}

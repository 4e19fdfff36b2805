import type { Db } from '../db/create-db.ts';

// The only SQL for agent definitions.

export interface AgentRow {
  id: string;
  project_id: string;
  name: string;
  version: number;
  definition: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}

function selectAgents(db: Db) {
  return db
    .selectFrom('agents as a')
    .innerJoin('agent_versions as v', (j) => j.onRef('v.agent_id', '=', 'a.id').onRef('v.version', '=', 'a.version'))
    .select(['a.id', 'a.project_id', 'a.name', 'a.version', 'v.definition', 'a.created_at', 'a.updated_at']);
}

export async function findAgent(db: Db, projectId: string, name: string): Promise<AgentRow | undefined> {
  return selectAgents(db).where('a.project_id', '=', projectId).where('a.name', '=', name).executeTakeFirst();
}

export async function listAgents(db: Db, projectId: string): Promise<AgentRow[]> {
  return selectAgents(db).where('a.project_id', '=', projectId).orderBy('a.name').execute();
}

/** Creates the agent at version 1; undefined when the project already has one of that name. */
export async function insertAgent(trx: Db, v: { projectId: string; name: string; definition: Record<string, unknown>; userId: string }): Promise<string | undefined> {
  const row = await trx
    .insertInto('agents')
    .values({ project_id: v.projectId, name: v.name, version: 1, created_by: v.userId })
    .onConflict((oc) => oc.constraint('agents_project_name_key').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!row) return undefined;
  await trx.insertInto('agent_versions').values({ agent_id: row.id, version: 1, definition: JSON.stringify(v.definition), created_by: v.userId }).execute();
  return row.id;
}

/** Adds the next version and makes it current; undefined when no such agent exists. */
export async function insertNextVersion(trx: Db, v: { projectId: string; name: string; definition: Record<string, unknown>; userId: string }): Promise<number | undefined> {
  const row = await trx
    .updateTable('agents')
    .set((eb) => ({ version: eb('version', '+', 1), updated_at: new Date() }))
    .where('project_id', '=', v.projectId)
    .where('name', '=', v.name)
    .returning(['id', 'version'])
    .executeTakeFirst();
  if (!row) return undefined;
  await trx.insertInto('agent_versions').values({ agent_id: row.id, version: row.version, definition: JSON.stringify(v.definition), created_by: v.userId }).execute();
  return row.version;
}

export async function deleteAgent(db: Db, projectId: string, name: string): Promise<boolean> {
  const r = await db.deleteFrom('agents').where('project_id', '=', projectId).where('name', '=', name).executeTakeFirst();
  return (r.numDeletedRows ?? 0n) > 0n;
}

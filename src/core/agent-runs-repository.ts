import type { Db } from '../db/create-db.ts';

// The only SQL for agent runs and their steps.

export interface AgentRunRow {
  id: string;
  project_id: string;
  agent_name: string;
  agent_version: number;
  definition: Record<string, unknown>;
  input: unknown;
  created_by: string;
  request_hash: string | null;
  workflow_id: string;
  status: string;
  step_states: Record<string, unknown>;
  error: Record<string, unknown> | null;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

const columns = ['r.id', 'r.project_id', 'r.agent_name', 'r.agent_version', 'r.definition', 'r.input', 'r.created_by', 'r.request_hash', 'r.workflow_id', 'r.status', 'r.step_states', 'r.error', 'r.created_at', 'r.updated_at', 'r.finished_at'] as const;

export async function insertRun(db: Db, v: { id: string; projectId: string; agentId: string; agentName: string; agentVersion: number; definition: unknown; input: unknown; userId: string; idempotencyKey?: string; requestHash: string; workflowId: string }): Promise<boolean> {
  const r = await db
    .insertInto('agent_runs')
    .values({
      id: v.id, project_id: v.projectId, agent_id: v.agentId, agent_name: v.agentName, agent_version: v.agentVersion, definition: JSON.stringify(v.definition),
      input: JSON.stringify(v.input ?? null), created_by: v.userId, idempotency_key: v.idempotencyKey ?? null, request_hash: v.requestHash, workflow_id: v.workflowId, status: 'queued',
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .executeTakeFirst();
  return (r.numInsertedOrUpdatedRows ?? 0n) > 0n;
}

export async function findRun(db: Db, runId: string): Promise<AgentRunRow | undefined> {
  return db.selectFrom('agent_runs as r').select(columns).where('r.id', '=', runId).executeTakeFirst() as Promise<AgentRunRow | undefined>;
}

export async function findVisibleRun(db: Db, userId: string, runId: string): Promise<AgentRunRow | undefined> {
  return db
    .selectFrom('agent_runs as r')
    .innerJoin('project_members as m', (j) => j.onRef('m.project_id', '=', 'r.project_id').on('m.user_id', '=', userId))
    .select(columns)
    .where('r.id', '=', runId)
    .executeTakeFirst() as Promise<AgentRunRow | undefined>;
}

export async function markRunStarted(db: Db, runId: string): Promise<void> {
  await db.updateTable('agent_runs').set({ workflow_started_at: new Date() }).where('id', '=', runId).execute();
}

export async function updateRun(db: Db, runId: string, patch: { status?: string; stepStates?: Record<string, unknown>; error?: Record<string, unknown> | null; finished?: boolean }): Promise<void> {
  await db
    .updateTable('agent_runs')
    .set({
      updated_at: new Date(),
      ...(patch.status ? { status: patch.status } : {}),
      ...(patch.stepStates ? { step_states: JSON.stringify(patch.stepStates) } : {}),
      ...(patch.error !== undefined ? { error: patch.error ? JSON.stringify(patch.error) : null } : {}),
      ...(patch.finished ? { finished_at: new Date() } : {}),
    })
    .where('id', '=', runId)
    .execute();
}

export interface RunStepRow {
  step_id: string;
  item: number;
  task_id: string | null;
  status: string;
  output: unknown;
  task_status: string | null;
}

export async function listRunSteps(db: Db, runId: string): Promise<RunStepRow[]> {
  return db
    .selectFrom('agent_run_steps as s')
    .leftJoin('tasks as t', 't.id', 's.task_id')
    .select(['s.step_id', 's.item', 's.task_id', 's.status', 's.output', 't.status as task_status'])
    .where('s.run_id', '=', runId)
    .orderBy('s.step_id')
    .orderBy('s.item')
    .execute();
}

export async function upsertStepRow(db: Db, v: { runId: string; stepId: string; item: number; taskId?: string; status: string; output?: unknown }): Promise<void> {
  await db
    .insertInto('agent_run_steps')
    .values({ run_id: v.runId, step_id: v.stepId, item: v.item, task_id: v.taskId ?? null, status: v.status, output: v.output === undefined ? null : JSON.stringify(v.output) })
    .onConflict((oc) => oc.columns(['run_id', 'step_id', 'item']).doUpdateSet({ status: v.status, output: v.output === undefined ? null : JSON.stringify(v.output), updated_at: new Date() }))
    .execute();
}

export interface RunEventRow {
  seq: number;
  type: string;
  data: Record<string, unknown>;
  created_at: Date;
}

/** Appends events after the run's last seq; call it in the transaction that makes the change they describe. */
export async function appendRunEvents(db: Db, runId: string, events: Array<{ type: string; data: Record<string, unknown> }>): Promise<RunEventRow[]> {
  if (events.length === 0) return [];
  // The row lock taken by this update orders concurrent writers of one run's log.
  const { event_seq: last } = await db
    .updateTable('agent_runs')
    .set((eb) => ({ event_seq: eb('event_seq', '+', events.length) }))
    .where('id', '=', runId)
    .returning('event_seq')
    .executeTakeFirstOrThrow();
  const first = last - events.length + 1;
  const rows = await db
    .insertInto('agent_run_events')
    .values(events.map((e, i) => ({ run_id: runId, seq: first + i, type: e.type, data: JSON.stringify(e.data) })))
    .returning(['seq', 'type', 'data', 'created_at'])
    .execute();
  return (rows as RunEventRow[]).sort((a, b) => a.seq - b.seq);
}

/** The seq of the run's last event; undefined when there is no such run. */
export async function findRunEventSeq(db: Db, runId: string): Promise<number | undefined> {
  const row = await db.selectFrom('agent_runs').select('event_seq').where('id', '=', runId).executeTakeFirst();
  return row?.event_seq;
}

/** The step item a task was started for, if a run started it. */
export async function findStepOfTask(db: Db, taskId: string): Promise<{ run_id: string; step_id: string; item: number } | undefined> {
  return db.selectFrom('agent_run_steps').select(['run_id', 'step_id', 'item']).where('task_id', '=', taskId).executeTakeFirst();
}

export async function listRunEvents(db: Db, runId: string, after: number, limit: number): Promise<RunEventRow[]> {
  return db.selectFrom('agent_run_events').select(['seq', 'type', 'data', 'created_at']).where('run_id', '=', runId).where('seq', '>', after).orderBy('seq').limit(limit).execute() as Promise<RunEventRow[]>;
}

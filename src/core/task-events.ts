import { sql } from 'kysely';
import type { Db } from '../db/create-db.ts';
import { bestEffort } from '../lib/best-effort.ts';
import { NotFoundError } from './errors.ts';
import type { MessagePublisher } from './pub-sub.ts';

/** One entry of a task's ordered log: what SSE replays (`id:` is `seq`) and what audits read. */
export interface TaskEvent {
  taskId: string;
  seq: number;
  type: string;
  data: Record<string, unknown>;
  createdAt: string;
}

export class TaskNotFoundError extends NotFoundError {
  constructor(taskId: string) {
    super('Task', taskId);
  }
}

export interface NewEvent {
  type: string;
  data: Record<string, unknown>;
}

export function taskEventChannel(channelPrefix: string, taskId: string): string {
  return `${channelPrefix}task-events:${taskId}`;
}

/**
 * Publishes committed events of one log on its channel: best effort (followers also read the log), bounded in time, in
 * order on one connection. Task events and agent run events both go out this way.
 */
export async function publishLoggedEvents<E extends { seq: number; type: string }>(
  publisher: MessagePublisher,
  channel: string,
  written: E[],
  opts: { timeoutMs: number; onPublished?: (type: string) => void; onError?: (err: unknown, event: E) => void },
): Promise<void> {
  await Promise.all(
    written.map((event) =>
      bestEffort(
        'event publish',
        async () => {
          await publisher.publish(channel, JSON.stringify(event));
          opts.onPublished?.(event.type);
        },
        { timeoutMs: opts.timeoutMs, onError: (err) => opts.onError?.(err, event) },
      ),
    ),
  );
}

// Repository: the only SQL for task events.

/**
 * Takes the next seqs and writes the events in the caller's transaction. The UPDATE holds the task row's lock
 * until commit, so appenders of one task run one after another and commit order equals seq order: a reader that
 * sees seq N committed can rely on every seq below N being committed too.
 */
async function insertNextEvents(trx: Db, taskId: string, events: NewEvent[]): Promise<TaskEvent[] | undefined> {
  const out: TaskEvent[] = [];
  for (const e of events) {
    const task = await trx
      .updateTable('tasks')
      .set((eb) => ({ event_seq: eb('event_seq', '+', 1) }))
      .where('id', '=', taskId)
      .returning('event_seq')
      .executeTakeFirst();
    if (!task) return undefined;
    const row = await trx
      .insertInto('task_events')
      .values({ task_id: taskId, seq: task.event_seq, type: e.type, data: JSON.stringify(e.data) })
      .returning(['seq', 'type', 'data', 'created_at'])
      .executeTakeFirstOrThrow();
    out.push({ taskId, seq: row.seq, type: row.type, data: row.data, createdAt: row.created_at.toISOString() });
  }
  return out;
}

/** The task row's state columns a transition writes. */
export interface TaskStateColumns {
  status: string;
  target: Record<string, unknown> | null;
  attempts: unknown[];
  error: Record<string, unknown> | null;
  finished: boolean;
}

/**
 * A state change and the events describing it, in one statement (atomic on its own, so no BEGIN/COMMIT round trips):
 * the UPDATE takes the seqs and sets the state, holding the row lock until commit as insertNextEvents does, and the
 * INSERT writes the events under those seqs. Undefined when the task does not exist.
 */
async function updateStateWithEvents(db: Db, taskId: string, events: NewEvent[], state: TaskStateColumns): Promise<TaskEvent[] | undefined> {
  const k = events.length;
  const now = new Date();
  const json = (v: unknown) => (v === null ? null : JSON.stringify(v));
  const { rows } = await sql<{ seq: number; type: string; data: Record<string, unknown>; created_at: Date }>`
    with t as (
      update tasks
      set status = ${state.status}, target = ${json(state.target)}::jsonb, attempts = ${json(state.attempts)}::jsonb,
          error = ${json(state.error)}::jsonb, updated_at = ${now},
          finished_at = case when ${state.finished}::boolean then ${now}::timestamptz else finished_at end,
          event_seq = event_seq + ${k}::int
      where id = ${taskId}
      returning event_seq
    )
    insert into task_events (task_id, seq, type, data)
    select ${taskId}, t.event_seq - ${k}::int + e.ord::int, e.v->>'type', e.v->'data'
    from t, jsonb_array_elements(${JSON.stringify(events)}::jsonb) with ordinality as e(v, ord)
    returning seq, type, data, created_at`.execute(db);
  if (rows.length === 0) return undefined;
  return rows
    .map((r) => ({ taskId, seq: r.seq, type: r.type, data: r.data, createdAt: r.created_at.toISOString() }))
    .sort((a, b) => a.seq - b.seq);
}

async function selectEventsAfter(db: Db, taskId: string, afterSeq: number, limit: number): Promise<TaskEvent[]> {
  const rows = await db
    .selectFrom('task_events')
    .select(['seq', 'type', 'data', 'created_at'])
    .where('task_id', '=', taskId)
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ taskId, seq: r.seq, type: r.type, data: r.data, createdAt: r.created_at.toISOString() }));
}

async function selectEventSeq(db: Db, taskId: string): Promise<number | undefined> {
  const row = await db.selectFrom('tasks').select('event_seq').where('id', '=', taskId).executeTakeFirst();
  return row?.event_seq;
}

export function createTaskEvents(deps: {
  db: Db;
  /** Redis, or the in-process bus when one process does everything. */
  publisher: MessagePublisher;
  channelPrefix?: string;
  onPublished?: (type: string) => void;
  /** Publishing is best effort (followers also poll); this hears about failures so they can be logged and counted. */
  onPublishError?: (err: unknown, event: TaskEvent) => void;
  /** How long an append waits for its publishes before it returns anyway (default 1000). */
  publishTimeoutMs?: number;
}) {
  const { db, publisher } = deps;
  const prefix = deps.channelPrefix ?? '';
  const publishTimeoutMs = deps.publishTimeoutMs ?? 1000;

  /**
   * The events are committed: a failed publish must not fail the append (a retry would log them twice), and a Redis
   * that is away must not hold it either. Sent together, in order, on one connection.
   */
  async function publish(taskId: string, written: TaskEvent[]): Promise<void> {
    await publishLoggedEvents(publisher, taskEventChannel(prefix, taskId), written, { timeoutMs: publishTimeoutMs, onPublished: deps.onPublished, onError: deps.onPublishError });
  }

  return {
    async append(taskId: string, type: string, data: Record<string, unknown>): Promise<TaskEvent> {
      return (await this.appendAll(taskId, [{ type, data }]))[0]!;
    },

    /**
     * Appends events in one transaction, together with `alsoInTransaction` (a state change the events describe), so
     * a reader never sees the state without its events or the events without the state.
     */
    async appendAll(taskId: string, events: NewEvent[], alsoInTransaction?: (trx: Db) => Promise<void>): Promise<TaskEvent[]> {
      return (await this.appendWhen(taskId, events, async (trx) => {
        await alsoInTransaction?.(trx);
        return true;
      }))!;
    },

    /**
     * Runs `change` in a transaction and, when it returns true, appends the events in that same transaction; when it
     * returns false nothing is appended and the result is undefined. Creating a task and logging its first event
     * this way, neither is ever seen without the other.
     */
    async appendWhen(taskId: string, events: NewEvent[], change: (trx: Db) => Promise<boolean>): Promise<TaskEvent[] | undefined> {
      const written = await db.transaction().execute(async (trx) => {
        if (!(await change(trx))) return null;
        return (await insertNextEvents(trx, taskId, events)) ?? false;
      });
      if (written === null) return undefined;
      if (written === false) throw new TaskNotFoundError(taskId);
      await publish(taskId, written);
      return written;
    },

    /**
     * The task's state and the events describing the change, as appendAll with an updateTaskState would write them,
     * in one statement instead of a transaction of 3 + 2 per event: the path every workflow transition takes. With
     * `alsoInTransaction` (a hook that may write beside it), that statement and the hook share one transaction.
     */
    async appendTransition(taskId: string, events: NewEvent[], state: TaskStateColumns, alsoInTransaction?: (trx: Db) => Promise<void>): Promise<TaskEvent[]> {
      const written = alsoInTransaction
        ? await db.transaction().execute(async (trx) => {
            const rows = await updateStateWithEvents(trx, taskId, events, state);
            if (rows) await alsoInTransaction(trx);
            return rows;
          })
        : await updateStateWithEvents(db, taskId, events, state);
      if (!written) throw new TaskNotFoundError(taskId);
      await publish(taskId, written);
      return written;
    },

    list(taskId: string, afterSeq: number, limit = 1000): Promise<TaskEvent[]> {
      return selectEventsAfter(db, taskId, afterSeq, limit);
    },

    async lastSeq(taskId: string): Promise<number> {
      const seq = await selectEventSeq(db, taskId);
      if (seq === undefined) throw new TaskNotFoundError(taskId);
      return seq;
    },
  };
}

export type TaskEvents = ReturnType<typeof createTaskEvents>;

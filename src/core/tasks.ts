import { createHash, randomUUID } from 'node:crypto';
import type { Db } from '../db/create-db.ts';
import { TERMINAL_STATUSES, type AttemptRecord, type ConsentDecision, type ResultRef, type TaskState, type TaskStatus } from './task-model.ts';
import { ConflictError, InvalidRequestError, NotFoundError } from './errors.ts';
import type { Limits } from './limits.ts';
import type { CallerScopes, RecordAudit } from './caller-scope.ts';
import type { ProjectService } from './projects.ts';
import { isUuid } from './projects.ts';
import type { Registry } from './registry.ts';
import type { ResultView } from './results.ts';
import type { NewEvent, TaskEvent, TaskStateColumns } from './task-events.ts';
import { createTaskIntake } from './task-intake.ts';
import { createTaskRetries } from './task-retries.ts';
import * as repo from './tasks-repository.ts';

/** Starts and steers task executions. Implemented over Temporal; the service knows only this shape. */
export interface TaskRunner {
  start(task: { taskId: string; workflowId: string; projectId: string; tool: string; heavy: boolean; consentToOracle: boolean; requestId?: string }): Promise<void>;
  /** Throws NotAwaitingConsentError when the execution is not waiting for a decision. */
  decideConsent(workflowId: string, decision: ConsentDecision): Promise<TaskState>;
  /** False when no execution exists under this id (it was never started). */
  cancel(workflowId: string): Promise<boolean>;
}

export class NotAwaitingConsentError extends ConflictError {
  constructor(status?: string) {
    super('NotAwaitingConsent', status ? `the task is not awaiting consent (status: ${status})` : 'the task is not awaiting consent', status ? { taskStatus: status } : undefined);
  }
}

export interface TaskView {
  id: string;
  projectId: string;
  tool: string;
  status: TaskStatus;
  heavy: boolean;
  consentToOracle: boolean;
  target?: Record<string, unknown>;
  attempts: AttemptRecord[];
  error?: Record<string, unknown>;
  result?: unknown;
  /** The failed or canceled task this one reruns. */
  retryOf?: string;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

export interface SubmitInput {
  projectId: string;
  tool: string;
  arguments: Record<string, unknown>;
  heavy?: boolean;
  consentToOracle?: boolean;
}

interface Deps {
  db: Db;
  projects: ProjectService;
  registry: Registry;
  runner: TaskRunner;
  events: {
    append(taskId: string, type: string, data: Record<string, unknown>): Promise<TaskEvent>;
    appendAll(taskId: string, events: NewEvent[], alsoInTransaction?: (trx: Db) => Promise<void>): Promise<TaskEvent[]>;
    appendWhen(taskId: string, events: NewEvent[], change: (trx: Db) => Promise<boolean>): Promise<TaskEvent[] | undefined>;
    appendTransition(taskId: string, events: NewEvent[], state: TaskStateColumns, alsoInTransaction?: (trx: Db) => Promise<void>): Promise<TaskEvent[]>;
    list(taskId: string, afterSeq: number, limit?: number): Promise<TaskEvent[]>;
  };
  results: { describe(taskId: string): Promise<ResultView | undefined> };
  onFinished?: (status: TaskStatus) => void;
  /** The per-project cap on active tasks, checked when a new task would be created (never on a replay). */
  limits?: Pick<Limits, 'activeTasksQuota' | 'activeTasks'> & Partial<Pick<Limits, 'submission'>>;
  /** A workflow start that failed: the task stays queued and the reconciler starts it later. */
  onStartFailed?: (taskId: string, err: unknown) => void;
  /** Problems of the arguments under the tool's declared input schemas; [] when they fit. */
  validateArguments?: (tool: string, schemas: Array<Record<string, unknown>>, args: Record<string, unknown>) => Array<{ path: string; message: string }>;
  /** Narrows what an API key sees to its project. */
  scopes?: CallerScopes;
  /** The trail of consent decisions, cancellations and retries. */
  recordAudit?: RecordAudit;
  /**
   * Hears every recorded transition inside its transaction (e.g. to log it on the agent run that started the task);
   * what it returns runs once the transaction committed.
   */
  onTransition?: (trx: Db, transition: { taskId: string; before: TaskStatus; state: TaskState }) => Promise<(() => Promise<void>) | void>;
}

const isTerminal = (s: string) => (TERMINAL_STATUSES as readonly string[]).includes(s);
/** The events that describe a transition to `state`: an error first when it ends in one, then the status. */
function transitionEvents(state: TaskState, detail?: Record<string, unknown>): NewEvent[] {
  const events: NewEvent[] = [];
  if (state.error && isTerminal(state.status)) events.push({ type: 'error', data: { ...state.error } });
  events.push({
    type: 'status',
    data: {
      status: state.status,
      ...(state.target ? { target: state.target } : {}),
      ...(state.consent !== 'not_needed' ? { consent: state.consent } : {}),
      ...(state.consentDeadline ? { consentDeadline: state.consentDeadline } : {}),
      ...(detail ? { detail } : {}),
    },
  });
  return events;
}

/** Stable JSON (sorted keys) so the same body always hashes the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Equal as stored: undefined members vanish in JSON, so a value compares equal to its round trip through Postgres. */
function sameJson(a: unknown, b: unknown): boolean {
  return canonical(JSON.parse(JSON.stringify(a ?? null))) === canonical(JSON.parse(JSON.stringify(b ?? null)));
}

/** A UUID derived from the caller and their key, so a repeated submission lands on the same task and workflow. */
function idFromKey(userId: string, key: string): string {
  const h = createHash('sha256').update(`${userId}\0${key}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function toView(row: repo.TaskRow, result?: ResultView): TaskView {
  return {
    id: row.id,
    projectId: row.project_id,
    tool: row.tool,
    status: row.status as TaskStatus,
    heavy: row.heavy,
    consentToOracle: row.consent_to_oracle,
    ...(row.target ? { target: row.target } : {}),
    attempts: row.attempts as AttemptRecord[],
    ...(row.error ? { error: row.error } : {}),
    ...(result ? { result: result.storage === 'inline' ? result.value : result.pointer } : {}),
    ...(row.retry_of ? { retryOf: row.retry_of } : {}),
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    ...(row.finished_at ? { finishedAt: row.finished_at.toISOString() } : {}),
  };
}

export function createTaskService(deps: Deps) {
  const { db } = deps;
  const intake = createTaskIntake(deps);
  const retries = createTaskRetries({ ...deps, intake });

  async function visible(userId: string, taskId: string): Promise<repo.TaskRow> {
    const row = isUuid(taskId) ? await repo.findVisibleTask(db, userId, taskId) : undefined;
    if (!row || (deps.scopes && !deps.scopes.allowsProject(row.project_id))) throw new NotFoundError('Task', taskId);
    return row;
  }

  /** Ends a task whose workflow never started, unless a start is under way (then the caller cancels the execution). */
  async function cancelUnstarted(taskId: string): Promise<boolean> {
    const state: TaskState = { status: 'canceled', attempts: [], consent: 'not_needed', error: { code: 'Canceled', message: 'The task was canceled.' } };
    const written = await deps.events.appendWhen(taskId, transitionEvents(state), async (trx) => {
      if (!(await repo.lockUnstartedTask(trx, taskId, { skipLocked: false }))) return false;
      await repo.updateTaskState(trx, taskId, { status: 'canceled', target: null, attempts: [], error: { ...state.error! }, finished: true });
      return true;
    });
    if (written) deps.onFinished?.('canceled');
    return written !== undefined;
  }

  return {
    async submit(userId: string, input: SubmitInput, opts: { idempotencyKey?: string; requestId?: string } = {}): Promise<{ task: TaskView; created: boolean }> {
      await deps.projects.requireRole(userId, input.projectId, 'member');
      const offerings = await deps.registry.offerings(input.tool, input.projectId);
      if (offerings.length === 0) {
        throw new InvalidRequestError('UnknownTool', `no enabled server offers the tool "${input.tool}"`, { tool: input.tool });
      }
      const problems = deps.validateArguments?.(input.tool, offerings.map((o) => o.tool.inputSchema), input.arguments) ?? [];
      if (problems.length > 0) {
        throw new InvalidRequestError('InvalidArguments', `the arguments do not match the input schema of "${input.tool}": ${problems[0]!.path}: ${problems[0]!.message}`, {
          errors: problems,
        });
      }
      const heavy = input.heavy ?? false;
      const consentToOracle = input.consentToOracle ?? false;
      const requestHash = createHash('sha256')
        .update(canonical({ projectId: input.projectId, tool: input.tool, arguments: input.arguments, heavy, consentToOracle }))
        .digest('hex');
      const id = opts.idempotencyKey ? idFromKey(userId, opts.idempotencyKey) : randomUUID();
      const workflowId = `task-${id}`;
      const values = {
        id,
        project_id: input.projectId,
        created_by: userId,
        tool: input.tool,
        arguments: JSON.stringify(input.arguments),
        heavy,
        consent_to_oracle: consentToOracle,
        idempotency_key: opts.idempotencyKey ?? null,
        request_hash: requestHash,
        workflow_id: workflowId,
        status: 'queued',
        target: null,
        attempts: '[]',
        error: null,
      };

      // An idempotent replay is answered before any limit: it creates nothing.
      let existing = opts.idempotencyKey ? await repo.findTask(db, id) : undefined;
      let created = false;
      if (!existing) {
        await intake.checkActiveTasks(input.projectId, 1);
        created = await intake.insertWithFirstEvent(id, (trx) => repo.insertTask(trx, values));
        if (!created) existing = await repo.findTask(db, id);
      }
      if (!created && (!existing || existing.request_hash !== requestHash)) {
        throw new ConflictError('IdempotencyKeyReused', 'this Idempotency-Key was already used with a different request body');
      }
      // Accepted means stored: from here the task runs, whether this start succeeds or the reconciler's does. A
      // replay whose first attempt stored the task but could not start it starts it now.
      if (created || (existing!.status === 'queued' && !existing!.workflow_started_at)) await intake.start(values, opts.requestId);
      return { task: toView((await repo.findTask(db, id))!), created };
    },

    /** Reruns a failed or canceled task as a new task with the same arguments (`retryOf` links them). */
    async retry(userId: string, taskId: string, opts: { requestId?: string } = {}): Promise<TaskView> {
      return toView((await repo.findTask(db, await retries.retry(userId, taskId, opts)))!);
    },

    retryMany: retries.retryMany,

    /** For the reconciler: starts tasks accepted but never started. */
    startUnstarted: intake.startUnstarted,

    async get(userId: string, taskId: string): Promise<TaskView> {
      const row = await visible(userId, taskId);
      const result = row.status === 'succeeded' ? await deps.results.describe(row.id) : undefined;
      return toView(row, result);
    },

    async list(userId: string, q: { projectId?: string; status?: TaskStatus; limit: number; cursor?: string }): Promise<{ items: TaskView[]; nextCursor?: string }> {
      if (q.projectId) await deps.projects.get(userId, q.projectId);
      let before: { createdAt: Date; id: string } | undefined;
      if (q.cursor) {
        const [ts, id] = Buffer.from(q.cursor, 'base64url').toString('utf8').split('|');
        const createdAt = new Date(ts ?? '');
        if (!id || !isUuid(id) || Number.isNaN(createdAt.getTime())) throw new InvalidRequestError('InvalidCursor', 'the cursor is not one this API returned');
        before = { createdAt, id };
      }
      const projectId = q.projectId ?? deps.scopes?.boundProject();
      const rows = await repo.listVisibleTasks(db, userId, { projectId, status: q.status, limit: q.limit + 1, before });
      const page = rows.slice(0, q.limit);
      const last = page.at(-1);
      return {
        items: page.map((r) => toView(r)),
        ...(rows.length > q.limit && last ? { nextCursor: Buffer.from(`${last.created_at.toISOString()}|${last.id}`).toString('base64url') } : {}),
      };
    },

    async decideConsent(userId: string, taskId: string, decision: ConsentDecision): Promise<TaskState> {
      const row = await visible(userId, taskId);
      await deps.projects.requireRole(userId, row.project_id, 'member');
      if (row.status !== 'awaiting_consent') throw new NotAwaitingConsentError(row.status);
      const state = await deps.runner.decideConsent(row.workflow_id, decision);
      // Written once the execution accepted the decision: a refused update leaves no entry claiming it happened.
      await deps.recordAudit?.({ action: 'task.consent', projectId: row.project_id, target: { type: 'task', id: row.id }, detail: { grant: decision.grant, tool: row.tool } });
      return state;
    },

    async cancel(userId: string, taskId: string): Promise<TaskView> {
      const row = await visible(userId, taskId);
      await deps.projects.requireRole(userId, row.project_id, 'member');
      if (isTerminal(row.status)) throw new ConflictError('TaskFinished', `the task already ended (status: ${row.status})`, { taskStatus: row.status });
      // Never started: ended here, so the reconciler will not start it. Started meanwhile: its execution is canceled.
      const ended = (!row.workflow_started_at && (await cancelUnstarted(row.id))) || (await deps.runner.cancel(row.workflow_id));
      if (!ended) {
        // Marked started but no execution under its id (a row from before start tracking): nothing else will end it.
        await this.recordState(row.id, { status: 'canceled', attempts: row.attempts as AttemptRecord[], consent: 'not_needed', error: { code: 'Canceled', message: 'The task was canceled.' } });
      }
      await deps.recordAudit?.({ action: 'task.cancel', projectId: row.project_id, target: { type: 'task', id: row.id }, detail: { tool: row.tool, statusBefore: row.status } });
      return toView((await repo.findTask(db, row.id))!);
    },

    /** The project a visible task belongs to, for checks before streaming. */
    async require(userId: string, taskId: string): Promise<TaskView> {
      return toView(await visible(userId, taskId));
    },

    /**
     * Written by the workflow (through an activity) on every transition: the API's read model and the event log,
     * in one transaction so neither is ever seen without the other.
     */
    async recordState(taskId: string, state: TaskState, detail?: Record<string, unknown>): Promise<void> {
      // The row and its last event in one read: a transition is then two statements (this and the write).
      const row = await repo.findTransitionBase(db, taskId);
      if (!row) throw new NotFoundError('Task', taskId);
      if (isTerminal(row.status)) return; // a retried write after the end: the log already has it
      const finished = isTerminal(state.status);
      const events = transitionEvents(state, detail);
      // A worker that died after this write committed replays it: the same transition is not logged twice.
      const status = events.at(-1)!;
      if (row.lastType === 'status' && sameJson(row.lastData, status.data) && sameJson(row.attempts, state.attempts)) return;
      const columns = { status: state.status, target: state.target ?? null, attempts: state.attempts, error: state.error ? { ...state.error } : null, finished };
      const hook = deps.onTransition;
      let afterCommit: (() => Promise<void>) | void = undefined;
      await deps.events.appendTransition(
        taskId,
        events,
        columns,
        hook &&
          (async (trx) => {
            afterCommit = await hook(trx, { taskId, before: row.status as TaskStatus, state });
          }),
      );
      await (afterCommit as (() => Promise<void>) | void)?.();
      if (finished) deps.onFinished?.(state.status);
    },

    async recordSuccess(taskId: string, ref: ResultRef, state: TaskState): Promise<void> {
      const row = await repo.findTransitionBase(db, taskId);
      if (!row) throw new NotFoundError('Task', taskId);
      if (isTerminal(row.status)) return;
      await deps.events.appendTransition(
        taskId,
        [
          { type: 'result', data: { ...ref } },
          { type: 'status', data: { status: 'succeeded', ...(state.target ? { target: state.target } : {}) } },
        ],
        { status: 'succeeded', target: state.target ?? null, attempts: state.attempts, error: null, finished: true },
      );
      deps.onFinished?.('succeeded');
    },
  };
}

export type TaskService = ReturnType<typeof createTaskService>;

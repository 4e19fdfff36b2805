import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Db } from '../db/create-db.ts';
import type { AgentDefinition, AgentRunError, AgentStepStatus, PreparedStep, RunPlan } from './agent-model.ts';
import { TERMINAL_RUN_STATUSES, type AgentRunStatus } from './agent-model.ts';
import { resolveRefs, type RefRoot } from './agent-refs.ts';
import { MAX_STEP_KIND_OUTPUT_BYTES, type AgentStepKinds } from './agent-step-kinds.ts';
import { planAgent } from './agent-validation.ts';
import type { AgentService } from './agents.ts';
import { ConflictError, DomainError, InvalidRequestError, NotFoundError } from './errors.ts';
import type { ProjectService } from './projects.ts';
import { isUuid } from './projects.ts';
import { LimitExceededError, type Limits } from './limits.ts';
import type { NewEvent, TaskEvent } from './task-events.ts';
import type { ConsentDecision, TaskState, TaskStatus } from './task-model.ts';
import { NotAwaitingConsentError } from './tasks.ts';
import * as repo from './agent-runs-repository.ts';
import * as tasksRepo from './tasks-repository.ts';

/** A forEach over more elements than this fails its step: a run is a handful of calls, not a batch job. */
export const MAX_FOR_EACH_ITEMS = 1000;
/** A step output read back from a large (pointer) result, at most. */
const MAX_OUTPUT_READ_BYTES = 8 * 1024 * 1024;

/** Starts and steers run executions. Implemented over Temporal; the service knows only this shape. */
export interface AgentRunRunner {
  start(run: { runId: string; workflowId: string; projectId: string; agentName: string }): Promise<void>;
  cancel(workflowId: string): Promise<boolean>;
}

/** A step's input could not be built (a reference named nothing, forEach was not an array): the step fails. */
export class StepInputError extends DomainError {
  constructor(message: string) {
    super('StepInputInvalid', message);
  }
}

export interface RunEvent {
  seq: number;
  type: string;
  data: Record<string, unknown>;
  createdAt: string;
}

/** Followers of run logs: the task event feed over the run event log (see compose). */
export interface RunEventFeed {
  follow(runId: string, afterSeq: number, onEvent: (e: RunEvent) => Promise<void>, signal: AbortSignal, options: { isTerminal: (e: RunEvent) => boolean }): Promise<void>;
}

export const isTerminalRunEvent = (e: { type: string; data: Record<string, unknown> }): boolean =>
  e.type === 'status' && (TERMINAL_RUN_STATUSES as readonly unknown[]).includes(e.data.status);

export class AgentRunNotFoundError extends DomainError {
  constructor(runId: string) {
    super('AgentRunNotFound', `agent run "${runId}" was not found`);
  }
}

/** A run's log as the event feed reads it (the same shape as a task's). */
export function runEventLog(db: Db) {
  return {
    async list(runId: string, afterSeq: number, limit = 500) {
      const rows = await repo.listRunEvents(db, runId, afterSeq, limit);
      return rows.map((e) => ({ taskId: runId, seq: e.seq, type: e.type, data: e.data, createdAt: e.created_at.toISOString() }));
    },
    async lastSeq(runId: string): Promise<number> {
      const seq = await repo.findRunEventSeq(db, runId);
      if (seq === undefined) throw new AgentRunNotFoundError(runId);
      return seq;
    },
  };
}

const toRunEvent = (e: repo.RunEventRow): RunEvent => ({ seq: e.seq, type: e.type, data: e.data, createdAt: e.created_at.toISOString() });

/**
 * A step task's consent wait, on its run's log: `step.awaiting_consent` when the wait starts (the step, its task, the
 * target it would run on, the deadline) and `step.consent` when a decision ends it (granted, denied or expired). Called
 * in the transaction that records the task's transition (TaskService onTransition); publishes once it committed.
 */
export function stepConsentEvents(deps: { publishRunEvents?: (runId: string, events: RunEvent[]) => Promise<void> }) {
  return async (trx: Db, t: { taskId: string; before: TaskStatus; state: TaskState }): Promise<(() => Promise<void>) | void> => {
    const waits = t.state.status === 'awaiting_consent' && t.before !== 'awaiting_consent';
    const decided = t.before === 'awaiting_consent' && t.state.status !== 'awaiting_consent' && ['granted', 'denied', 'expired'].includes(t.state.consent);
    if (!waits && !decided) return;
    const step = await repo.findStepOfTask(trx, t.taskId);
    if (!step) return;
    const at = { step: step.step_id, ...(step.item >= 0 ? { item: step.item } : {}), taskId: t.taskId };
    const event = waits
      ? { type: 'step.awaiting_consent', data: { ...at, ...(t.state.target ? { target: { ...t.state.target } } : {}), ...(t.state.consentDeadline ? { consentDeadline: t.state.consentDeadline } : {}) } }
      : { type: 'step.consent', data: { ...at, consent: t.state.consent, ...(t.state.target ? { target: { ...t.state.target } } : {}) } };
    const written = await repo.appendRunEvents(trx, step.run_id, [event]);
    return async () => {
      await deps.publishRunEvents?.(step.run_id, written.map(toRunEvent));
    };
  };
}

export interface AgentRunView {
  id: string;
  projectId: string;
  agent: string;
  version: number;
  status: AgentRunStatus;
  error?: AgentRunError;
  steps: Array<{ id: string; status: AgentStepStatus; tool?: string; kind: string; taskId?: string; items?: Array<{ index: number; taskId?: string; status: string }> }>;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(value ?? null);
}

/** A UUID (v5 layout) from a name: the same run/key or run/step/item always maps to the same id. */
function uuidFrom(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * A tool result as a step output: its structuredContent when it has one, else its text items joined, parsed as JSON
 * when they are JSON (so a tool that prints JSON feeds later steps structured values).
 */
export function outputOfToolResult(result: unknown): unknown {
  if (!result || typeof result !== 'object') return result;
  const r = result as { structuredContent?: unknown; content?: Array<{ type?: string; text?: string }> };
  if (r.structuredContent !== undefined) return r.structuredContent;
  if (!Array.isArray(r.content)) return result;
  const text = r.content.filter((c) => c?.type === 'text' && typeof c.text === 'string').map((c) => c.text).join('');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function readCapped(body: Buffer | Readable, max: number): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > max) {
      body.destroy();
      throw new StepInputError(`a step output is larger than ${max} bytes and cannot be passed to another step`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function createAgentRunService(deps: {
  db: Db;
  projects: Pick<ProjectService, 'get' | 'requireRole'>;
  agents: Pick<AgentService, 'current'>;
  runner: AgentRunRunner;
  stepKinds: AgentStepKinds;
  taskEvents: { appendWhen(taskId: string, events: NewEvent[], change: (trx: Db) => Promise<boolean>): Promise<TaskEvent[] | undefined> };
  results: { open(taskId: string): Promise<{ body: Buffer | Readable; mediaType: string } | undefined> };
  /** The task consent path: a decision given to a run goes to each of its step tasks that awaits one. */
  taskConsent: { decideConsent(userId: string, taskId: string, decision: ConsentDecision): Promise<unknown> };
  validateInput?: (schema: Record<string, unknown>, input: unknown) => Array<{ path: string; message: string }>;
  /** The project's active-task limit: a step's task counts like any other (undefined quota: limits are off). */
  limits?: Pick<Limits, 'activeTasksQuota' | 'activeTasks'>;
  /** Tells followers of the run about events once they are committed (best effort: followers also read the log). */
  publishRunEvents?: (runId: string, events: RunEvent[]) => Promise<void>;
  /** Follows a run's log live (pushed by publishRunEvents, the log in Postgres the source of truth). */
  runEventFeed: RunEventFeed;
}) {
  const { db } = deps;
  const publish = async (runId: string, written: repo.RunEventRow[]) => {
    if (written.length > 0) await deps.publishRunEvents?.(runId, written.map(toRunEvent));
  };
  /** Appends run events in a transaction with the change they describe (`change`), and publishes them once committed. */
  async function logged(runId: string, events: Array<{ type: string; data: Record<string, unknown> }>, change: (trx: Db) => Promise<void>): Promise<void> {
    const written = await db.transaction().execute(async (trx) => {
      await change(trx);
      return repo.appendRunEvents(trx, runId, events);
    });
    await publish(runId, written);
  }

  async function load(runId: string): Promise<repo.AgentRunRow> {
    const row = await repo.findRun(db, runId);
    if (!row) throw new AgentRunNotFoundError(runId);
    return row;
  }
  const definitionOf = (row: repo.AgentRunRow) => row.definition as unknown as AgentDefinition;
  const planOf = (row: repo.AgentRunRow) => planAgent(definitionOf(row), { stepKinds: new Set(deps.stepKinds.keys()) });

  /** The output of one step item (-1: the whole step; a forEach step's output is the array of its items'). */
  async function stepOutput(runId: string, stepId: string): Promise<unknown> {
    const rows = (await repo.listRunSteps(db, runId)).filter((s) => s.step_id === stepId);
    const outputs: unknown[] = [];
    for (const s of rows) {
      if (!s.task_id) outputs.push(s.output);
      else {
        const result = await deps.results.open(s.task_id);
        if (!result) throw new StepInputError(`step "${stepId}" has no stored result`);
        const text = (await readCapped(result.body, MAX_OUTPUT_READ_BYTES)).toString('utf8');
        let parsed: unknown = text;
        if (result.mediaType.includes('json')) parsed = JSON.parse(text);
        outputs.push(outputOfToolResult(parsed));
      }
    }
    const isForEach = rows.some((r) => r.item >= 0);
    return isForEach ? outputs : outputs[0];
  }

  async function itemsOf(row: repo.AgentRunRow, stepId: string): Promise<unknown[]> {
    const step = definitionOf(row).steps.find((s) => s.id === stepId)!;
    const items = await resolveRefs(step.forEach, (root) => lookup(row, root, undefined));
    if (!Array.isArray(items)) throw new StepInputError(`step "${stepId}": forEach ${step.forEach!.$ref} is not an array`);
    if (items.length > MAX_FOR_EACH_ITEMS) throw new StepInputError(`step "${stepId}": forEach has ${items.length} items, more than ${MAX_FOR_EACH_ITEMS}`);
    return items;
  }

  function lookup(row: repo.AgentRunRow, root: RefRoot, item: unknown): Promise<unknown> {
    if (root.kind === 'input') return Promise.resolve(row.input);
    if (root.kind === 'item') return Promise.resolve(item);
    return stepOutput(row.id, root.step);
  }

  async function argumentsFor(row: repo.AgentRunRow, stepId: string, item: number): Promise<Record<string, unknown>> {
    const step = definitionOf(row).steps.find((s) => s.id === stepId)!;
    const element = item >= 0 ? (await itemsOf(row, stepId))[item] : undefined;
    try {
      return (await resolveRefs(step.arguments, (root) => lookup(row, root, element))) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof StepInputError) throw err;
      throw new StepInputError(`step "${stepId}": ${(err as Error).message}`);
    }
  }

  async function setStepState(row: repo.AgentRunRow, stepId: string, state: { status: AgentStepStatus; items?: number }): Promise<void> {
    await logged(row.id, [{ type: 'step', data: { step: stepId, ...state } }], async (trx) => {
      const current = (await repo.findRun(trx, row.id))!.step_states;
      await repo.updateRun(trx, row.id, { stepStates: { ...current, [stepId]: state } });
    });
  }

  async function toView(row: repo.AgentRunRow): Promise<AgentRunView> {
    const def = definitionOf(row);
    const units = await repo.listRunSteps(db, row.id);
    const states = row.step_states as Record<string, { status?: AgentStepStatus }>;
    // A running run whose step tasks wait for consent shows it: read from the tasks, so consent (or its deadline)
    // puts the run back to running without the workflow writing anything.
    const waiting = row.status === 'running' && units.some((u) => u.task_status === 'awaiting_consent');
    return {
      id: row.id,
      projectId: row.project_id,
      agent: row.agent_name,
      version: row.agent_version,
      status: waiting ? 'awaiting_consent' : (row.status as AgentRunStatus),
      ...(row.error ? { error: row.error as unknown as AgentRunError } : {}),
      steps: def.steps.map((s) => {
        const mine = units.filter((u) => u.step_id === s.id);
        const awaiting = mine.some((u) => u.task_status === 'awaiting_consent');
        const status: AgentStepStatus = awaiting ? 'awaiting_consent' : (states[s.id]?.status ?? 'pending');
        const single = mine.find((u) => u.item === -1);
        return {
          id: s.id,
          kind: s.kind ?? 'tool',
          ...(s.tool ? { tool: s.tool } : {}),
          status,
          ...(single?.task_id ? { taskId: single.task_id } : {}),
          ...(s.forEach ? { items: mine.filter((u) => u.item >= 0).map((u) => ({ index: u.item, ...(u.task_id ? { taskId: u.task_id } : {}), status: u.task_status ?? u.status })) } : {}),
        };
      }),
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
      ...(row.finished_at ? { finishedAt: row.finished_at.toISOString() } : {}),
    };
  }

  async function visible(userId: string, runId: string): Promise<repo.AgentRunRow> {
    const row = isUuid(runId) ? await repo.findVisibleRun(db, userId, runId) : undefined;
    if (!row) throw new NotFoundError('AgentRun', runId);
    return row;
  }

  return {
    async start(userId: string, projectId: string, agentName: string, input: unknown, opts: { idempotencyKey?: string } = {}): Promise<{ run: AgentRunView; created: boolean }> {
      await deps.projects.requireRole(userId, projectId, 'member');
      const agent = await deps.agents.current(projectId, agentName);
      if (!agent) throw new NotFoundError('Agent', agentName);
      if (agent.definition.inputSchema && deps.validateInput) {
        const problems = deps.validateInput(agent.definition.inputSchema, input);
        if (problems.length > 0) throw new InvalidRequestError('InvalidInput', `the input does not match the agent's input schema: ${problems[0]!.path}: ${problems[0]!.message}`, { errors: problems });
      }
      const requestHash = createHash('sha256').update(canonical({ projectId, agentName, input })).digest('hex');
      const id = opts.idempotencyKey ? uuidFrom(`agent-run\0${userId}\0${opts.idempotencyKey}`) : randomUUID();
      const workflowId = `agent-run-${id}`;
      const { created, written } = await db.transaction().execute(async (trx) => {
        const inserted = await repo.insertRun(trx, { id, projectId, agentId: agent.id, agentName, agentVersion: agent.version, definition: agent.definition, input, userId, idempotencyKey: opts.idempotencyKey, requestHash, workflowId });
        return { created: inserted, written: inserted ? await repo.appendRunEvents(trx, id, [{ type: 'status', data: { status: 'queued', agent: agentName, version: agent.version } }]) : [] };
      });
      await publish(id, written);
      const row = (await repo.findRun(db, id))!;
      if (!created && row.request_hash !== requestHash) throw new ConflictError('IdempotencyKeyReused', 'this Idempotency-Key was already used with a different request body');
      await deps.runner.start({ runId: id, workflowId, projectId, agentName });
      await repo.markRunStarted(db, id);
      return { run: await toView(row), created };
    },

    async get(userId: string, runId: string): Promise<AgentRunView> {
      return toView(await visible(userId, runId));
    },

    /** The output of every step that succeeded, by step id: what a caller waiting for the run gets back. */
    async outputs(userId: string, runId: string): Promise<Record<string, unknown>> {
      const row = await visible(userId, runId);
      const view = await toView(row);
      const out: Record<string, unknown> = {};
      for (const step of view.steps) if (step.status === 'succeeded') out[step.id] = await stepOutput(runId, step.id);
      return out;
    },

    async cancel(userId: string, runId: string): Promise<AgentRunView> {
      const row = await visible(userId, runId);
      await deps.projects.requireRole(userId, row.project_id, 'member');
      if ((TERMINAL_RUN_STATUSES as readonly string[]).includes(row.status)) throw new ConflictError('AgentRunFinished', `the run already ended (status: ${row.status})`, { runStatus: row.status });
      await deps.runner.cancel(row.workflow_id);
      return toView((await repo.findRun(db, runId))!);
    },

    /** Passes the decision to every step task awaiting consent; 409 when none does. */
    async decideConsent(userId: string, runId: string, decision: ConsentDecision): Promise<AgentRunView> {
      const row = await visible(userId, runId);
      await deps.projects.requireRole(userId, row.project_id, 'member');
      const waiting = (await repo.listRunSteps(db, runId)).filter((u) => u.task_id && u.task_status === 'awaiting_consent');
      if (waiting.length === 0) throw new ConflictError('NotAwaitingConsent', `the run is not awaiting consent (status: ${row.status})`, { runStatus: row.status });
      for (const unit of waiting) {
        try {
          await deps.taskConsent.decideConsent(userId, unit.task_id!, decision);
        } catch (err) {
          // That step's consent deadline passed in between: it moved on by itself.
          if (!(err instanceof NotAwaitingConsentError)) throw err;
        }
      }
      return toView((await repo.findRun(db, runId))!);
    },

    /**
     * The run's events after `after`, exactly once and in order, live until the terminal status event (a run's events are
     * few; its steps' fine-grained events are on each task's own stream).
     */
    async followEvents(runId: string, after: number, onEvent: (e: RunEvent) => Promise<void>, signal: AbortSignal): Promise<void> {
      await deps.runEventFeed.follow(runId, after, onEvent, signal, { isTerminal: isTerminalRunEvent });
    },

    // What the run's workflow does, through its activities.

    async beginRun(runId: string): Promise<RunPlan> {
      const row = await load(runId);
      if (row.status === 'queued') await logged(runId, [{ type: 'status', data: { status: 'running' } }], (trx) => repo.updateRun(trx, runId, { status: 'running' }));
      return { steps: planOf(row) };
    },

    async expandStep(runId: string, stepId: string): Promise<number> {
      return (await itemsOf(await load(runId), stepId)).length;
    },

    /**
     * Creates the step item's task (idempotent: the same run, step and item always make the same task). The task counts
     * toward the project's active-task limit: at the limit this throws LimitExceededError (TooManyActiveTasks), which
     * the run's workflow retries with backoff, so the step waits for a slot; the first refusal (`firstAttempt`) is
     * logged on the run as `step.waiting`.
     */
    async prepareStep(runId: string, stepId: string, item: number, opts: { firstAttempt?: boolean } = {}): Promise<PreparedStep> {
      const row = await load(runId);
      const step = planOf(row).find((s) => s.id === stepId)!;
      const args = await argumentsFor(row, stepId, item);
      const taskId = uuidFrom(`agent-step\0${runId}\0${stepId}\0${item}`);
      const quota = deps.limits?.activeTasksQuota;
      if (quota !== undefined && !(await tasksRepo.findTask(db, taskId))) {
        // Count, then insert: as for submissions, racing creators can overshoot the limit by as many as run at once.
        const decision = deps.limits!.activeTasks(await tasksRepo.countActiveTasks(db, row.project_id));
        if (!decision.allowed) {
          if (opts.firstAttempt) {
            await logged(runId, [{ type: 'step.waiting', data: { step: stepId, ...(item >= 0 ? { item } : {}), reason: 'TooManyActiveTasks', activeTasksLimit: quota } }], async () => undefined);
          }
          throw new LimitExceededError(decision);
        }
      }
      const values = {
        id: taskId,
        project_id: row.project_id,
        created_by: row.created_by,
        tool: step.tool!,
        arguments: JSON.stringify(args),
        heavy: step.heavy,
        consent_to_oracle: step.consentToOracle,
        idempotency_key: null,
        request_hash: null,
        workflow_id: `task-${taskId}`,
        status: 'queued',
        target: null,
        attempts: '[]',
        error: null,
        // The run's workflow starts it (durably): the reconciler must never start it on its own.
        workflow_started_at: new Date(),
      };
      let written: repo.RunEventRow[] = [];
      await deps.taskEvents.appendWhen(taskId, [{ type: 'status', data: { status: 'queued', agentRun: runId, step: stepId } }], async (trx) => {
        const inserted = await tasksRepo.insertTask(trx, values);
        if (inserted) {
          await repo.upsertStepRow(trx, { runId, stepId, item, taskId, status: 'started' });
          written = await repo.appendRunEvents(trx, runId, [{ type: 'step', data: { step: stepId, ...(item >= 0 ? { item } : {}), status: 'started', taskId } }]);
        }
        return inserted;
      });
      await publish(runId, written);
      return { taskId, workflowId: values.workflow_id, tool: step.tool!, heavy: step.heavy, consentToOracle: step.consentToOracle };
    },

    async runStepKind(runId: string, stepId: string, item: number): Promise<void> {
      const row = await load(runId);
      const step = definitionOf(row).steps.find((s) => s.id === stepId)!;
      const kind = deps.stepKinds.get(step.kind ?? 'tool');
      if (!kind) throw new StepInputError(`step "${stepId}": no step kind "${step.kind}"`);
      const output = await kind.run({ projectId: row.project_id, runId, stepId, arguments: await argumentsFor(row, stepId, item) });
      if (Buffer.byteLength(JSON.stringify(output ?? null)) > MAX_STEP_KIND_OUTPUT_BYTES) throw new StepInputError(`step "${stepId}": its output is over ${MAX_STEP_KIND_OUTPUT_BYTES} bytes`);
      await repo.upsertStepRow(db, { runId, stepId, item, status: 'succeeded', output: output ?? null });
    },

    async recordStep(runId: string, stepId: string, status: AgentStepStatus, items?: number): Promise<void> {
      await setStepState(await load(runId), stepId, { status, ...(items !== undefined ? { items } : {}) });
    },

    /** The run's end: steps that never finished are marked canceled (were running) or skipped (never started). */
    async finishRun(runId: string, status: AgentRunStatus, error?: AgentRunError): Promise<void> {
      const row = await load(runId);
      if ((TERMINAL_RUN_STATUSES as readonly string[]).includes(row.status)) return;
      const states = { ...(row.step_states as Record<string, { status: AgentStepStatus }>) };
      const events: Array<{ type: string; data: Record<string, unknown> }> = [];
      for (const s of definitionOf(row).steps) {
        const st = states[s.id]?.status;
        if (error?.step === s.id) states[s.id] = { ...states[s.id], status: 'failed' };
        else if (st === 'running') states[s.id] = { ...states[s.id], status: 'canceled' };
        else if (!st || st === 'pending') states[s.id] = { status: 'skipped' };
        if (states[s.id]!.status !== st) events.push({ type: 'step', data: { step: s.id, status: states[s.id]!.status } });
      }
      // The terminal status event is the last of the log: followers stop after it.
      events.push({ type: 'status', data: { status, ...(error ? { error: { ...error } } : {}) } });
      await logged(runId, events, (trx) => repo.updateRun(trx, runId, { status, stepStates: states, error: error ? { ...error } : null, finished: true }));
    },
  };
}

export type AgentRunService = ReturnType<typeof createAgentRunService>;

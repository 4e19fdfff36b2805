// Where a task's time goes under load: each measured task's client-side marks (POST sent, 202 received, terminal
// event read) laid beside its workflow history's event times, as percentiles per phase. Queueing shows up as the
// gaps between "scheduled" and "started"; our own work as the spans between "started" and "completed".

import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { fmt, percentile } from './stats.ts';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export interface TaskMarks {
  workflowId: string;
  /** Date.now() when the submission was sent (history times are wall-clock too). */
  sentAt: number;
  acceptedAt?: number;
  doneAt?: number;
}

const at = (e: HistoryEvent) => Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;

/** The spans of one history, in ms; a phase the history lacks (e.g. no second workflow task) is left out. */
function spans(events: HistoryEvent[], marks?: TaskMarks): Record<string, number> {
  const out: Record<string, number> = {};
  const started = events.find((e) => e.workflowExecutionStartedEventAttributes);
  const closed = events.find((e) => e.workflowExecutionCompletedEventAttributes || e.workflowExecutionFailedEventAttributes);
  const wtScheduled = events.filter((e) => e.workflowTaskScheduledEventAttributes);
  const wtStarted = events.filter((e) => e.workflowTaskStartedEventAttributes);
  const wtCompleted = events.filter((e) => e.workflowTaskCompletedEventAttributes);
  if (marks && started) out['submit → workflow started'] = at(started) - marks.sentAt;
  if (marks?.acceptedAt !== undefined) out['submit → 202 received'] = marks.acceptedAt - marks.sentAt;
  wtScheduled.forEach((s, i) => {
    const st = wtStarted[i];
    const done = wtCompleted[i];
    if (!st) return;
    out[`workflow task ${i + 1}: queued (scheduled → started)`] = at(st) - at(s);
    if (done) out[`workflow task ${i + 1}: run (started → completed)`] = at(done) - at(st);
  });
  for (const e of events) {
    const scheduledId = e.activityTaskStartedEventAttributes?.scheduledEventId;
    if (scheduledId === undefined || scheduledId === null) continue;
    const sched = events.find((x) => String(x.eventId) === String(scheduledId));
    const name = sched?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
    const done = events.find((x) => String(x.activityTaskCompletedEventAttributes?.scheduledEventId ?? '') === String(scheduledId));
    if (sched) out[`activity ${name}: queued`] = at(e) - at(sched);
    if (done) out[`activity ${name}: run`] = at(done) - at(e);
  }
  if (started && closed) out['workflow started → closed'] = at(closed) - at(started);
  if (marks?.doneAt !== undefined && closed) out['workflow closed → terminal event at client'] = marks.doneAt - at(closed);
  if (marks?.doneAt !== undefined) out['submit → terminal event (total)'] = marks.doneAt - marks.sentAt;
  return out;
}

/** Percentile lines for the phases of up to `sample` of the given tasks (spread evenly over them). */
export async function taskPhases(client: Client, title: string, tasks: TaskMarks[], sample = 60): Promise<string[]> {
  const step = Math.max(1, Math.floor(tasks.length / sample));
  const picked = tasks.filter((_, i) => i % step === 0).slice(0, sample);
  const byPhase = new Map<string, number[]>();
  for (const t of picked) {
    const history = await client.workflow.getHandle(t.workflowId).fetchHistory();
    for (const [phase, ms] of Object.entries(spans(history.events ?? [], t))) {
      if (!byPhase.has(phase)) byPhase.set(phase, []);
      byPhase.get(phase)!.push(ms);
    }
  }
  const lines = [`${title} — ${picked.length} tasks' histories`, `  ${'phase'.padEnd(56)}${'p50 ms'.padStart(9)}${'p95 ms'.padStart(9)}${'n'.padStart(5)}`];
  for (const [phase, values] of byPhase) {
    const sorted = [...values].sort((a, b) => a - b);
    lines.push(`  ${phase.padEnd(56)}${fmt(percentile(sorted, 50)).padStart(9)}${fmt(percentile(sorted, 95)).padStart(9)}${String(sorted.length).padStart(5)}`);
  }
  return lines;
}

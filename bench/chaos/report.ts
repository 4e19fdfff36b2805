// The chaos run's table: what was injected, what held, what was lost.

import type { ChaosReport } from './harness.ts';
import { crashLine } from './processes.ts';

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `  ${cells.map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i]!))).join('  ')}`.trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);

export function formatReport(r: ChaosReport): string {
  const out: string[] = [];
  const o = r.options;
  out.push(
    `chaos run: ${o.tasks} tasks at ${o.rate}/s; worker SIGKILL every ${seconds(o.workerKillEveryMs[0])}-${seconds(o.workerKillEveryMs[1])} s` +
      `${o.maxWorkerKills !== undefined ? ` (at most ${o.maxWorkerKills})` : ''}; services down ${seconds(o.serviceDownMs)} s when restarted`,
  );
  const d = r.durations;
  out.push(`setup ${seconds(d.setupMs)} s, submissions ${seconds(d.submitMs)} s, drain ${seconds(d.drainMs)} s, checks ${seconds(d.verifyMs)} s, total ${seconds(d.totalMs)} s`);
  out.push('');
  out.push('Injected faults');
  const kills = r.faults.filter((f) => f.kind === 'worker SIGKILL');
  out.push(
    table(
      ['#', 'fault', 'at (s)', 'down (s)', 'note'],
      r.faults.map((f, i) => [String(i + 1), f.kind, seconds(f.atMs), seconds(f.downMs), f.note ?? '']),
    ),
  );
  if (kills.length > 0) {
    const downs = kills.map((k) => k.downMs).sort((a, b) => a - b);
    out.push(`  worker: ${kills.length} SIGKILLs, down ${seconds(downs[0]!)}-${seconds(downs.at(-1)!)} s (median ${seconds(downs[Math.floor(downs.length / 2)]!)} s) until it polled again`);
  }
  if (r.unplannedExits.length > 0) {
    out.push('');
    out.push('Processes that exited without being killed (restarted by the run)');
    out.push(
      table(
        ['role', 'at (s)', 'exit', 'last line'],
        r.unplannedExits.map((e) => [e.role, seconds(e.atMs), `code ${e.code} signal ${e.signal}`, crashLine(e)]),
      ),
    );
  }
  const failedStarts = Object.entries(r.failedStarts).filter(([, n]) => n > 0);
  if (failedStarts.length > 0) out.push(`  starts that failed and were tried again: ${failedStarts.map(([role, n]) => `${role} ${n}`).join(', ')}`);
  out.push('');
  out.push(`Task statuses: ${Object.entries(r.statusCounts).map(([s, n]) => `${s} ${n}`).join(', ') || 'none'}`);
  out.push('');
  out.push('Checks');
  out.push(
    table(
      ['check', 'verdict', 'detail'],
      r.checks.map((c) => [c.name, c.informational ? 'info' : c.held ? 'held' : 'VIOLATED', c.detail]),
    ),
  );
  for (const c of r.checks) {
    if (c.examples.length === 0 || (c.held && !c.informational)) continue;
    out.push(`  ${c.name}:`);
    for (const e of c.examples) out.push(`    - ${e}`);
  }
  out.push('');
  if (r.lost.length === 0) out.push('Lost: nothing');
  else {
    out.push(`Lost: ${r.lost.length} task(s)`);
    const byWhy = new Map<string, number>();
    for (const l of r.lost) byWhy.set(`${l.kind}: ${l.why}`, (byWhy.get(`${l.kind}: ${l.why}`) ?? 0) + 1);
    for (const [why, n] of [...byWhy].sort((a, b) => b[1] - a[1])) out.push(`  ${n} × ${why}`);
    for (const l of r.lost.slice(0, 10)) out.push(`    #${l.index} ${l.kind} ${l.id ?? '(no id)'}: ${l.trail ?? ''}`);
  }
  out.push('');
  out.push(r.ok ? 'RESULT: everything held' : 'RESULT: FAILED (a check was violated or a task was lost)');
  return out.join('\n');
}

// CPU time spent during a phase, per process and for the whole machine, from /proc: enough to tell whether a phase
// was bound by CPU (the machine near 100 % busy) and which process paid for each task.

import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface CpuSnapshot {
  at: number;
  /** Machine-wide busy and total ticks, all cores (/proc/stat). */
  busy: number;
  total: number;
  /** utime + stime ticks per label. */
  byLabel: Map<string, number>;
}

function procTicks(pid: number): { comm: string; ticks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command sits in parentheses and may hold spaces; the fields after it are space-separated.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    return { comm, ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/** `named` labels given pids; every other process is grouped by its command (temporal, postgres, redis-server, …). */
export function cpuSnapshot(named: Record<string, number>): CpuSnapshot {
  const [cpuLine] = readFileSync('/proc/stat', 'utf8').split('\n');
  const n = cpuLine!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (n[3] ?? 0) + (n[4] ?? 0);
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  const byPid = new Map(Object.entries(named).map(([label, pid]) => [pid, label]));
  const byLabel = new Map<string, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const t = procTicks(pid);
    if (!t) continue;
    const label = byPid.get(pid) ?? t.comm.replace(/:.*$/, '');
    byLabel.set(label, (byLabel.get(label) ?? 0) + t.ticks);
  }
  return { at: performance.now(), busy: total - idle, total, byLabel };
}

/** Accumulates the CPU spent between pairs of snapshots (several rounds of one side). */
export class CpuTally {
  wallMs = 0;
  busy = 0;
  total = 0;
  readonly byLabel = new Map<string, number>();

  add(before: CpuSnapshot, after: CpuSnapshot): void {
    this.wallMs += after.at - before.at;
    this.busy += after.busy - before.busy;
    this.total += after.total - before.total;
    for (const [label, ticks] of after.byLabel) {
      const spent = ticks - (before.byLabel.get(label) ?? ticks);
      if (spent > 0) this.byLabel.set(label, (this.byLabel.get(label) ?? 0) + spent);
    }
  }

  /** Lines: machine busy share, then CPU ms per task for the processes that spent at least 1 % of it. */
  lines(title: string, tasks: number): string[] {
    const busyShare = this.total > 0 ? (100 * this.busy) / this.total : Number.NaN;
    const spentMs = [...this.byLabel].map(([label, ticks]) => [label, (ticks * 1000) / TICKS_PER_SECOND] as const).sort((a, b) => b[1] - a[1]);
    const all = spentMs.reduce((a, [, ms]) => a + ms, 0);
    return [
      `${title}: ${(this.wallMs / 1000).toFixed(1)} s wall, machine ${busyShare.toFixed(0)} % busy (${cpus().length} cores); CPU ms per task:`,
      '  ' +
        spentMs
          .filter(([, ms]) => ms >= all / 100)
          .map(([label, ms]) => `${label} ${(ms / tasks).toFixed(1)}`)
          .join(', ') +
        `; all ${(all / tasks).toFixed(1)}`,
    ];
  }
}

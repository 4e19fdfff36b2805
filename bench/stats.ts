// Small helpers for the bench: percentiles, a closed-loop load driver, and /proc memory readings.

import { readFileSync, writeFileSync } from 'node:fs';

export interface PhaseResult {
  latenciesMs: number[];
  wallMs: number;
  failures: string[];
}

export interface Summary {
  n: number;
  tasksPerSec: number;
  p50: number;
  p95: number;
  p99: number;
}

/** Nearest-rank percentile of an already sorted array. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarize(r: PhaseResult): Summary {
  const sorted = [...r.latenciesMs].sort((a, b) => a - b);
  return {
    n: sorted.length,
    tasksPerSec: sorted.length / (r.wallMs / 1000),
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
  };
}

/**
 * Runs `n` jobs with at most `c` in flight (closed loop: a new job starts as soon as one finishes).
 * Each job returns its own submit-to-done latency in ms or throws; the wall time spans first start to last finish.
 */
export async function runClosedLoop(n: number, c: number, job: (i: number) => Promise<number>): Promise<PhaseResult> {
  const latenciesMs: number[] = [];
  const failures: string[] = [];
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      try {
        latenciesMs.push(await job(i));
      } catch (err) {
        failures.push(`#${i}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, c) }, lane));
  return { latenciesMs, wallMs: performance.now() - started, failures };
}

/** A field of /proc/<pid>/status in kB (VmHWM = peak resident set, VmRSS = current), or undefined if unreadable. */
export function procStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The program a pid runs (argv[0] of /proc/<pid>/cmdline). */
export function procArgv0(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  } catch {
    return undefined;
  }
}

/** Resets the kernel's peak-RSS counter (VmHWM) of a process we own; false where the kernel refuses. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

// `npm run chaos`: the system as separate processes on private Postgres, Redis and Temporal, a steady mix of tasks,
// and faults while it runs — the worker SIGKILLed every few seconds, the API killed once, the Temporal dev server,
// Postgres and Redis each restarted once. Then every task must end as expected, once, with a contiguous event log.
//
//   npm run chaos -- --tasks 500 --rate 2 --drain 240 --report report.json
//
// Exits 1 when a check is violated or a task is lost, 2 when the run itself could not be carried out.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_OPTIONS, runChaos, type ChaosOptions } from './chaos/harness.ts';
import { formatReport } from './chaos/report.ts';

function number(name: string, raw: string | undefined, dflt: number, min: number): number {
  if (raw === undefined) return dflt;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min) throw new Error(`--${name} must be a number ≥ ${min}, got "${raw}"`);
  return v;
}

function options(): { run: ChaosOptions; reportFile?: string } {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      tasks: { type: 'string' },
      rate: { type: 'string' },
      'kill-min': { type: 'string' },
      'kill-max': { type: 'string' },
      'max-kills': { type: 'string' },
      down: { type: 'string' },
      drain: { type: 'string' },
      report: { type: 'string' },
    },
  });
  const killMin = number('kill-min', values['kill-min'], DEFAULT_OPTIONS.workerKillEveryMs[0] / 1000, 0.5) * 1000;
  const killMax = number('kill-max', values['kill-max'], DEFAULT_OPTIONS.workerKillEveryMs[1] / 1000, killMin / 1000) * 1000;
  return {
    run: {
      tasks: Math.floor(number('tasks', values.tasks, DEFAULT_OPTIONS.tasks, 1)),
      rate: number('rate', values.rate, DEFAULT_OPTIONS.rate, 0.1),
      workerKillEveryMs: [killMin, killMax],
      ...(values['max-kills'] !== undefined ? { maxWorkerKills: Math.floor(number('max-kills', values['max-kills'], 0, 0)) } : {}),
      serviceDownMs: number('down', values.down, DEFAULT_OPTIONS.serviceDownMs / 1000, 0) * 1000,
      drainTimeoutMs: number('drain', values.drain, DEFAULT_OPTIONS.drainTimeoutMs / 1000, 1) * 1000,
      log: (m) => process.stderr.write(`chaos ${new Date().toISOString().slice(11, 19)} ${m}\n`),
    },
    reportFile: values.report,
  };
}

async function main(): Promise<number> {
  const opt = options();
  const report = await runChaos(opt.run);
  process.stdout.write(`${formatReport(report)}\n`);
  if (opt.reportFile) writeFileSync(opt.reportFile, `${JSON.stringify(report, null, 2)}\n`);
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos run failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);

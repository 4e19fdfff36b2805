import cliProgress from 'cli-progress';
import type { TaskEvent } from './follow-task.ts';
import { paintStatus, type Output } from './output.ts';

// What a person sees while a task runs: one line per status change, and the tool's progress as a live bar on a
// terminal (plain lines otherwise, so logs and CI output stay readable).

export interface ProgressView {
  show(event: TaskEvent): void;
  reconnecting(attempt: number, reason: string): void;
  close(): void;
}

export function describeStatus(data: Record<string, any>): string {
  const where = data.target ? ` on ${data.target.server} (${data.target.kind})` : '';
  return `${data.status}${where}`;
}

export function progressLine(data: Record<string, any>): string {
  const count = typeof data.total === 'number' ? `${data.progress}/${data.total}` : `${data.progress ?? ''}`;
  const what = [data.phase, data.message].filter((x) => typeof x === 'string' && x).join(': ');
  return `progress ${count}${what ? ` ${what}` : ''}`.trimEnd();
}

export function createProgressView(out: Output, taskId: string): ProgressView {
  const c = out.colors;
  let bars: cliProgress.MultiBar | undefined;
  let bar: cliProgress.SingleBar | undefined;
  let lastStatus = '';
  let introduced = false;

  const line = (text: string) => {
    if (out.json) return;
    if (bars) bars.log(`${text}\n`);
    else out.stderr.write(`${text}\n`);
  };

  const showStatus = (data: Record<string, any>) => {
    if (data.status === lastStatus) return;
    lastStatus = data.status;
    const text = describeStatus(data).replace(String(data.status), paintStatus(c, String(data.status)));
    line(`${c.dim('·')} ${text}`);
    if (data.status === 'awaiting_consent') {
      line(`  the task waits for your consent to run on platform infrastructure:`);
      line(`  orchestrator tasks consent ${taskId} --grant   (or --deny)`);
    }
  };

  const showProgress = (data: Record<string, any>) => {
    if (!out.interactive || typeof data.progress !== 'number') return line(`  ${progressLine(data)}`);
    const total = typeof data.total === 'number' && data.total > 0 ? data.total : 0;
    const message = [data.phase, data.message].filter((x) => typeof x === 'string' && x).join(': ');
    if (!bars) {
      bars = new cliProgress.MultiBar(
        {
          stream: out.stderr as unknown as NodeJS.WritableStream,
          format: total > 0 ? '  {bar} {value}/{total} {message}' : '  {value} {message}',
          hideCursor: false,
          clearOnComplete: false,
          noTTYOutput: false,
        },
        cliProgress.Presets.shades_classic,
      );
      bar = bars.create(total, 0, { message });
    }
    if (total > 0) bar!.setTotal(total);
    bar!.update(data.progress, { message });
  };

  return {
    show(event) {
      // The snapshot only introduces the task: the log that follows it replays every status from the start.
      if (event.type === 'snapshot') {
        if (!introduced) line(`task ${c.bold(taskId)} ${event.data.tool ? `(${event.data.tool}) ` : ''}`.trimEnd());
        introduced = true;
      } else if (event.type === 'status') showStatus(event.data);
      else if (event.type === 'progress') showProgress(event.data);
      else if (event.type === 'error') line(`  ${c.red(`${event.data.code ?? 'Error'}`)}: ${event.data.message ?? ''}`);
    },
    reconnecting(attempt, reason) {
      line(c.yellow(`  connection lost (${reason}); reconnecting (attempt ${attempt})`));
    },
    close() {
      bars?.stop();
      bars = undefined;
    },
  };
}

import { writeFile } from 'node:fs/promises';
import type { CliContext } from './context.ts';
import { exitCodeForStatus } from './exit-codes.ts';
import { followTask } from './follow-task.ts';
import { paintStatus } from './output.ts';
import { createProgressView } from './progress-view.ts';

// Following a task to its end and telling the person (or the script) how it went.

export interface TaskView {
  id: string;
  projectId: string;
  tool: string;
  status: string;
  target?: { kind?: string; server?: string };
  attempts?: Array<{ kind: string; server: string; outcome: string; reason?: string; at: string }>;
  error?: { code?: string; message?: string };
  result?: unknown;
  retryOf?: string;
  createdAt: string;
  finishedAt?: string;
}

export const taskPath = (id: string, rest = '') => `/v1/tasks/${encodeURIComponent(id)}${rest}`;

/** The text parts of an MCP tool result, or null when it is not one. */
export function resultText(body: string, mediaType: string): string | null {
  if (!mediaType.includes('json')) return null;
  try {
    const parsed = JSON.parse(body) as { content?: Array<{ type?: string; text?: string }> };
    if (!Array.isArray(parsed.content)) return null;
    const texts = parsed.content.filter((c) => c.type === 'text' && typeof c.text === 'string').map((c) => c.text!);
    return texts.length === parsed.content.length ? texts.join('\n') : null;
  } catch {
    return null;
  }
}

/** Prints a finished task's result: its text on a terminal or a pipe, the stored bytes with --raw or --out. */
export async function printResult(ctx: CliContext, id: string, opts: { out?: string; raw?: boolean } = {}): Promise<void> {
  const res = await ctx.client().raw('GET', taskPath(id, '/result'));
  const bytes = Buffer.from(await res.arrayBuffer());
  if (opts.out) {
    await writeFile(opts.out, bytes);
    ctx.out.note(`wrote ${bytes.length} bytes to ${opts.out}`);
    return;
  }
  const text = opts.raw ? null : resultText(bytes.toString('utf8'), res.headers.get('content-type') ?? '');
  ctx.io.stdout.write(text !== null ? `${text}\n` : bytes.toString('utf8'));
}

/** Follows the task until it ends or waits for consent; prints the outcome; sets the exit code from its status. */
export async function followAndReport(ctx: CliContext, id: string, opts: { out?: string } = {}): Promise<void> {
  const view = createProgressView(ctx.out, id);
  let status: string;
  try {
    status = await followTask(ctx.client(), id, { onEvent: (e) => view.show(e), onReconnect: (n, why) => view.reconnecting(n, why) });
  } finally {
    view.close();
  }
  ctx.exitCode = exitCodeForStatus(status);
  if (ctx.out.json) {
    const task = await ctx.client().json<TaskView>('GET', taskPath(id));
    if (status === 'succeeded' && opts.out) await printResult(ctx, id, opts);
    return ctx.out.printJson(task);
  }
  if (status === 'succeeded') return printResult(ctx, id, opts);
  if (status === 'failed') {
    const task = await ctx.client().json<TaskView>('GET', taskPath(id));
    ctx.out.note(ctx.out.colors.red(`failed: ${task.error?.code ?? 'Error'}: ${task.error?.message ?? 'no detail'}`));
  }
}

export function describeTask(ctx: CliContext, task: TaskView): void {
  const c = ctx.out.colors;
  ctx.out.print(`${task.id}  ${task.tool}  ${paintStatus(c, task.status)}`);
  ctx.out.print(`  project   ${task.projectId}`);
  if (task.target?.server) ctx.out.print(`  ran on    ${task.target.server} (${task.target.kind})`);
  for (const a of task.attempts ?? []) ctx.out.print(`  attempt   ${a.server} (${a.kind}) ${a.outcome}${a.reason ? `: ${a.reason}` : ''}`);
  if (task.error) ctx.out.print(`  error     ${task.error.code}: ${task.error.message}`);
  if (task.retryOf) ctx.out.print(`  reruns    ${task.retryOf}`);
  ctx.out.print(`  created   ${task.createdAt}${task.finishedAt ? `, finished ${task.finishedAt}` : ''}`);
}

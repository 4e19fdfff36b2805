import type { Command } from 'commander';
import { resolveProject, type CliContext, type Run } from '../context.ts';
import { exitCodeForStatus, UsageError } from '../exit-codes.ts';
import { buildToolArguments } from '../task-arguments.ts';
import { describeTask, followAndReport, printResult, taskPath, type TaskView } from '../task-report.ts';

interface SubmitOptions {
  project?: string;
  args?: string;
  arg?: string[];
  heavy?: boolean;
  consent?: boolean;
  idempotencyKey?: string;
  out?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function withSubmitOptions(command: Command): Command {
  return command
    .option('--project <project>', 'project id or name (default: your default project)')
    .option('--args <json>', "the tool's arguments: a JSON object, @file.json, or - to read stdin")
    .option('--arg <key=value>', 'one argument: key=value (a string) or key:=json (number, boolean, object); repeatable', collect)
    .option('--heavy', "prefer the project's own Space")
    .option('--consent', 'consent up front to fall back to platform infrastructure')
    .option('--idempotency-key <key>', 'submitting again with the same key returns the same task')
    .option('--out <file>', 'write the result to a file instead of stdout');
}

async function submit(ctx: CliContext, tool: string, opts: SubmitOptions): Promise<TaskView> {
  const args = await buildToolArguments(opts);
  const projectId = await resolveProject(ctx, opts.project);
  const body = { projectId, tool, arguments: args, ...(opts.heavy ? { heavy: true } : {}), ...(opts.consent ? { consentToOracle: true } : {}) };
  return ctx.client().json<TaskView>('POST', '/v1/tasks', body, opts.idempotencyKey ? { 'Idempotency-Key': opts.idempotencyKey } : undefined);
}

function printSubmitted(ctx: CliContext, task: TaskView): void {
  if (ctx.out.json) return ctx.out.printJson(task);
  ctx.out.print(task.id);
}

export function registerRunCommand(program: Command, run: Run): void {
  withSubmitOptions(
    program
      .command('run')
      .description("run a tool as a task and follow it to the end: progress, status changes, then the result")
      .argument('<tool>', 'the tool to call'),
  )
    .option('--detach', 'print the task id and return at once')
    .addHelpText(
      'after',
      '\nExit codes: 0 succeeded, 1 failed, 2 usage, 3 awaiting consent, 4 canceled.\n\nExamples:\n  $ orchestrator run echo --arg text=hello\n  $ orchestrator run slow --arg ms:=3000 --arg steps:=5\n  $ orchestrator run generate --args @input.json --heavy --out result.json',
    )
    .action(
      run(async (ctx, tool: string, opts: SubmitOptions & { detach?: boolean }) => {
        const task = await submit(ctx, tool, opts);
        if (opts.detach) return printSubmitted(ctx, task);
        await followAndReport(ctx, task.id, opts);
      }),
    );
}

export function registerTaskCommands(program: Command, run: Run): void {
  const tasks = program.command('tasks').description('submit, follow and manage tasks');

  withSubmitOptions(tasks.command('submit').description('submit a task (prints its id; --wait follows it like run)'))
    .requiredOption('--tool <tool>', 'the tool to call')
    .option('--wait', 'follow the task to its end and print the result')
    .addHelpText('after', `\nExample:\n  $ orchestrator tasks submit --project demo --tool echo --args '{"text":"hi"}' --wait`)
    .action(
      run(async (ctx, opts: SubmitOptions & { tool: string; wait?: boolean }) => {
        const task = await submit(ctx, opts.tool, opts);
        if (!opts.wait) return printSubmitted(ctx, task);
        await followAndReport(ctx, task.id, opts);
      }),
    );

  tasks
    .command('list')
    .description('tasks, newest first')
    .option('--project <project>', 'only this project (id or name)')
    .option('--status <status>', 'queued | routing | running | awaiting_consent | succeeded | failed | canceled')
    .option('--limit <n>', 'at most n tasks (1-200)', '20')
    .option('--cursor <cursor>', 'the next page, as printed after the last one')
    .addHelpText('after', '\nExample:\n  $ orchestrator tasks list --status failed --json')
    .action(
      run(async (ctx, opts: { project?: string; status?: string; limit: string; cursor?: string }) => {
        const query = new URLSearchParams({ limit: opts.limit });
        if (opts.project) query.set('projectId', await resolveProject(ctx, opts.project));
        if (opts.status) query.set('status', opts.status);
        if (opts.cursor) query.set('cursor', opts.cursor);
        const page = await ctx.client().json<{ items: TaskView[]; nextCursor?: string }>('GET', `/v1/tasks?${query}`);
        if (ctx.out.json) return ctx.out.printJson(page);
        ctx.out.table(page.items, ['id', 'tool', 'status', 'createdAt']);
        if (page.nextCursor) ctx.out.note(`more: orchestrator tasks list --cursor ${page.nextCursor}`);
      }),
    );

  tasks
    .command('show')
    .description('one task: status, where it ran, its attempts')
    .argument('<id>', 'task id')
    .action(
      run(async (ctx, id: string) => {
        const task = await ctx.client().json<TaskView>('GET', taskPath(id));
        if (ctx.out.json) ctx.out.printJson(task);
        else describeTask(ctx, task);
      }),
    );

  tasks
    .command('watch')
    .description('follow a task until it ends or waits for consent (exit code as for run)')
    .argument('<id>', 'task id')
    .option('--out <file>', 'write the result to a file instead of stdout')
    .addHelpText('after', '\nExample:\n  $ orchestrator tasks watch 5c1a… || echo "exit $?"')
    .action(run(async (ctx, id: string, opts: { out?: string }) => followAndReport(ctx, id, opts)));

  tasks
    .command('result')
    .description("a succeeded task's result (text parts of a tool result; --raw for the stored JSON)")
    .argument('<id>', 'task id')
    .option('--out <file>', 'write the stored bytes to a file')
    .option('--raw', 'print the stored bytes as they are')
    .action(run(async (ctx, id: string, opts: { out?: string; raw?: boolean }) => printResult(ctx, id, { ...opts, raw: opts.raw || ctx.out.json })));

  tasks
    .command('consent')
    .description('decide for a task awaiting consent')
    .argument('<id>', 'task id')
    .option('--grant', 'allow the task to run on platform infrastructure')
    .option('--deny', 'refuse')
    .addHelpText('after', '\nExample:\n  $ orchestrator tasks consent 5c1a… --grant')
    .action(
      run(async (ctx, id: string, opts: { grant?: boolean; deny?: boolean }) => {
        if (Boolean(opts.grant) === Boolean(opts.deny)) throw new UsageError('give exactly one of --grant and --deny');
        const state = await ctx.client().json<Record<string, unknown>>('POST', taskPath(id, '/consent'), { grant: Boolean(opts.grant) });
        if (ctx.out.json) return ctx.out.printJson(state);
        ctx.out.note(`consent ${opts.grant ? 'granted' : 'denied'}; the task is ${state.status}`);
      }),
    );

  tasks
    .command('cancel')
    .description('cancel a task (a canceled status event follows)')
    .argument('<id>', 'task id')
    .action(
      run(async (ctx, id: string) => {
        const task = await ctx.client().json<TaskView>('POST', taskPath(id, '/cancel'));
        if (ctx.out.json) return ctx.out.printJson(task);
        ctx.out.note(`cancel requested for ${task.id}`);
      }),
    );

  tasks
    .command('retry')
    .description('rerun a failed or canceled task as a new task')
    .argument('<id>', 'task id')
    .option('--wait', 'follow the new task to its end')
    .action(
      run(async (ctx, id: string, opts: { wait?: boolean }) => {
        const task = await ctx.client().json<TaskView>('POST', taskPath(id, '/retry'));
        if (opts.wait) return followAndReport(ctx, task.id);
        printSubmitted(ctx, task);
        ctx.exitCode = exitCodeForStatus('succeeded');
      }),
    );
}

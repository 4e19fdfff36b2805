import type { Command } from 'commander';
import { resolveProject, type Run } from '../context.ts';

interface Project {
  id: string;
  name: string;
  role: string;
  description: string | null;
}

export function registerProjectCommands(program: Command, run: Run): void {
  const projects = program.command('projects').description('your projects');

  projects
    .command('list')
    .description('the projects you are a member of')
    .addHelpText('after', '\nExample:\n  $ orchestrator projects list --json')
    .action(
      run(async (ctx) => {
        const { items } = await ctx.client().json<{ items: Project[] }>('GET', '/v1/projects');
        if (ctx.out.json) return ctx.out.printJson(items);
        const current = ctx.connection.project;
        ctx.out.table(
          items.map((p) => ({ ...p, default: p.id === current || p.name === current ? '*' : '' })),
          ['id', 'name', 'role', 'default'],
        );
      }),
    );

  projects
    .command('create')
    .description('create a project; it becomes your default unless you have one already (or --use)')
    .argument('<name>', 'project name')
    .option('--description <text>', 'what the project is for')
    .option('--use', 'make it the default project even if one is set')
    .addHelpText('after', '\nExample:\n  $ orchestrator projects create demo')
    .action(
      run(async (ctx, name: string, opts: { description?: string; use?: boolean }) => {
        const project = await ctx.client().json<Project>('POST', '/v1/projects', { name, ...(opts.description !== undefined ? { description: opts.description } : {}) });
        const becomesDefault = opts.use || !ctx.stored.project;
        if (becomesDefault) await ctx.saveConfig({ ...ctx.stored, project: project.id });
        if (ctx.out.json) return ctx.out.printJson(project);
        ctx.out.print(project.id);
        ctx.out.note(`created project ${project.name}${becomesDefault ? ' (now your default project)' : ''}`);
      }),
    );

  projects
    .command('use')
    .description('set the default project for run, tasks and spaces')
    .argument('<project>', 'project id or name')
    .addHelpText('after', '\nExample:\n  $ orchestrator projects use demo')
    .action(
      run(async (ctx, given: string) => {
        const id = await resolveProject(ctx, given);
        // The id must name a project you can see: a typo should fail here, not at the next run.
        const project = await ctx.client().json<Project>('GET', `/v1/projects/${encodeURIComponent(id)}`);
        await ctx.saveConfig({ ...ctx.stored, project: project.id });
        if (ctx.out.json) return ctx.out.printJson(project);
        ctx.out.print(`default project: ${project.name} (${project.id})`);
      }),
    );
}

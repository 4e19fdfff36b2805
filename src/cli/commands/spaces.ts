import type { Command } from 'commander';
import { resolveProject, type Run } from '../context.ts';
import { UsageError } from '../exit-codes.ts';
import { readTextSource } from '../task-arguments.ts';

const spacesPath = (projectId: string, mcp?: string) =>
  `/v1/projects/${encodeURIComponent(projectId)}/spaces${mcp ? `/${encodeURIComponent(mcp)}` : ''}`;

export function registerSpaceCommands(program: Command, run: Run): void {
  const spaces = program.command('spaces').description("the project's own Hugging Face Spaces, one per server");

  spaces
    .command('list')
    .description("the project's Space bindings")
    .option('--project <project>', 'project id or name (default: your default project)')
    .action(
      run(async (ctx, opts: { project?: string }) => {
        const { items } = await ctx.client().json<{ items: Record<string, unknown>[] }>('GET', spacesPath(await resolveProject(ctx, opts.project)));
        if (ctx.out.json) return ctx.out.printJson(items);
        ctx.out.table(items, ['serverName', 'spaceId', 'url', 'hasToken']);
      }),
    );

  spaces
    .command('bind')
    .description("run a server's heavy tools on the project's own Space")
    .argument('<server>', 'server id or name')
    .option('--space <owner/name>', 'the Space on the Hugging Face Hub')
    .option('--url <url>', "the Space's MCP endpoint, when it is not on the Hub")
    .option('--hf-token-stdin', 'read a Hugging Face token for the Space from stdin (stored encrypted, never shown)')
    .option('--project <project>', 'project id or name (default: your default project)')
    .addHelpText('after', '\nExample:\n  $ orchestrator spaces bind echo-server --space alice/echo --hf-token-stdin < hf-token.txt')
    .action(
      run(async (ctx, server: string, opts: { space?: string; url?: string; hfTokenStdin?: boolean; project?: string }) => {
        if (!opts.space && !opts.url) throw new UsageError('give --space owner/name or --url URL');
        const token = opts.hfTokenStdin ? (await readTextSource({ stdin: true })).trim() : undefined;
        const body = { ...(opts.space ? { spaceId: opts.space } : {}), ...(opts.url ? { url: opts.url } : {}), ...(token ? { token } : {}) };
        const binding = await ctx.client().json<Record<string, any>>('PUT', spacesPath(await resolveProject(ctx, opts.project), server), body);
        if (ctx.out.json) return ctx.out.printJson(binding);
        ctx.out.print(`${binding.serverName} → ${binding.spaceId ?? binding.url}${binding.stage ? ` (${binding.stage})` : ''}`);
        if (Array.isArray(binding.missingTools) && binding.missingTools.length > 0) ctx.out.note(`the Space lacks: ${binding.missingTools.join(', ')}`);
      }),
    );

  spaces
    .command('unbind')
    .description("stop using the project's Space for a server")
    .argument('<server>', 'server id or name')
    .option('--project <project>', 'project id or name (default: your default project)')
    .action(
      run(async (ctx, server: string, opts: { project?: string }) => {
        await ctx.client().json('DELETE', spacesPath(await resolveProject(ctx, opts.project), server));
        if (ctx.out.json) return ctx.out.printJson({ unbound: server });
        ctx.out.note(`unbound ${server}`);
      }),
    );
}

import type { Command } from 'commander';
import type { CliContext, Run } from '../context.ts';

interface McpTool {
  name: string;
  description?: string;
  heavy?: boolean;
}
interface McpServer {
  id: string;
  name: string;
  oracleUrl: string | null;
  transport: string;
  enabled: boolean;
  visibility?: string;
  actsAs?: string | null;
  canRunOnUserSpace: boolean;
  tools?: McpTool[];
}

function showServer(ctx: CliContext, server: McpServer): void {
  if (ctx.out.json) return ctx.out.printJson(server);
  ctx.out.print(`${server.name}  ${server.id}`);
  ctx.out.print(`  url        ${server.oracleUrl ?? '-'} (${server.transport})`);
  ctx.out.print(`  enabled    ${server.enabled}${server.visibility ? `, ${server.visibility}` : ''}${server.canRunOnUserSpace ? ', can run on a Space' : ''}`);
  if (server.actsAs) ctx.out.print(`  acts as    the submitting user on ${server.actsAs}`);
  const tools = server.tools ?? [];
  ctx.out.print(`  tools (${tools.length})`);
  for (const t of tools) ctx.out.print(`    ${t.name}${t.heavy ? ' [heavy]' : ''}${t.description ? `  ${t.description}` : ''}`);
}

const serverPath = (idOrName: string) => `/v1/mcps/${encodeURIComponent(idOrName)}`;

export function registerMcpCommands(program: Command, run: Run): void {
  const mcps = program.command('mcps').description('the MCP server registry');

  mcps
    .command('add')
    .description('register an MCP server; its tools are listed with tools/list')
    .argument('<name>', 'a lowercase slug, e.g. echo-server')
    .argument('<url>', 'the server\'s MCP endpoint (Streamable HTTP or HTTP+SSE)')
    .option('--transport <transport>', 'auto | streamable-http | sse', 'auto')
    .option('--description <text>', 'what the server offers')
    .option('--heavy-tool <tool...>', 'tools that should prefer the project\'s own Space')
    .option('--space', 'the server can also run on a project\'s Hugging Face Space')
    .option('--fallback', 'heavy work may fall back to this URL (with the user\'s consent)')
    .option('--acts-as <provider>', 'each call carries the submitting user\'s token from this provider (github); needs https')
    .addHelpText('after', '\nExample:\n  $ orchestrator mcps add echo-server http://127.0.0.1:3001/mcp')
    .action(
      run(async (ctx, name: string, url: string, opts: { transport: string; description?: string; heavyTool?: string[]; space?: boolean; fallback?: boolean; actsAs?: string }) => {
        const server = await ctx.client().json<McpServer>('POST', '/v1/mcps', {
          name,
          oracleUrl: url,
          transport: opts.transport,
          canRunOnUserSpace: Boolean(opts.space),
          fallbackToOracle: Boolean(opts.fallback),
          ...(opts.description !== undefined ? { description: opts.description } : {}),
          ...(opts.heavyTool ? { heavyTools: opts.heavyTool } : {}),
          ...(opts.actsAs !== undefined ? { actsAs: opts.actsAs } : {}),
        });
        showServer(ctx, server);
      }),
    );

  mcps
    .command('list')
    .description('the servers you can use: yours and the public ones')
    .action(
      run(async (ctx) => {
        const { items } = await ctx.client().json<{ items: McpServer[] }>('GET', '/v1/mcps');
        if (ctx.out.json) return ctx.out.printJson(items);
        ctx.out.table(
          items.map((s) => ({ ...s, tools: (s.tools ?? []).map((t) => t.name).join(',') })),
          ['name', 'id', 'oracleUrl', 'enabled', 'tools'],
        );
      }),
    );

  mcps
    .command('show')
    .description('one server and its tools')
    .argument('<server>', 'server id or name')
    .addHelpText('after', '\nExample:\n  $ orchestrator mcps show echo-server')
    .action(run(async (ctx, idOrName: string) => showServer(ctx, await ctx.client().json<McpServer>('GET', serverPath(idOrName)))));

  mcps
    .command('refresh')
    .description('list the server\'s tools again (after it changed)')
    .argument('<server>', 'server id or name')
    .action(run(async (ctx, idOrName: string) => showServer(ctx, await ctx.client().json<McpServer>('POST', `${serverPath(idOrName)}/refresh`))));
}

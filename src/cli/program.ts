import { Command, CommanderError } from 'commander';
import { registerMcpCommands } from './commands/mcps.ts';
import { registerProjectCommands } from './commands/projects.ts';
import { registerSessionCommands } from './commands/session.ts';
import { registerSpaceCommands } from './commands/spaces.ts';
import { registerRunCommand, registerTaskCommands } from './commands/tasks.ts';
import { buildContext, type Run } from './context.ts';
import { CliError, EXIT } from './exit-codes.ts';
import type { CliIo } from './output.ts';

/** Commands that run the service itself (src/main.ts); everything else is a client of the REST API. */
export const SERVER_COMMANDS = new Set(['dev', 'api', 'worker', 'migrate', 'token', 'admin', 'keys', 'bundle', 'reset']);

const SERVER_HELP = `
Server commands (run the service from this checkout; see the README):
  dev                        Temporal dev server, migrations, API and worker on one machine (npm start)
  api | worker | migrate     one part of the service
  token --login NAME         print a bearer token for a local user
  reset [--yes]              start over: delete dev's embedded Postgres and Temporal state (asks first)
  admin grant|revoke LOGIN   platform admins; keys rotate; bundle [--out FILE]

Configuration: ${'~/.config/orchestrator/config.json'} (or ORCHESTRATOR_CONFIG), written 0600 by login.
ORCHESTRATOR_API, ORCHESTRATOR_TOKEN and ORCHESTRATOR_PROJECT override it.
Exit codes: 0 succeeded, 1 failed, 2 usage, 3 awaiting consent, 4 canceled.

Example, a first task:
  $ orchestrator login
  $ orchestrator projects create demo
  $ orchestrator mcps add echo-server http://127.0.0.1:3001/mcp
  $ orchestrator run echo --arg text=hello`;

export function buildProgram(io: CliIo, run: Run): Command {
  const program = new Command('orchestrator')
    .description('Run MCP tool calls as durable tasks: sign in, register servers, submit tasks and watch them finish.')
    .option('--json', 'machine-readable output on stdout (no colors, no progress)')
    .option('--no-color', 'plain text even on a terminal (NO_COLOR works too)')
    .option('--api <url>', 'the API to talk to (default: from login, ORCHESTRATOR_API, or http://127.0.0.1:8080)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .showSuggestionAfterError()
    .addHelpText('after', SERVER_HELP);
  registerSessionCommands(program, run);
  registerProjectCommands(program, run);
  registerMcpCommands(program, run);
  registerSpaceCommands(program, run);
  registerRunCommand(program, run);
  registerTaskCommands(program, run);
  return program;
}

/** Runs the client CLI and returns its exit code; never throws. */
export async function runCli(argv: string[], io: CliIo, opts: { fetch?: typeof fetch } = {}): Promise<number> {
  let exitCode: number = EXIT.succeeded;
  const run: Run =
    (action) =>
    async (...args) => {
      const command = args[args.length - 1] as Command;
      const ctx = await buildContext(io, command, opts.fetch);
      await action(ctx, ...args.slice(0, -1));
      exitCode = ctx.exitCode;
    };
  const program = buildProgram(io, run);
  try {
    if (argv.length === 0) {
      program.outputHelp({ error: true });
      return EXIT.usage;
    }
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version are answers, not failures; anything else commander refuses is a usage error.
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? EXIT.succeeded : EXIT.usage;
    }
    if (err instanceof CliError) {
      io.stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr.write(`error: ${(err as Error).message ?? String(err)}\n`);
    return EXIT.failed;
  }
}

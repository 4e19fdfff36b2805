import { runCli, SERVER_COMMANDS } from './cli/program.ts';

// The `orchestrator` entry point. Server commands (dev, api, worker, …) load the whole service; client commands
// (login, projects, run, tasks, …) load only the HTTP client, so they answer in a moment.

const argv = process.argv.slice(2);
if (argv[0] !== undefined && SERVER_COMMANDS.has(argv[0])) {
  await import('./main.ts');
} else {
  process.exitCode = await runCli(argv, { env: process.env, stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
}

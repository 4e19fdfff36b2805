#!/usr/bin/env node
// `orchestrator <command>`: the CLI, run from a checkout (TypeScript through tsx, no build step).
// npm links and installs this file as a symlink; Node loads a main module by its real path, so import.meta.url points
// into the checkout (or the installed package) and tsx and src/ are found next to it, wherever the link lives.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const tsx = import.meta.resolve('tsx');
const child = spawn(process.execPath, ['--import', tsx, entry, ...process.argv.slice(2)], { stdio: 'inherit' });

// Ctrl-C reaches the child from the terminal itself; a signal sent to this process alone is passed on.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (signal !== 'SIGINT' || !process.stdin.isTTY) child.kill(signal);
  });
}
child.on('exit', (code, signal) => {
  if (signal) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});

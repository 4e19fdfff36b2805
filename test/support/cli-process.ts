import { spawn } from 'node:child_process';
import path from 'node:path';
import { tsxLoaderUrl } from '../../src/cli/tsx-loader.ts';
import { PROJECT_ROOT } from '../../src/compose.ts';

export const CLI_ENTRY = path.join(PROJECT_ROOT, 'src', 'cli.ts');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real `orchestrator` CLI as a child process. `command` defaults to node + tsx + src/cli.ts; pass the
 * launcher (or a symlink to it) to run it as an installed bin would. `onStderr` sees stderr as it arrives.
 */
export function runCliProcess(
  args: string[],
  opts: { env: NodeJS.ProcessEnv; command?: string; cwd?: string; input?: string; onStderr?: (soFar: string) => void; timeoutMs?: number },
): Promise<CliRun> {
  const [cmd, cmdArgs] = opts.command ? [opts.command, args] : [process.execPath, ['--import', tsxLoaderUrl(), CLI_ENTRY, ...args]];
  const child = spawn(cmd, cmdArgs, { env: opts.env, cwd: opts.cwd ?? PROJECT_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    opts.onStderr?.(stderr);
  });
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

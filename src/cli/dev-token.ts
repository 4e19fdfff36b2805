import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CliError } from './exit-codes.ts';
import { tsxLoaderUrl } from './tsx-loader.ts';

// `orchestrator login` with no token, against an API on this machine: the same token `orchestrator token --login`
// prints, signed with the checkout's local key (data/jwt-secret, or JWT_SECRET) for a local user created if missing.

const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));

export function isLoopbackApi(api: string): boolean {
  const host = new URL(api).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\./.test(host);
}

export async function mintDevToken(login: string, env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(process.execPath, ['--import', tsxLoaderUrl(), MAIN, 'token', '--login', login], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => child.once('error', reject).once('close', resolve));
  const token = stdout.trim();
  if (code !== 0 || !token) {
    const why = stderr.trim().split('\n')[0] ?? '';
    throw new CliError(`could not make a local token (${why || `exit ${code}`}); pass one with --token`);
  }
  return token;
}

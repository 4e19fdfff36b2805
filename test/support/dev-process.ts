import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { tsxLoaderUrl } from '../../src/cli/tsx-loader.ts';
import { PROJECT_ROOT } from '../../src/compose.ts';
import { temporalCliDownload } from '../../src/config.ts';
import { freePort } from '../../src/lib/free-port.ts';
import { findOrBuildTemporalCli } from '../../src/temporal/cli-binary.ts';

// `npm start` (src/main.ts dev) as a new user runs it: nothing configured but a fresh data folder and free ports, so
// Postgres is embedded and Redis in process. Shared by the end-to-end test and the embedded-mode bench.

/** The environment of such a start, `more` added: this one's DATABASE_URL, REDIS_URL, secrets and result store removed. */
export async function nothingConfiguredEnv(dataDir: string, more: Record<string, string> = {}, log: (line: string) => void = () => undefined): Promise<{ env: NodeJS.ProcessEnv; port: number }> {
  const cli = await findOrBuildTemporalCli({ env: process.env, toolsDir: path.join(PROJECT_ROOT, '.tools'), log, download: temporalCliDownload(process.env, { byDefault: false }) });
  const [port, temporalPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  const { DATABASE_URL: _db, REDIS_URL: _redis, JWT_SECRET: _jwt, ENCRYPTION_KEY: _key, RESULT_STORE: _rs, ...rest } = process.env;
  const env = {
    ...rest,
    DATA_DIR: dataDir,
    PORT: String(port),
    TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
    TEMPORAL_UI_PORT: String(uiPort),
    TEMPORAL_CLI: cli,
    TEMPORAL_CLI_DOWNLOAD: 'off',
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'warn',
    ...more,
  };
  return { env, port };
}

export interface DevProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

/** Spawns `dev` with `env` and resolves once its banner is out; rejects with its output if it exits or stays silent. */
export async function startDevProcess(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<DevProcess> {
  const child = spawn(process.execPath, ['--import', tsxLoaderUrl(), path.join(PROJECT_ROOT, 'src', 'main.ts'), 'dev'], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + timeoutMs;
  while (!stdout.includes('orchestrator is running')) {
    if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}:\n${stderr}\n${stdout.slice(-4000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`npm start did not come up within ${timeoutMs / 1000} s:\n${stderr}\n${stdout.slice(-4000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

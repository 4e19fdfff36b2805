// The services a chaos run owns outright, so it may stop and restart them: a Postgres cluster, a redis-server and a
// Temporal dev server, each on a free 127.0.0.1 port with its data under the run's temp folder.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import net from 'node:net';
import { freePort } from '../../src/lib/free-port.ts';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server.ts';

export interface RestartableService {
  /**
   * Stops the service, keeps it down for `downMs` (running `whileDown` meanwhile), starts it again; resolves with how
   * long it was unreachable.
   */
  restart(downMs: number, whileDown?: () => Promise<void>): Promise<number>;
  stop(): Promise<void>;
  /** For an exit handler: ends the service at once, synchronously. */
  killNowSync(): void;
}

/** Runs a command to completion; rejects with its output when it fails. */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += String(c)));
    child.stderr.on('data', (c) => (out += String(c)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${out.slice(-2000)}`));
    });
  });
}

/** Resolves once something accepts TCP connections on the port. */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error(`no Postgres installation under ${root}`);
  return path.join(root, versions[0]!, 'bin');
}

/**
 * A private cluster: initdb and pg_ctl refuse to run as root, so they run as the `postgres` user on a folder it owns.
 * Trust authentication and a loopback-only listener, as the shared development server has.
 */
export async function startPostgres(dir: string): Promise<RestartableService & { url: string; port: number }> {
  const bin = postgresBinDir();
  const dataDir = path.join(dir, 'pgdata');
  const socketDir = path.join(dir, 'pgsock');
  await mkdir(dataDir, { recursive: true });
  await mkdir(socketDir, { recursive: true });
  const { uid, gid } = await postgresIds();
  await chown(dir, uid, gid);
  await chown(dataDir, uid, gid);
  await chown(socketDir, uid, gid);
  const asPostgres = (tool: string, args: string[]) => run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args], { cwd: '/' });
  await asPostgres('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const options = `-p ${port} -k ${socketDir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300`;
  const start = () => asPostgres('pg_ctl', ['-D', dataDir, '-l', path.join(dir, 'postgres.log'), '-o', options, '-w', '-t', '60', 'start']);
  // Immediate: the server goes away the way a crashed or fenced database does, with connections cut mid-statement.
  const stop = (mode: 'immediate' | 'fast') => asPostgres('pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']);
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/orchestrator`,
    port,
    async restart(downMs, whileDown) {
      const t0 = Date.now();
      await stop('immediate');
      await Promise.all([sleep(downMs), whileDown?.()]);
      await start();
      return Date.now() - t0;
    },
    async stop() {
      await stop('fast').catch(() => stop('immediate'));
    },
    killNowSync() {
      spawnSync('runuser', ['-u', 'postgres', '--', path.join(bin, 'pg_ctl'), '-D', dataDir, '-m', 'immediate', 'stop'], { stdio: 'ignore', cwd: '/' });
    },
  };
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', 'postgres'])).trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).trim());
  return { uid, gid };
}

/** A redis-server without persistence: a restart loses every key, as a cache and lease store must survive. */
export async function startRedis(): Promise<RestartableService & { url: string; port: number }> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const c = child;
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    await waitForPort(port, 15_000);
  };
  const stop = async (signal: NodeJS.Signals) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async restart(downMs, whileDown) {
      const t0 = Date.now();
      await stop('SIGKILL');
      await Promise.all([sleep(downMs), whileDown?.()]);
      await start();
      return Date.now() - t0;
    },
    stop: () => stop('SIGTERM'),
    killNowSync() {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** The dev server with its state in a SQLite file, on a fixed port so clients reconnect to the same address. */
export async function startTemporal(opts: { cliPath: string; dir: string; log: (m: string) => void }): Promise<RestartableService & { address: string }> {
  const dbFile = path.join(opts.dir, 'temporal.db');
  const base = { cliPath: opts.cliPath, dbFile, namespace: 'default', uiPort: false as const, log: opts.log, readyTimeoutMs: 120_000 };
  let server: DevServer = await startDevServer(base);
  const port = Number(server.address.split(':').pop());
  return {
    address: server.address,
    async restart(downMs, whileDown) {
      const t0 = Date.now();
      await server.stop();
      await Promise.all([sleep(downMs), whileDown?.()]);
      server = await startDevServer({ ...base, port });
      return Date.now() - t0;
    },
    stop: () => server.stop(),
    killNowSync() {
      try {
        process.kill(server.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    },
  };
}

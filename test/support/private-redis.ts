import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../src/lib/free-port.ts';

/**
 * A Redis of one test file's own, on 127.0.0.1, that the test may stop and start again (the shared one on 6379 is
 * never touched). Nothing is persisted: a restart comes back empty, as after a crash without persistence.
 */
export async function startPrivateRedis() {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'orch-redis-'));
  let child: ChildProcess | undefined;

  const accepts = () =>
    new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });

  async function start(): Promise<void> {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !(await accepts()); i++) await sleep(25);
    if (!(await accepts())) throw new Error(`private redis did not start on port ${port}`);
  }

  async function stop(): Promise<void> {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  }

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop,
    async destroy(): Promise<void> {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

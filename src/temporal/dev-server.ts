import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { freePort } from '../lib/free-port.ts';

export interface DevServerOptions {
  cliPath: string;
  /** undefined = in-memory */
  dbFile?: string;
  /** default 127.0.0.1 */
  ip?: string;
  /** 0 or undefined = pick a free port */
  port?: number;
  /** a port, undefined = pick a free port, false = --headless */
  uiPort?: number | false;
  namespace: string;
  metricsPort?: number;
  /** default 'warn' */
  logLevel?: string;
  log: (msg: string) => void;
  /** default 60000 */
  readyTimeoutMs?: number;
}

export interface DevServer {
  /** host:port of the frontend gRPC service */
  address: string;
  uiUrl?: string;
  namespace: string;
  pid: number;
  stop(): Promise<void>;
}

const STOP_GRACE_MS = 5000;
const PROBE_TIMEOUT_MS = 3000;
const OUTPUT_TAIL_LINES = 40;
/** Free ports we pick can be taken before the server binds them; retry with fresh ones. */
const PORT_RACE_ATTEMPTS = 3;

export class DevServerStartError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
    this.name = 'DevServerStartError';
  }
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const picksPorts = !opts.port || opts.uiPort === undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      const portTaken = err instanceof DevServerStartError && /address already in use/i.test(err.output);
      if (!portTaken || !picksPorts || attempt >= PORT_RACE_ATTEMPTS) throw err;
      opts.log(`temporal dev server: a picked port was taken meanwhile, retrying (${attempt})`);
    }
  }
}

async function startOnce(opts: DevServerOptions): Promise<DevServer> {
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port || (await freePort(ip));
  const uiPort = opts.uiPort === false ? false : (opts.uiPort ?? (await freePort(ip)));
  const readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;

  const args = [
    'server',
    'start-dev',
    '--namespace', opts.namespace,
    '--ip', ip,
    '--port', String(port),
    '--log-level', opts.logLevel ?? 'warn',
    // The version check calls home; there is no internet here and it only delays start.
    '--dynamic-config-value', 'frontend.enableServerVersionCheck=false',
  ];
  args.push(...(uiPort === false ? ['--headless'] : ['--ui-port', String(uiPort)]));
  if (opts.metricsPort !== undefined) args.push('--metrics-port', String(opts.metricsPort));
  if (opts.dbFile !== undefined) {
    const dbFile = resolve(opts.dbFile);
    await mkdir(dirname(dbFile), { recursive: true });
    args.push('--db-filename', dbFile, '--sqlite-pragma', 'journal_mode=WAL');
  }

  const address = `${ip}:${port}`;
  const started = Date.now();
  const child = spawn(opts.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = captureOutput(child, opts.log);
  let running = true;
  const spawnFailed = new Promise<Error>((resolveError) => child.once('error', resolveError));
  // A failed spawn emits 'error' and never 'exit': either way there is no process any more.
  const exited = Promise.race([new Promise((r) => child.once('exit', r)), spawnFailed]).then(() => {
    running = false;
  });

  // Do not leave a server running when the parent exits without calling stop().
  const killOnExit = () => {
    if (running) child.kill('SIGTERM');
  };
  process.on('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (running) {
        child.kill('SIGTERM');
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((r) => setTimeout(r, STOP_GRACE_MS, true).unref()),
        ]);
        if (timedOut) {
          opts.log(`temporal dev server: pid ${child.pid} ignored SIGTERM for ${STOP_GRACE_MS} ms, killing`);
          child.kill('SIGKILL');
          await exited;
        }
      }
      process.off('exit', killOnExit);
    })();
    return stopping;
  };

  // 'close' comes once stdio is drained, so the output tail in the error is complete.
  const earlyExit = new Promise<DevServerStartError>((resolveError) => {
    child.once('error', (err) =>
      resolveError(new DevServerStartError(`could not run ${opts.cliPath}: ${err.message}`, err.message)),
    );
    child.once('close', (code, signal) =>
      resolveError(
        new DevServerStartError(
          `temporal dev server exited during start (code ${code}, signal ${signal}):\n${output.tail()}`,
          output.tail(),
        ),
      ),
    );
  });

  try {
    await waitUntilReady({ address, namespace: opts.namespace, readyTimeoutMs, earlyExit, output });
  } catch (err) {
    await stop();
    throw err;
  }

  opts.log(
    `temporal dev server: ready on ${address} (namespace ${opts.namespace}, pid ${child.pid}) ` +
      `after ${Date.now() - started} ms`,
  );
  return {
    address,
    uiUrl: uiPort === false ? undefined : `http://${ip}:${uiPort}`,
    namespace: opts.namespace,
    pid: child.pid as number,
    stop,
  };
}

interface ReadyWait {
  address: string;
  namespace: string;
  readyTimeoutMs: number;
  earlyExit: Promise<DevServerStartError>;
  output: { tail(): string };
}

/**
 * The frontend opens its port before the namespace exists, so readiness is "describeNamespace
 * answers". Each probe has its own short deadline: the SDK's built-in retries would otherwise
 * hide a dead server behind long backoffs.
 */
async function waitUntilReady({ address, namespace, readyTimeoutMs, earlyExit, output }: ReadyWait): Promise<void> {
  const deadline = Date.now() + readyTimeoutMs;
  let failure: DevServerStartError | undefined;
  void earlyExit.then((err) => (failure = err));
  let lastError = 'no attempt made';

  while (Date.now() < deadline) {
    if (failure) throw failure;
    const probe = probeOnce(address, namespace).then(
      () => 'ready' as const,
      (err: unknown) => {
        lastError = err instanceof Error ? err.message : String(err);
        return 'not-ready' as const;
      },
    );
    const outcome = await Promise.race([probe, earlyExit]);
    if (outcome instanceof DevServerStartError) throw outcome;
    if (outcome === 'ready') return;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (failure) throw failure;
  throw new DevServerStartError(
    `temporal dev server on ${address} not ready after ${readyTimeoutMs} ms (last error: ${lastError}):\n` +
      output.tail(),
    output.tail(),
  );
}

async function probeOnce(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: PROBE_TIMEOUT_MS });
  try {
    await connection.withDeadline(Date.now() + PROBE_TIMEOUT_MS, () =>
      connection.workflowService.describeNamespace({ namespace }),
    );
  } finally {
    await connection.close();
  }
}

function captureOutput(child: ChildProcess, log: (msg: string) => void): { tail(): string } {
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const line of parts) {
        if (line.trim() === '') continue;
        lines.push(line);
        if (lines.length > OUTPUT_TAIL_LINES) lines.shift();
        log(`temporal: ${line}`);
      }
    });
    stream.on('end', () => {
      if (buffered.trim() !== '') lines.push(buffered);
    });
  }
  return { tail: () => lines.join('\n') };
}

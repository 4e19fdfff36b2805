// `orchestrator api` and `orchestrator worker` as supervised child processes: the run can SIGKILL them, and one that
// exits on its own (a crash the run did not cause) is noted and started again, as a process manager would.

import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROJECT_ROOT } from '../../src/compose.ts';

export interface UnexpectedExit {
  atMs: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  lastLines: string[];
  /** The first lines the process wrote to stderr: where Node prints an uncaught error, before any object dump. */
  stderrHead: string[];
}

const TAIL_LINES = 200;
const START_TIMEOUT_MS = 180_000;
const STDERR_HEAD_LINES = 40;

export class SupervisedProcess {
  readonly unexpectedExits: UnexpectedExit[] = [];
  readonly failedStarts: UnexpectedExit[] = [];
  starts = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private lines: string[] = [];
  private expectingExit = false;
  private supervising = true;
  private starting = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly role: 'api' | 'worker',
    private readonly env: NodeJS.ProcessEnv,
    /** True once a started child serves; `output` holds that child's lines only. */
    private readonly isReady: (output: string[]) => boolean | Promise<boolean>,
    private readonly clock: () => number,
    private readonly log: (m: string) => void,
  ) {}

  /** Starts the process and resolves, with the milliseconds it took, once it is ready. */
  start(): Promise<number> {
    return this.serialized(() => this.startNow());
  }

  /** SIGKILL, then start again; resolves with how long it was gone (kill to ready). */
  crashAndRestart(): Promise<number> {
    return this.serialized(async () => {
      const t0 = Date.now();
      await this.killNow('SIGKILL');
      await this.startNow();
      return Date.now() - t0;
    });
  }

  /** Stops supervising and ends the process: SIGTERM, SIGKILL after a grace period. */
  async stop(): Promise<void> {
    this.supervising = false;
    await this.queue.catch(() => undefined);
    await this.killNow('SIGTERM', 10_000);
  }

  /** Immediately, whatever is going on: used when the whole run is torn down on a signal. */
  killHard(): void {
    this.supervising = false;
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  tail(n = 40): string[] {
    return this.lines.slice(-n);
  }

  private serialized<T>(op: () => Promise<T>): Promise<T> {
    const next = this.queue.then(op, op);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async killNow(signal: NodeJS.Signals, graceMs = 0): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.expectingExit = true;
    child.kill(signal);
    const timer = graceMs > 0 ? setTimeout(() => child.kill('SIGKILL'), graceMs) : undefined;
    await this.exited;
    if (timer) clearTimeout(timer);
  }

  private spawnChild(): { child: ChildProcess; output: string[]; stderrHead: string[]; gone: () => boolean } {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', this.role], {
      cwd: PROJECT_ROOT,
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    const stderrHead: string[] = [];
    const collect = (chunk: Buffer) => {
      for (const line of String(chunk).split('\n')) {
        if (!line) continue;
        output.push(line);
        if (output.length > TAIL_LINES) output.shift();
        this.lines.push(line);
        if (this.lines.length > TAIL_LINES) this.lines.shift();
      }
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderrHead.length < STDERR_HEAD_LINES) stderrHead.push(...String(chunk).split('\n').filter(Boolean).slice(0, STDERR_HEAD_LINES - stderrHead.length));
      collect(chunk);
    });
    let isGone = false;
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        isGone = true;
        resolve();
        this.onExit(child, code, signal, output, stderrHead);
      }),
    );
    this.child = child;
    this.expectingExit = false;
    this.starts++;
    return { child, output, stderrHead, gone: () => isGone };
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, output: string[], stderrHead: string[]): void {
    if (child !== this.child || this.expectingExit || this.starting || !this.supervising) return;
    const exit = { atMs: this.clock(), code, signal, lastLines: output.slice(-TAIL_LINES), stderrHead: [...stderrHead] };
    this.unexpectedExits.push(exit);
    this.log(`${this.role} exited on its own (code ${code}, signal ${signal}); starting it again`);
    void this.serialized(async () => {
      if (this.supervising && this.child === child) await this.startNow();
    }).catch((err: unknown) => this.log(`${this.role} could not be started again: ${(err as Error).message}`));
  }

  /** Spawns until one child becomes ready: a start may fail while a dependency is down, so it is tried again. */
  private async startNow(): Promise<number> {
    const t0 = Date.now();
    this.starting = true;
    try {
      return await this.spawnUntilReady(t0);
    } finally {
      this.starting = false;
    }
  }

  private async spawnUntilReady(t0: number): Promise<number> {
    for (;;) {
      if (!this.supervising) throw new Error(`${this.role}: stopped`);
      const { output, stderrHead, gone } = this.spawnChild();
      for (;;) {
        if (gone()) break;
        if (await this.isReady(output)) return Date.now() - t0;
        await sleep(50);
      }
      this.failedStarts.push({ atMs: this.clock(), code: this.child!.exitCode, signal: this.child!.signalCode, lastLines: output.slice(-30), stderrHead: [...stderrHead] });
      if (Date.now() - t0 > START_TIMEOUT_MS) {
        throw new Error(`${this.role} did not start within ${START_TIMEOUT_MS} ms; its last output:\n  ${output.slice(-30).join('\n  ')}`);
      }
      await sleep(1000);
    }
  }
}

/** The line of a crash's output that names it: the thrown error, else the last line. */
export function crashLine(e: { stderrHead: string[]; lastLines: string[] }): string {
  const named = e.stderrHead.find((l) => /^\s*(\w*Error\b|error:|orchestrator failed)/.test(l) || /Unhandled|uncaught/i.test(l));
  const emitted = e.stderrHead.find((l) => /Emitted 'error' event on/.test(l));
  return [named ?? e.lastLines.at(-1) ?? '', emitted ?? ''].map((l) => l.trim()).filter(Boolean).join(' | ').slice(0, 200);
}

/** Ready when the API answers /healthz (liveness: the process serves HTTP). */
export function apiReady(port: number): () => Promise<boolean> {
  return async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  };
}

/** Ready when the worker has logged that it polls the task queue. */
export function workerReady(output: string[]): boolean {
  return output.some((l) => l.includes('worker running'));
}

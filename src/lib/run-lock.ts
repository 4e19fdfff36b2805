import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// One process at a time owns a data folder's embedded state: PGlite's files must never be opened by two processes,
// and `orchestrator reset` must not delete them under a running service. The owner writes `DATA_DIR/running.json`
// (its pid, what it runs, and where its embedded Postgres listens, so `token` and `admin` can reach it).

export const RUN_LOCK_FILE = 'running.json';

export interface RunLockInfo {
  pid: number;
  command: string;
  startedAt: string;
  /** The loopback URL of the embedded Postgres this process serves, once it is up. */
  databaseUrl?: string;
}

export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: RunLockInfo,
  ) {
    super(`the data folder ${dataDir} is in use by orchestrator ${holder.command} (pid ${holder.pid}, since ${holder.startedAt}); stop it first`);
  }
}

export interface RunLock {
  /** Records more about this process (the embedded Postgres URL) for other commands to read. */
  update(more: Partial<Pick<RunLockInfo, 'databaseUrl'>>): void;
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The live holder of the data folder, if any; a lock left by a process that died is ignored. */
export function readRunLock(dataDir: string): RunLockInfo | undefined {
  let info: RunLockInfo;
  try {
    info = JSON.parse(readFileSync(path.join(dataDir, RUN_LOCK_FILE), 'utf8')) as RunLockInfo;
  } catch {
    return undefined;
  }
  return Number.isInteger(info.pid) && isAlive(info.pid) ? info : undefined;
}

export function acquireRunLock(dataDir: string, command: string): RunLock {
  const file = path.join(dataDir, RUN_LOCK_FILE);
  let info: RunLockInfo = { pid: process.pid, command, startedAt: new Date().toISOString() };
  let taken = false;
  for (let attempt = 0; attempt < 2 && !taken; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(info), { flag: 'wx', mode: 0o600 });
      taken = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readRunLock(dataDir);
      if (holder) throw new DataDirInUseError(dataDir, holder);
      // Left behind by a process that died without cleaning up.
      rmSync(file, { force: true });
    }
  }
  if (!taken) throw new Error(`could not take ${file}: another process keeps creating it`);
  let released = false;
  return {
    update(more) {
      info = { ...info, ...more };
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(info), { mode: 0o600 });
      renameSync(tmp, file);
    },
    release() {
      if (released) return;
      released = true;
      rmSync(file, { force: true });
    },
  };
}

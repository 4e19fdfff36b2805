import { open, readFile, rm, stat } from 'node:fs/promises';

const LOCK_POLL_MS = 1000;
/** An empty lock file older than this was left by a process that died between creating and writing it. */
const UNBORN_LOCK_MS = 60_000;

/**
 * Runs `install` while holding an O_EXCL lock file, so that of several processes (parallel test runs,
 * `npm start` beside `npm test`) or concurrent callers in one process only one installs; the others
 * wait and then find what it installed. A lock whose holder died is taken over.
 */
export async function withInstallLock<T>(
  lockPath: string,
  opts: { waitLimitMs: number; log: (msg: string) => void },
  install: () => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + opts.waitLimitMs;
  let announcedWait = false;
  for (;;) {
    if (await tryLock(lockPath)) {
      try {
        return await install();
      } finally {
        await rm(lockPath, { force: true });
      }
    }
    if (!announcedWait) {
      opts.log(`temporal cli: another process is installing it (lock ${lockPath}); waiting`);
      announcedWait = true;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for another process to install the Temporal CLI (lock ${lockPath}). ` +
          `If no install is running, delete the lock file and retry.`,
      );
    }
    await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    if (!(await lockHolderAlive(lockPath))) await rm(lockPath, { force: true });
  }
}

async function tryLock(lockPath: string): Promise<boolean> {
  try {
    const handle = await open(lockPath, 'wx');
    await handle.writeFile(`${process.pid}\n`);
    await handle.close();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

async function lockHolderAlive(lockPath: string): Promise<boolean> {
  let content: string;
  let ageMs: number;
  try {
    content = await readFile(lockPath, 'utf8');
    ageMs = Date.now() - (await stat(lockPath)).mtimeMs;
  } catch {
    return false;
  }
  const pid = Number.parseInt(content, 10);
  // The holder writes its pid right after creating the file; an empty file is a lock being born,
  // unless it is old enough that its creator must have died in between.
  if (!Number.isInteger(pid) || pid <= 0) return ageMs < UNBORN_LOCK_MS;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

import { execFile, spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** v1.5.1 is the last tag whose go.mod has no `replace` directive, so `go install` can build it. */
export const TEMPORAL_CLI_VERSION = '1.5.1';
/** The server embedded in CLI v1.5.1; identifies a build whose CLI version was not stamped. */
const TEMPORAL_SERVER_VERSION = '1.29.1';
const CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
/** Without it `go install` reports version 0.0.0-DEV. */
const VERSION_LDFLAGS = `-ldflags=-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`;
const FALLBACK_GO = '/usr/local/go/bin/go';
/** A cold build downloads ~150 modules and compiles the server: minutes on a small box. */
const BUILD_WAIT_LIMIT_MS = 30 * 60_000;
const LOCK_POLL_MS = 1000;
const HEARTBEAT_MS = 30_000;

export interface FindTemporalCliOptions {
  env: Record<string, string | undefined>;
  toolsDir: string;
  log: (msg: string) => void;
}

function installHelp(toolsDir: string): string {
  const bin = join(toolsDir, 'bin');
  return [
    `Temporal CLI not found and Go is not available to build it. Do one of:`,
    `  1. install Go (https://go.dev/dl/) and run: ` +
      `CGO_ENABLED=0 GOBIN=${bin} go install ${CLI_MODULE}@v${TEMPORAL_CLI_VERSION}`,
    `  2. install the Temporal CLI v${TEMPORAL_CLI_VERSION} (https://docs.temporal.io/cli#install) ` +
      `and put \`temporal\` on PATH`,
    `  3. set TEMPORAL_CLI=/absolute/path/to/temporal`,
  ].join('\n');
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    const info = await stat(path);
    if (!info.isFile()) return false;
    await access(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findOnPath(name: string, pathVar: string | undefined): Promise<string | undefined> {
  for (const dir of (pathVar ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

export interface TemporalCliVersion {
  /** "1.5.1", or "0.0.0-DEV" for a plain `go install` without our -ldflags */
  cli: string;
  /** the embedded server, e.g. "1.29.1" */
  server?: string;
}

/** Parses `temporal --version`; undefined when the binary does not answer like a Temporal CLI. */
export async function temporalCliVersion(cliPath: string): Promise<TemporalCliVersion | undefined> {
  try {
    const { stdout } = await execFileAsync(cliPath, ['--version'], { timeout: 20_000 });
    const cli = /version\s+v?(\d+\.\d+\.\d+\S*)/i.exec(stdout)?.[1];
    if (cli === undefined) return undefined;
    return { cli, server: /Server\s+v?(\d+\.\d+\.\d+)/.exec(stdout)?.[1] };
  } catch {
    return undefined;
  }
}

function describeVersion(version: TemporalCliVersion | undefined): string {
  if (!version) return 'unknown';
  return version.server ? `${version.cli}, server ${version.server}` : version.cli;
}

function isPinned(version: TemporalCliVersion | undefined): boolean {
  return version?.cli === TEMPORAL_CLI_VERSION || version?.server === TEMPORAL_SERVER_VERSION;
}

export async function findOrBuildTemporalCli(opts: FindTemporalCliOptions): Promise<string> {
  const { env, log } = opts;
  const toolsDir = resolve(opts.toolsDir);

  if (env.TEMPORAL_CLI) {
    const cli = resolve(env.TEMPORAL_CLI);
    if (!(await isExecutableFile(cli))) {
      throw new Error(
        `TEMPORAL_CLI is set to "${env.TEMPORAL_CLI}" but that is not an executable file. ` +
          `Point it at a Temporal CLI v${TEMPORAL_CLI_VERSION} binary, or unset it to use ` +
          `\`temporal\` on PATH or a build in ${join(toolsDir, 'bin')}.`,
      );
    }
    log(`temporal cli: ${cli} (TEMPORAL_CLI, version ${describeVersion(await temporalCliVersion(cli))})`);
    return cli;
  }

  const onPath = await findOnPath('temporal', env.PATH);
  if (onPath) {
    const version = await temporalCliVersion(onPath);
    if (version) {
      log(
        `temporal cli: ${onPath} (PATH, version ${describeVersion(version)}` +
          (isPinned(version) ? ')' : `; the project is tested with ${TEMPORAL_CLI_VERSION})`),
      );
      return onPath;
    }
    log(`temporal cli: ignoring ${onPath} on PATH: \`--version\` did not report a Temporal CLI version`);
  }

  const local = join(toolsDir, 'bin', 'temporal');
  if (await isPinnedBuild(local, log)) return local;

  const go =
    (await findOnPath('go', env.PATH)) ?? ((await isExecutableFile(FALLBACK_GO)) ? FALLBACK_GO : undefined);
  if (!go) throw new Error(installHelp(toolsDir));

  await buildUnderLock({ go, toolsDir, target: local, env, log });
  return local;
}

async function isPinnedBuild(path: string, log: (msg: string) => void): Promise<boolean> {
  if (!(await isExecutableFile(path))) return false;
  const version = await temporalCliVersion(path);
  if (isPinned(version)) {
    log(`temporal cli: ${path} (version ${describeVersion(version)})`);
    return true;
  }
  log(`temporal cli: ${path} reports version ${describeVersion(version)}, rebuilding v${TEMPORAL_CLI_VERSION}`);
  return false;
}

interface BuildArgs {
  go: string;
  toolsDir: string;
  target: string;
  env: Record<string, string | undefined>;
  log: (msg: string) => void;
}

/**
 * Two processes (parallel test runs, `npm start` beside `npm test`) may both find no binary.
 * One takes an O_EXCL lock file and builds; the others wait for it. The build goes to a private
 * GOBIN and is renamed into place, so nobody ever sees a half-written binary.
 */
async function buildUnderLock(args: BuildArgs): Promise<void> {
  const { toolsDir, target, log } = args;
  await mkdir(join(toolsDir, 'bin'), { recursive: true });
  const lockPath = join(toolsDir, 'temporal-build.lock');
  const deadline = Date.now() + BUILD_WAIT_LIMIT_MS;
  let announcedWait = false;

  for (;;) {
    const lock = await tryLock(lockPath);
    if (lock) {
      try {
        if (await isPinnedBuild(target, log)) return;
        await buildInto(args);
        return;
      } finally {
        await rm(lockPath, { force: true });
      }
    }
    if (!announcedWait) {
      log(`temporal cli: another process is building it (lock ${lockPath}); waiting`);
      announcedWait = true;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for another process to build the Temporal CLI (lock ${lockPath}). ` +
          `If no build is running, delete the lock file and retry.`,
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
  if (!Number.isInteger(pid) || pid <= 0) return ageMs < 60_000;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function buildInto({ go, toolsDir, target, env, log }: BuildArgs): Promise<void> {
  const gobin = join(toolsDir, `.build-${process.pid}-${Date.now()}`);
  await mkdir(gobin, { recursive: true });
  const started = Date.now();
  log(`temporal cli: building v${TEMPORAL_CLI_VERSION} with ${go} (a cold build takes minutes)`);
  try {
    await runGo(go, ['install', VERSION_LDFLAGS, `${CLI_MODULE}@v${TEMPORAL_CLI_VERSION}`], {
      ...env,
      CGO_ENABLED: '0',
      GOBIN: gobin,
    }, log);
    await rename(join(gobin, 'temporal'), target);
    log(`temporal cli: built ${target} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await rm(gobin, { recursive: true, force: true });
  }
}

async function runGo(
  go: string,
  args: string[],
  env: Record<string, string | undefined>,
  log: (msg: string) => void,
): Promise<void> {
  const child = spawn(go, args, { env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const onLine = (line: string) => {
    if (line.trim() === '') return;
    tail.push(line);
    if (tail.length > 30) tail.shift();
    log(`go: ${line.replace(/^go: /, '')}`);
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      lines.forEach(onLine);
    });
    stream.on('end', () => onLine(buffered));
  }
  const started = Date.now();
  // Compiling prints nothing for minutes; say we are alive.
  const heartbeat = setInterval(
    () => log(`temporal cli: still building (${Math.round((Date.now() - started) / 1000)} s)`),
    HEARTBEAT_MS,
  );
  try {
    const code = await new Promise<number | null>((resolveExit, rejectExit) => {
      child.once('error', rejectExit);
      child.once('close', resolveExit);
    });
    if (code !== 0) {
      throw new Error(
        `building the Temporal CLI failed (\`${go} ${args.join(' ')}\` exited with ${code}):\n` +
          tail.join('\n'),
      );
    }
  } finally {
    clearInterval(heartbeat);
  }
}

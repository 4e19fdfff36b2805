import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { buildTemporalCliWithGo, CLI_MODULE } from './cli-go-build.ts';
import { CliDownloadError, downloadTemporalCli } from './cli-download.ts';
import { describeVersion, isPinned, TEMPORAL_CLI_VERSION, temporalCliVersion } from './cli-version.ts';
import { withInstallLock } from './install-lock.ts';

export { TEMPORAL_CLI_VERSION, temporalCliVersion, type TemporalCliVersion } from './cli-version.ts';

const FALLBACK_GO = '/usr/local/go/bin/go';
/** A cold build downloads ~150 modules and compiles the server: minutes on a small box. */
const INSTALL_WAIT_LIMIT_MS = 30 * 60_000;
/** The name older versions of this finder used too, so an old and a new process never install at once. */
const LOCK_FILE = 'temporal-build.lock';

export interface FindTemporalCliOptions {
  env: Record<string, string | undefined>;
  toolsDir: string;
  log: (msg: string) => void;
  /** Download the release from this base URL when no binary is found; absent: never download. */
  download?: { baseUrl: string };
  /** Where to look for Go when it is not on PATH. */
  goFallbacks?: readonly string[];
}

function installHelp(toolsDir: string, tried: string[]): string {
  const bin = join(toolsDir, 'bin');
  return [
    `Temporal CLI v${TEMPORAL_CLI_VERSION} not found, and it could not be installed:`,
    ...tried.map((t) => `  - ${t}`),
    `Do one of:`,
    `  1. run with TEMPORAL_CLI_DOWNLOAD=on while online: the release is downloaded into ${bin}`,
    `  2. install the Temporal CLI v${TEMPORAL_CLI_VERSION} (https://docs.temporal.io/cli#install) ` +
      `and put \`temporal\` on PATH, or set TEMPORAL_CLI=/absolute/path/to/temporal`,
    `  3. install Go (https://go.dev/dl/) and run: ` +
      `CGO_ENABLED=0 GOBIN=${bin} go install ${CLI_MODULE}@v${TEMPORAL_CLI_VERSION}`,
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

/** Looks in order at TEMPORAL_CLI, PATH and `toolsDir/bin`; then downloads the release; then builds it with Go. */
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

  const go = await findGo(env, opts.goFallbacks ?? [FALLBACK_GO]);
  if (!opts.download && !go) {
    throw new Error(installHelp(toolsDir, ['download: off (TEMPORAL_CLI_DOWNLOAD)', 'Go build: `go` is not on PATH']));
  }
  await mkdir(join(toolsDir, 'bin'), { recursive: true });
  await withInstallLock(join(toolsDir, LOCK_FILE), { waitLimitMs: INSTALL_WAIT_LIMIT_MS, log }, async () => {
    // Someone may have installed it while we waited for the lock.
    if (await isPinnedBuild(local, log)) return;
    await removeStaleStaging(toolsDir);
    await install({ ...opts, toolsDir, target: local, go });
  });
  return local;
}

async function install(args: FindTemporalCliOptions & { target: string; go: string | undefined }): Promise<void> {
  const { toolsDir, target, go, env, log } = args;
  const tried: string[] = [];
  if (args.download) {
    try {
      await downloadTemporalCli({ baseUrl: args.download.baseUrl, stagingDir: toolsDir, target, log });
      return;
    } catch (err) {
      if (!(err instanceof CliDownloadError)) throw err;
      log(`temporal cli: download failed: ${err.message}${go ? '; building it with Go instead' : ''}`);
      tried.push(`download: ${err.message}`);
    }
  } else {
    tried.push('download: off (TEMPORAL_CLI_DOWNLOAD)');
  }
  if (!go) throw new Error(installHelp(toolsDir, [...tried, 'Go build: `go` is not on PATH']));
  await buildTemporalCliWithGo({ go, stagingDir: toolsDir, target, env, log });
}

async function findGo(env: Record<string, string | undefined>, fallbacks: readonly string[]): Promise<string | undefined> {
  const onPath = await findOnPath('go', env.PATH);
  if (onPath) return onPath;
  for (const candidate of fallbacks) if (await isExecutableFile(candidate)) return candidate;
  return undefined;
}

async function isPinnedBuild(path: string, log: (msg: string) => void): Promise<boolean> {
  if (!(await isExecutableFile(path))) return false;
  const version = await temporalCliVersion(path);
  if (isPinned(version)) {
    log(`temporal cli: ${path} (version ${describeVersion(version)})`);
    return true;
  }
  log(`temporal cli: ${path} reports version ${describeVersion(version)}, installing v${TEMPORAL_CLI_VERSION}`);
  return false;
}

/** Staging folders left by a process killed mid-install; only called under the lock, when nobody else installs. */
async function removeStaleStaging(toolsDir: string): Promise<void> {
  for (const name of await readdir(toolsDir)) {
    if (name.startsWith('.download-') || name.startsWith('.build-')) {
      await rm(join(toolsDir, name), { recursive: true, force: true });
    }
  }
}

import { spawn } from 'node:child_process';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TEMPORAL_CLI_VERSION } from './cli-version.ts';

export const CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
/** Without it `go install` reports version 0.0.0-DEV. */
const VERSION_LDFLAGS = `-ldflags=-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`;
const HEARTBEAT_MS = 30_000;

export interface GoBuildArgs {
  go: string;
  /** Where the private GOBIN is made: beside `target`, so the final rename stays on one filesystem. */
  stagingDir: string;
  target: string;
  env: Record<string, string | undefined>;
  log: (msg: string) => void;
}

/** Builds the pinned CLI into a private GOBIN and renames it into place: nobody sees a half-written binary. */
export async function buildTemporalCliWithGo({ go, stagingDir, target, env, log }: GoBuildArgs): Promise<void> {
  const gobin = join(stagingDir, `.build-${process.pid}-${Date.now()}`);
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

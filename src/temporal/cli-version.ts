import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** v1.5.1 is the last tag whose go.mod has no `replace` directive, so `go install` can build it. */
export const TEMPORAL_CLI_VERSION = '1.5.1';
/** The server embedded in CLI v1.5.1; identifies a build whose CLI version was not stamped. */
const TEMPORAL_SERVER_VERSION = '1.29.1';

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

export function describeVersion(version: TemporalCliVersion | undefined): string {
  if (!version) return 'unknown';
  return version.server ? `${version.cli}, server ${version.server}` : version.cli;
}

export function isPinned(version: TemporalCliVersion | undefined): boolean {
  return version?.cli === TEMPORAL_CLI_VERSION || version?.server === TEMPORAL_SERVER_VERSION;
}

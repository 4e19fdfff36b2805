import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { type ReadEntry, x as extractTar } from 'tar';
import { describeVersion, isPinned, TEMPORAL_CLI_VERSION, temporalCliVersion } from './cli-version.ts';

/** The CLI's goreleaser config names the SHA-256 list of a release this way. */
const CHECKSUMS_FILE = 'checksums.txt';
/** The real archives are tens of MiB; anything far bigger is not what we asked for. */
const MAX_ARCHIVE_BYTES = 256 * 1024 * 1024;
const CHECKSUMS_TIMEOUT_MS = 30_000;
/** A connection that delivers nothing for this long is given up (offline laptops, captive portals). */
const STALL_MS = 60_000;
const PROGRESS_EVERY_MS = 2000;

/** Why a download did not install anything; the caller falls through to the next way. */
export class CliDownloadError extends Error {}

const GO_OS: Partial<Record<NodeJS.Platform, string>> = { linux: 'linux', darwin: 'darwin' };
const GO_ARCH: Partial<Record<string, string>> = { x64: 'amd64', arm64: 'arm64' };

/** The release archive for this OS and CPU, e.g. temporal_cli_1.5.1_linux_amd64.tar.gz; undefined when none is published. */
export function releaseArchiveName(platform: NodeJS.Platform, arch: string, version = TEMPORAL_CLI_VERSION): string | undefined {
  const os = GO_OS[platform];
  const cpu = GO_ARCH[arch];
  return os && cpu ? `temporal_cli_${version}_${os}_${cpu}.tar.gz` : undefined;
}

/** Reads a `sha256sum`-style list ("<hex>  <file>" per line) and returns the digest listed for `fileName`. */
export function checksumFor(checksums: string, fileName: string): string | undefined {
  for (const line of checksums.split(/\r?\n/)) {
    const m = /^([0-9a-fA-F]{64})\s+\*?(\S+)$/.exec(line.trim());
    if (m && m[2] === fileName) return m[1]!.toLowerCase();
  }
  return undefined;
}

export interface DownloadCliArgs {
  baseUrl: string;
  /** Holds the staging folder, so the final rename into `target` stays on one filesystem. */
  stagingDir: string;
  target: string;
  log: (msg: string) => void;
  platform?: NodeJS.Platform;
  arch?: string;
  /** Give up when nothing arrives for this long (default STALL_MS). */
  stallMs?: number;
}

/**
 * Downloads the pinned release archive for this machine, checks its SHA-256 against the release's
 * checksums file, extracts `temporal`, checks it reports the pinned version and renames it into
 * `target`. Everything happens in a private staging folder that is removed afterwards, so a failed,
 * refused or interrupted download leaves nothing behind at `target`.
 */
export async function downloadTemporalCli(args: DownloadCliArgs): Promise<void> {
  const { log, target } = args;
  const archive = releaseArchiveName(args.platform ?? process.platform, args.arch ?? process.arch);
  if (!archive) {
    throw new CliDownloadError(`no v${TEMPORAL_CLI_VERSION} release archive is published for ${args.platform ?? process.platform}/${args.arch ?? process.arch}`);
  }
  const releaseUrl = `${args.baseUrl.replace(/\/+$/, '')}/v${TEMPORAL_CLI_VERSION}`;
  const expected = checksumFor(await fetchText(`${releaseUrl}/${CHECKSUMS_FILE}`), archive);
  if (!expected) throw new CliDownloadError(`${releaseUrl}/${CHECKSUMS_FILE} lists no checksum for ${archive}`);

  const staging = await mkdtemp(join(args.stagingDir, '.download-'));
  try {
    const archivePath = join(staging, archive);
    const started = Date.now();
    const actual = await fetchToFile(`${releaseUrl}/${archive}`, archivePath, log, args.stallMs ?? STALL_MS);
    if (actual !== expected) {
      throw new CliDownloadError(`${archive} does not match the release's checksum (sha256 ${actual}, expected ${expected}); refusing to install it`);
    }
    log(`temporal cli: ${archive} verified (sha256 ${expected.slice(0, 12)}…) in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    log(`temporal cli: extracting temporal from ${archive} and checking its version`);
    const extracted = await extractBinary(archivePath, staging);
    const version = await temporalCliVersion(extracted);
    if (!isPinned(version)) {
      throw new CliDownloadError(`the binary in ${archive} reports version ${describeVersion(version)}, not ${TEMPORAL_CLI_VERSION}`);
    }
    await rename(extracted, target);
    log(`temporal cli: installed ${target} (version ${describeVersion(version)})`);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function fetchText(url: string): Promise<string> {
  const res = await request(url, AbortSignal.timeout(CHECKSUMS_TIMEOUT_MS));
  return res.text();
}

async function request(url: string, signal: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { signal, redirect: 'follow' });
  } catch (err) {
    throw new CliDownloadError(`cannot reach ${url}: ${causeOf(err)}`);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new CliDownloadError(`${url} answered HTTP ${res.status}`);
  }
  return res;
}

/** Streams `url` into `path`, reporting progress, and returns the SHA-256 of what arrived. */
async function fetchToFile(url: string, path: string, log: (msg: string) => void, stallMs: number): Promise<string> {
  const stall = new AbortController();
  let stallTimer = setTimeout(() => stall.abort(), stallMs);
  const res = await request(url, stall.signal);
  const total = Number(res.headers.get('content-length')) || undefined;
  if (total !== undefined && total > MAX_ARCHIVE_BYTES) {
    await res.body!.cancel();
    throw new CliDownloadError(`${url} is ${mib(total)}, more than a Temporal CLI archive can be`);
  }
  log(`temporal cli: downloading ${url}${total ? ` (${mib(total)})` : ''}`);

  const hash = createHash('sha256');
  let received = 0;
  let lastReport = Date.now();
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => stall.abort(), stallMs);
      received += chunk.length;
      if (received > MAX_ARCHIVE_BYTES) {
        done(new CliDownloadError(`${url} sent more than ${mib(MAX_ARCHIVE_BYTES)}; a Temporal CLI archive is far smaller`));
        return;
      }
      hash.update(chunk);
      if (Date.now() - lastReport >= PROGRESS_EVERY_MS) {
        lastReport = Date.now();
        log(`temporal cli: downloaded ${progress(received, total)}`);
      }
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), meter, createWriteStream(path, { flags: 'wx' }));
  } catch (err) {
    if (err instanceof CliDownloadError) throw err;
    const why = stall.signal.aborted ? `nothing arrived for ${stallMs / 1000} s` : causeOf(err);
    throw new CliDownloadError(`download of ${url} broke off after ${progress(received, total)}: ${why}`);
  } finally {
    clearTimeout(stallTimer);
  }
  if (total !== undefined && received !== total) {
    throw new CliDownloadError(`download of ${url} ended after ${progress(received, total)}`);
  }
  log(`temporal cli: downloaded ${progress(received, total)}`);
  return hash.digest('hex');
}

/**
 * Extracts only the regular file `temporal` (the archives also hold LICENSE). tar refuses absolute and
 * `..` paths by default; refusing links too keeps a hostile archive from making `temporal` point at, and
 * the chmod below touch, a file outside the staging folder.
 */
async function extractBinary(archivePath: string, dir: string): Promise<string> {
  const into = join(dir, 'extracted');
  await mkdir(into);
  try {
    await extractTar({
      file: archivePath,
      cwd: into,
      strict: true,
      filter: (p, entry) => p.replace(/^\.\//, '') === 'temporal' && (entry as ReadEntry).type === 'File',
    });
  } catch (err) {
    throw new CliDownloadError(`cannot extract ${archivePath}: ${causeOf(err)}`);
  }
  const binary = join(into, 'temporal');
  const info = await lstat(binary).catch(() => undefined);
  if (!info?.isFile()) throw new CliDownloadError(`the archive holds no regular file named temporal`);
  await chmod(binary, 0o755);
  return binary;
}

function causeOf(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string } };
  return e.cause ? `${e.cause.code ?? e.cause.message}` : e.message;
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function progress(received: number, total: number | undefined): string {
  return total ? `${mib(received)} of ${mib(total)} (${Math.floor((received / total) * 100)}%)` : mib(received);
}

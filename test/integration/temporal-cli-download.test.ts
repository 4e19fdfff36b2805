import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { c as createTar } from 'tar';
import { PROJECT_ROOT } from '../../src/compose.ts';
import { findOrBuildTemporalCli } from '../../src/temporal/cli-binary.ts';
import { downloadTemporalCli, releaseArchiveName } from '../../src/temporal/cli-download.ts';
import { temporalCliVersion } from '../../src/temporal/cli-version.ts';
import { until } from '../support/until.ts';

// A release server on 127.0.0.1 laid out like GitHub's (/v1.5.1/<asset>, /v1.5.1/checksums.txt),
// serving a real tar.gz whose `temporal` is a small script answering `--version` like the real CLI.

const VERSION_LINE = 'temporal version 1.5.1 (Server 1.29.1, UI 2.42.1)';
const ARCHIVE = releaseArchiveName(process.platform, process.arch)!;
const RELEASE = '/v1.5.1';

type Route = (req: IncomingMessage, res: ServerResponse) => void;

describe('Temporal CLI download', function () {
  let work: string;
  let archive: Buffer;
  let goodChecksums: string;
  let server: Server;
  let baseUrl: string;
  const routes = new Map<string, Route>();
  const hits = new Map<string, number>();
  let logs: string[] = [];
  const log = (m: string) => logs.push(m);

  before(async function () {
    assert.ok(ARCHIVE, `no release archive for ${process.platform}/${process.arch}`);
    work = await mkdtemp(join(tmpdir(), 'tcli-download-'));
    const content = join(work, 'archive-content');
    await mkdir(content);
    await writeFile(join(content, 'temporal'), `#!/bin/sh\necho "${VERSION_LINE}"\n`);
    await chmod(join(content, 'temporal'), 0o755);
    await writeFile(join(content, 'LICENSE'), 'MIT\n');
    // Padding makes the archive big enough to be cut off halfway, as a real 30 MiB download would be.
    await writeFile(join(content, 'padding.bin'), randomBytesLike(512 * 1024));
    const archivePath = join(work, ARCHIVE);
    await createTar({ gzip: true, file: archivePath, cwd: content, portable: true }, ['LICENSE', 'temporal', 'padding.bin']);
    archive = await readFile(archivePath);
    goodChecksums = [
      `${'0'.repeat(64)}  temporal_cli_1.5.1_windows_amd64.zip`,
      `${sha256(archive)}  ${ARCHIVE}`,
    ].join('\n') + '\n';

    server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const route = routes.get(path);
      if (route) route(req, res);
      else res.writeHead(404).end('Not Found');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async function () {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(work, { recursive: true, force: true });
  });

  beforeEach(function () {
    routes.clear();
    hits.clear();
    logs = [];
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error(logs.join('\n'));
  });

  function serveRelease(checksums = goodChecksums): void {
    routes.set(`${RELEASE}/checksums.txt`, (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(checksums));
    routes.set(`${RELEASE}/${ARCHIVE}`, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': archive.length });
      res.end(archive);
    });
  }

  /** A fresh tools folder and a PATH with neither `temporal` nor `go` on it (unless `pathDirs` adds one). */
  async function freshMachine(pathDirs: string[] = []) {
    const toolsDir = await mkdtemp(join(work, 'tools-'));
    const emptyBin = await mkdtemp(join(work, 'empty-bin-'));
    const env = { PATH: [...pathDirs, emptyBin].join(':') };
    return { toolsDir, env, target: join(toolsDir, 'bin', 'temporal') };
  }

  async function leftovers(toolsDir: string): Promise<string[]> {
    const top = (await readdir(toolsDir)).filter((n) => n !== 'bin');
    const bin = (await readdir(join(toolsDir, 'bin')).catch(() => [])).map((n) => `bin/${n}`);
    return [...top, ...bin];
  }

  it('downloads, verifies and installs the release, reporting progress, and finds it later without downloading', async function () {
    serveRelease();
    const { toolsDir, env, target } = await freshMachine();
    const cli = await findOrBuildTemporalCli({ env, toolsDir, log, download: { baseUrl }, goFallbacks: [] });

    assert.equal(cli, target);
    assert.deepEqual(await temporalCliVersion(cli), { cli: '1.5.1', server: '1.29.1' });
    assert.equal((await stat(cli)).mode & 0o111, 0o111, 'installed executable');
    assert.deepEqual(await leftovers(toolsDir), ['bin/temporal'], 'no staging folder, lock or archive left');
    assert.ok(logs.some((l) => l.includes(`downloading ${baseUrl}${RELEASE}/${ARCHIVE} (0.5 MiB)`)), 'announces the download and its size');
    assert.ok(logs.some((l) => /downloaded 0\.5 MiB of 0\.5 MiB \(100%\)/.test(l)), 'reports bytes downloaded');
    assert.ok(logs.some((l) => l.includes(`${ARCHIVE} verified (sha256 ${sha256(archive).slice(0, 12)}`)));
    assert.ok(logs.some((l) => l.includes(`extracting temporal from ${ARCHIVE}`)));

    const again = await findOrBuildTemporalCli({ env, toolsDir, log, download: { baseUrl }, goFallbacks: [] });
    assert.equal(again, target);
    assert.equal(hits.get(`${RELEASE}/${ARCHIVE}`), 1, 'the second lookup downloads nothing');
  });

  it('refuses an archive whose checksum does not match, installing nothing', async function () {
    serveRelease(`${'ab'.repeat(32)}  ${ARCHIVE}\n`);
    const { toolsDir, env, target } = await freshMachine();
    await assert.rejects(
      findOrBuildTemporalCli({ env, toolsDir, log, download: { baseUrl }, goFallbacks: [] }),
      (err: Error) =>
        err.message.includes('does not match the release\'s checksum') &&
        err.message.includes(`expected ${'ab'.repeat(32)}`) &&
        err.message.includes('install Go'),
    );
    assert.equal(hits.get(`${RELEASE}/${ARCHIVE}`), 1, 'the archive was fetched and then refused');
    await assert.rejects(stat(target), { code: 'ENOENT' });
    assert.deepEqual(await leftovers(toolsDir), []);
  });

  it('refuses a release whose checksums file does not list this archive', async function () {
    serveRelease(`${sha256(archive)}  temporal_cli_1.5.1_plan9_mips.tar.gz\n`);
    const { toolsDir, env, target } = await freshMachine();
    await assert.rejects(
      findOrBuildTemporalCli({ env, toolsDir, log, download: { baseUrl }, goFallbacks: [] }),
      new RegExp(`lists no checksum for ${ARCHIVE.replace(/\./g, '\\.')}`),
    );
    assert.equal(hits.get(`${RELEASE}/${ARCHIVE}`), undefined, 'nothing unverifiable is downloaded');
    await assert.rejects(stat(target), { code: 'ENOENT' });
  });

  it('on a 404 with no Go, fails with one message saying what to install', async function () {
    const { toolsDir, env } = await freshMachine();
    await assert.rejects(findOrBuildTemporalCli({ env, toolsDir, log, download: { baseUrl }, goFallbacks: [] }), (err: Error) => {
      assert.match(err.message, /^Temporal CLI v1\.5\.1 not found, and it could not be installed:/);
      assert.match(err.message, /checksums\.txt answered HTTP 404/);
      assert.match(err.message, /Go build: `go` is not on PATH/);
      assert.match(err.message, /install the Temporal CLI v1\.5\.1/);
      assert.match(err.message, /install Go/);
      return true;
    });
    assert.deepEqual(await leftovers(toolsDir), []);
  });

  it('on a 404 falls through to building with Go', async function () {
    // Go itself is out of scope here (a real build takes minutes): a stand-in `go` on PATH records how
    // it was called and leaves a binary in GOBIN as `go install` does.
    const goDir = await mkdtemp(join(work, 'go-'));
    const callLog = join(goDir, 'calls');
    await writeFile(
      join(goDir, 'go'),
      [
        '#!/bin/sh',
        `echo "$CGO_ENABLED $*" > "${callLog}"`,
        'echo "go: downloading github.com/temporalio/cli v1.5.1" >&2',
        `printf '#!/bin/sh\\necho "${VERSION_LINE}"\\n' > "$GOBIN/temporal"`,
        '/bin/chmod +x "$GOBIN/temporal"',
      ].join('\n') + '\n',
    );
    await chmod(join(goDir, 'go'), 0o755);
    routes.set(`${RELEASE}/checksums.txt`, (_req, res) => res.writeHead(200).end(goodChecksums));
    const { toolsDir, env, target } = await freshMachine([goDir]);

    const cli = await findOrBuildTemporalCli({ env, toolsDir, log, download: { baseUrl }, goFallbacks: [] });
    assert.equal(cli, target);
    assert.equal(hits.get(`${RELEASE}/${ARCHIVE}`), 1);
    assert.ok(logs.some((l) => l.includes(`${ARCHIVE} answered HTTP 404; building it with Go instead`)), logs.join('\n'));
    assert.match(await readFile(callLog, 'utf8'), /^0 install .* github\.com\/temporalio\/cli\/cmd\/temporal@v1\.5\.1$/m);
    assert.ok(logs.includes('go: downloading github.com/temporalio/cli v1.5.1'), 'build progress is shown');
    assert.deepEqual(await leftovers(toolsDir), ['bin/temporal']);
  });

  it('leaves nothing half-written when the connection breaks mid-download', async function () {
    serveRelease();
    routes.set(`${RELEASE}/${ARCHIVE}`, (_req, res) => {
      res.writeHead(200, { 'content-length': archive.length });
      res.write(archive.subarray(0, archive.length / 2), () => res.destroy());
    });
    const { toolsDir, env, target } = await freshMachine();
    await assert.rejects(
      findOrBuildTemporalCli({ env, toolsDir, log, download: { baseUrl }, goFallbacks: [] }),
      /download of .* (broke off|ended) after/,
    );
    await assert.rejects(stat(target), { code: 'ENOENT' });
    assert.deepEqual(await leftovers(toolsDir), []);
  });

  it('installs once when several callers look at the same time', async function () {
    serveRelease();
    // Slow the archive down so all callers are waiting while the first one downloads.
    routes.set(`${RELEASE}/${ARCHIVE}`, (_req, res) => {
      res.writeHead(200, { 'content-length': archive.length });
      res.write(archive.subarray(0, 1000));
      setTimeout(() => res.end(archive.subarray(1000)), 1500);
    });
    const { toolsDir, env, target } = await freshMachine();
    const results = await Promise.all(
      [1, 2, 3].map(() => findOrBuildTemporalCli({ env, toolsDir, log, download: { baseUrl }, goFallbacks: [] })),
    );
    assert.deepEqual(results, [target, target, target]);
    assert.equal(hits.get(`${RELEASE}/${ARCHIVE}`), 1, 'one download for three callers');
    assert.equal(logs.filter((l) => l.includes('another process is installing it')).length, 2);
    assert.deepEqual(await leftovers(toolsDir), ['bin/temporal']);
  });

  it('gives up on a download that stalls, leaving nothing behind', async function () {
    serveRelease();
    routes.set(`${RELEASE}/${ARCHIVE}`, (_req, res) => {
      res.writeHead(200, { 'content-length': archive.length });
      res.write(archive.subarray(0, 4096));
    });
    const { toolsDir, target } = await freshMachine();
    await mkdir(join(toolsDir, 'bin'));
    const started = Date.now();
    await assert.rejects(
      downloadTemporalCli({ baseUrl, stagingDir: toolsDir, target, log, stallMs: 300 }),
      /broke off after 0\.0 MiB of 0\.5 MiB \(0%\): nothing arrived for 0\.3 s/,
    );
    assert.ok(Date.now() - started < 5000, 'the stall is noticed promptly');
    assert.deepEqual(await leftovers(toolsDir), []);
  });

  it('refuses an archive whose temporal is a link, or reports another version', async function () {
    const victim = join(work, 'victim.txt');
    await writeFile(victim, 'not yours to chmod\n');
    await chmod(victim, 0o600);
    const hostile = join(work, 'hostile');
    await mkdir(hostile);
    await symlink(victim, join(hostile, 'temporal'));
    const linkArchive = await tarGz(hostile, ['temporal']);

    const wrong = join(work, 'wrong-version');
    await mkdir(wrong);
    await writeFile(join(wrong, 'temporal'), '#!/bin/sh\necho "temporal version 1.1.0 (Server 1.25.0, UI 2.30.0)"\n', { mode: 0o755 });
    const wrongArchive = await tarGz(wrong, ['temporal']);

    for (const [bytes, reason] of [
      [linkArchive, /holds no regular file named temporal/],
      [wrongArchive, /reports version 1\.1\.0, server 1\.25\.0, not 1\.5\.1/],
    ] as const) {
      routes.set(`${RELEASE}/checksums.txt`, (_req, res) => res.writeHead(200).end(`${sha256(bytes)}  ${ARCHIVE}\n`));
      routes.set(`${RELEASE}/${ARCHIVE}`, (_req, res) => res.writeHead(200, { 'content-length': bytes.length }).end(bytes));
      const { toolsDir, target } = await freshMachine();
      await mkdir(join(toolsDir, 'bin'));
      await assert.rejects(downloadTemporalCli({ baseUrl, stagingDir: toolsDir, target, log }), reason);
      assert.deepEqual(await leftovers(toolsDir), []);
    }
    assert.equal((await stat(victim)).mode & 0o777, 0o600, 'the link target was not touched');
  });

  async function tarGz(dir: string, files: string[]): Promise<Buffer> {
    const file = join(dir, '..', `${dir.split('/').pop()}.tar.gz`);
    await createTar({ gzip: true, file, cwd: dir, portable: true }, files);
    return readFile(file);
  }

  it('recovers after a process is killed mid-download: the next run takes over the lock and cleans up', async function () {
    serveRelease();
    // Half the archive, then silence: the download is in flight when the process dies.
    routes.set(`${RELEASE}/${ARCHIVE}`, (_req, res) => {
      res.writeHead(200, { 'content-length': archive.length });
      res.write(archive.subarray(0, archive.length / 2));
    });
    const { toolsDir, env, target } = await freshMachine();
    const script = [
      `import { findOrBuildTemporalCli } from ${JSON.stringify(join(PROJECT_ROOT, 'src/temporal/cli-binary.ts'))};`,
      `await findOrBuildTemporalCli({ env: ${JSON.stringify(env)}, toolsDir: ${JSON.stringify(toolsDir)}, log: console.log, download: { baseUrl: ${JSON.stringify(baseUrl)} }, goFallbacks: [] });`,
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: PROJECT_ROOT, stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    try {
      await until('the child to be mid-download', async () => (await readdir(toolsDir)).some((n) => n.startsWith('.download-')) && hits.get(`${RELEASE}/${ARCHIVE}`) === 1, 60_000, 50);
      // Let the first half land on disk.
      await until('a partial archive on disk', async () => (await partialArchiveBytes(toolsDir)) > 0, 10_000, 50);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    await assert.rejects(stat(target), { code: 'ENOENT' });
    assert.ok((await readdir(toolsDir)).includes('temporal-build.lock'), 'the dead process left its lock');

    serveRelease();
    const cli = await findOrBuildTemporalCli({ env, toolsDir, log, download: { baseUrl }, goFallbacks: [] });
    assert.equal(cli, target);
    assert.deepEqual(await temporalCliVersion(cli), { cli: '1.5.1', server: '1.29.1' });
    assert.deepEqual(await leftovers(toolsDir), ['bin/temporal'], 'the stale lock and staging folder are gone');
  });
});

async function partialArchiveBytes(toolsDir: string): Promise<number> {
  for (const dir of (await readdir(toolsDir)).filter((n) => n.startsWith('.download-'))) {
    const info = await stat(join(toolsDir, dir, ARCHIVE)).catch(() => undefined);
    if (info) return info.size;
  }
  return 0;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Incompressible bytes, deterministic across runs. */
function randomBytesLike(size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update('seed').digest();
  for (let i = 0; i < size; i += block.length) {
    block.copy(out, i);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Connection } from '@temporalio/client';
import { findOrBuildTemporalCli } from '../../src/temporal/cli-binary.ts';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server.ts';
import { ensureNamespaceReady } from '../../src/temporal/namespace-setup.ts';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const toolsDir = join(repoRoot, '.tools');
const KEYWORD = 2; // temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
const DAY_SECONDS = 86_400;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

describe('Temporal dev server', function () {
  const logs: string[] = [];
  const log = (msg: string) => logs.push(msg);
  let cliPath: string;
  const cleanups: Array<() => Promise<void>> = [];

  before(async function () {
    // A cold build on a fresh machine downloads and compiles the whole server.
    this.timeout(30 * 60_000);
    cliPath = await findOrBuildTemporalCli({ env: process.env, toolsDir, log });
  });

  afterEach(async function () {
    while (cleanups.length > 0) await cleanups.pop()!();
    if (this.currentTest?.state === 'failed') console.error(logs.join('\n'));
    logs.length = 0;
  });

  async function connect(server: DevServer): Promise<Connection> {
    const connection = await Connection.connect({ address: server.address });
    cleanups.push(() => connection.close());
    return connection;
  }

  async function start(dbFile?: string): Promise<DevServer> {
    const server = await startDevServer({ cliPath, dbFile, uiPort: false, namespace: 'orchestrator-test', log });
    cleanups.push(() => server.stop());
    return server;
  }

  it('rejects a TEMPORAL_CLI that does not exist, naming the variable and path', async function () {
    const missing = join(tmpdir(), 'no-such-dir', 'temporal');
    await assert.rejects(
      findOrBuildTemporalCli({ env: { TEMPORAL_CLI: missing, PATH: process.env.PATH }, toolsDir, log }),
      (err: Error) => err.message.includes('TEMPORAL_CLI') && err.message.includes(missing),
    );
  });

  it('finds the pinned CLI again without building', async function () {
    const started = Date.now();
    const again = await findOrBuildTemporalCli({ env: process.env, toolsDir, log });
    assert.equal(again, cliPath);
    assert.ok(Date.now() - started < 20_000, 'a second lookup must not rebuild');
  });

  it('starts in memory, registers search attributes idempotently, raises retention, stops', async function () {
    const server = await start();
    assert.match(server.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(server.uiUrl, undefined);
    assert.ok(isAlive(server.pid));
    const connection = await connect(server);
    const namespace = server.namespace;

    const before = await connection.workflowService.describeNamespace({ namespace });
    assert.ok(Number(before.config?.workflowExecutionRetentionTtl?.seconds) < 7 * DAY_SECONDS);

    const setup = { namespace, retentionDays: 7, searchAttributes: { TaskStatus: 'KEYWORD' as const } };
    await ensureNamespaceReady(connection, setup);
    await ensureNamespaceReady(connection, setup);

    const listed = await connection.operatorService.listSearchAttributes({ namespace });
    assert.equal(listed.customAttributes?.TaskStatus, KEYWORD);
    const after = await connection.workflowService.describeNamespace({ namespace });
    assert.equal(Number(after.config?.workflowExecutionRetentionTtl?.seconds), 7 * DAY_SECONDS);

    // Retention is only ever raised.
    await ensureNamespaceReady(connection, { namespace, retentionDays: 2, searchAttributes: {} });
    const unchanged = await connection.workflowService.describeNamespace({ namespace });
    assert.equal(Number(unchanged.config?.workflowExecutionRetentionTtl?.seconds), 7 * DAY_SECONDS);

    await assert.rejects(
      ensureNamespaceReady(connection, { namespace, searchAttributes: { TaskStatus: 'INT' } }),
      /TaskStatus is KEYWORD, wanted INT/,
    );

    await server.stop();
    assert.equal(isAlive(server.pid), false);
    await server.stop();
  });

  it('registers attributes from concurrent callers without failing', async function () {
    const server = await start();
    const connection = await connect(server);
    const setup = {
      namespace: server.namespace,
      searchAttributes: { ProjectId: 'KEYWORD', Tool: 'KEYWORD', TargetKind: 'KEYWORD' } as const,
    };
    await Promise.all([1, 2, 3].map(() => ensureNamespaceReady(connection, setup)));
    const listed = await connection.operatorService.listSearchAttributes({ namespace: server.namespace });
    for (const name of ['ProjectId', 'Tool', 'TargetKind']) assert.equal(listed.customAttributes?.[name], KEYWORD);
  });

  it('keeps namespace settings in a database file across restarts', async function () {
    const dir = await mkdtemp(join(tmpdir(), 'temporal-dev-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const dbFile = join(dir, 'nested', 'temporal.db');

    const first = await start(dbFile);
    const firstConnection = await connect(first);
    await ensureNamespaceReady(firstConnection, {
      namespace: first.namespace,
      retentionDays: 30,
      searchAttributes: { TaskStatus: 'KEYWORD' },
    });
    await first.stop();
    assert.equal(isAlive(first.pid), false);
    assert.ok((await stat(dbFile)).size > 0);

    const second = await start(dbFile);
    assert.notEqual(second.pid, first.pid);
    const connection = await connect(second);
    const listed = await connection.operatorService.listSearchAttributes({ namespace: second.namespace });
    assert.equal(listed.customAttributes?.TaskStatus, KEYWORD);
    const described = await connection.workflowService.describeNamespace({ namespace: second.namespace });
    assert.equal(Number(described.config?.workflowExecutionRetentionTtl?.seconds), 30 * DAY_SECONDS);
    await second.stop();
    assert.equal(isAlive(second.pid), false);
  });

  it('rejects with the server output when the CLI exits during start', async function () {
    await assert.rejects(
      startDevServer({ cliPath, uiPort: false, namespace: 'x', logLevel: 'no-such-level', log }),
      (err: Error) => /exited during start/.test(err.message) && /no-such-level/.test(err.message),
    );
  });

  it('rejects when the CLI cannot be run at all', async function () {
    const cliPath = join(tmpdir(), 'no-such-dir', 'temporal');
    await assert.rejects(
      startDevServer({ cliPath, uiPort: false, namespace: 'x', log }),
      (err: Error) => err.message.includes(`could not run ${cliPath}`) && /ENOENT/.test(err.message),
    );
  });

  it('serves the Web UI on the port it reports', async function () {
    const server = await startDevServer({ cliPath, namespace: 'orchestrator-ui', log });
    cleanups.push(() => server.stop());
    assert.ok(server.uiUrl);
    const response = await fetch(server.uiUrl);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
  });
});

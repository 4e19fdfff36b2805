import path from 'node:path';
import { Connection } from '@temporalio/client';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { SEARCH_ATTRIBUTE_TYPES } from '../../workflows/contracts.ts';
import { PROJECT_ROOT } from '../../src/compose.ts';
import { temporalCliDownload } from '../../src/config.ts';
import { findOrBuildTemporalCli } from '../../src/temporal/cli-binary.ts';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server.ts';
import { ensureNamespaceReady } from '../../src/temporal/namespace-setup.ts';
import { bundleWorkflows } from '../../src/temporal/worker.ts';
import { installQuietRuntime } from './quiet-runtime.ts';

// One in-memory Temporal dev server and one workflow bundle per test run, started on first use.

export interface SharedTemporal {
  address: string;
  namespace: string;
  bundle: WorkflowBundleWithSourceMap;
}

let started: Promise<{ server: DevServer; shared: SharedTemporal }> | undefined;

export function sharedTemporal(): Promise<SharedTemporal> {
  started ??= (async () => {
    installQuietRuntime();
    const cli = await findOrBuildTemporalCli({ env: process.env, toolsDir: path.join(PROJECT_ROOT, '.tools'), log: (m) => process.stderr.write(`${m}\n`), download: temporalCliDownload(process.env, { byDefault: false }) });
    const [server, bundle] = await Promise.all([
      startDevServer({ cliPath: cli, namespace: 'default', uiPort: false, log: () => undefined, readyTimeoutMs: 120_000 }),
      bundleWorkflows(),
    ]);
    const connection = await Connection.connect({ address: server.address });
    await ensureNamespaceReady(connection, { namespace: 'default', searchAttributes: SEARCH_ATTRIBUTE_TYPES });
    await connection.close();
    return { server, shared: { address: server.address, namespace: 'default', bundle } };
  })();
  return started.then((s) => s.shared);
}

export async function stopSharedTemporal(): Promise<void> {
  if (!started) return;
  const { server } = await started;
  started = undefined;
  await server.stop();
}

import { stopSharedTemporal } from './shared-temporal.ts';

// Mocha root hooks: the shared Temporal dev server is started lazily by the first test that needs it.
export async function mochaGlobalTeardown(): Promise<void> {
  await stopSharedTemporal();
}

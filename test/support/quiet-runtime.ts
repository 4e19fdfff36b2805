import { DefaultLogger, Runtime } from '@temporalio/worker';

let installed = false;

/**
 * The Temporal runtime is a process-wide singleton that can be configured once, before any worker (replay ones
 * included) exists. Every test file that needs it calls this, so whichever runs first in a suite installs it.
 */
export function installQuietRuntime(): void {
  if (installed) return;
  installed = true;
  // The SDK's own logs would interleave with mocha's report; errors still reach stderr.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
}

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { bundleWorkflows } from '../../src/temporal/worker.ts';
import { installQuietRuntime } from '../support/quiet-runtime.ts';

// Histories recorded from real runs of each workflow path (scripts/record-histories.ts), replayed against the current
// workflow code: a change that would make running tasks non-deterministic fails here instead of in production.
const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/histories');
const TASK_PATHS = ['light', 'light-fresh', 'heavy-space', 'fallback-consent', 'consent-denied', 'canceled', 'large-result', 'slot-wait'];
// Each task path twice: as recorded before the fewer-bookkeeping-steps patch (what executions started then hold) and
// after it (`<path>.fewer-steps`).
const EXPECTED = [...TASK_PATHS, ...TASK_PATHS.map((p) => `${p}.fewer-steps`), 'agent-fan-out', 'agent-step-failed'];

describe('task and agent run workflows replay their recorded histories', function () {
  this.timeout(120_000);

  it('has a fixture for every path', function () {
    const found = readdirSync(DIR).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
    assert.deepEqual([...found].sort(), [...EXPECTED].sort());
  });

  it('replays every fixture without a determinism error', async function () {
    installQuietRuntime();
    const histories = EXPECTED.map((name) => ({
      workflowId: name,
      history: proto.temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(path.join(DIR, `${name}.json`), 'utf8'))),
    }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowBundle: await bundleWorkflows() }, histories)) {
      replayed++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    assert.equal(replayed, EXPECTED.length);
    assert.deepEqual(failures, []);
  });
});

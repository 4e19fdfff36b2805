import assert from 'node:assert/strict';
import { runChaos, type ChaosReport } from '../../bench/chaos/harness.ts';
import { formatReport } from '../../bench/chaos/report.ts';

// The short variant of `npm run chaos`: the same harness (API and worker as processes on a private Postgres, Redis and
// Temporal dev server), 50 tasks (and 3 sent once while Temporal is down), one fault of each kind while they run.

describe('chaos: one fault of each kind while 50 tasks run', function () {
  this.timeout(300_000);
  let report: ChaosReport;

  before(async function () {
    report = await runChaos({
      tasks: 50,
      rate: 2,
      workerKillEveryMs: [3000, 5000],
      maxWorkerKills: 1,
      serviceDownMs: 2000,
      drainTimeoutMs: 60_000,
      log: () => undefined,
    });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && report) process.stderr.write(`${formatReport(report)}\n`);
  });

  const held = (name: string) => {
    const c = report.checks.find((x) => x.name === name);
    assert.ok(c, `no check named "${name}"`);
    assert.ok(c.held, `${c.name}: ${c.detail}\n  ${c.examples.join('\n  ')}`);
  };

  it('injects every kind of fault once', function () {
    const kinds = report.faults.map((f) => f.kind);
    for (const prefix of ['worker SIGKILL', 'API SIGKILL', 'Temporal dev server restart', 'Postgres restart', 'Redis restart']) {
      assert.equal(kinds.filter((k) => k.startsWith(prefix)).length, 1, `one "${prefix}" in ${kinds.join(', ')}`);
    }
  });

  it('every acknowledged task succeeds once, with its result and a gap-free event log', function () {
    assert.deepEqual(report.lost.filter((l) => l.acknowledged), []);
    held('every submission accepted (202)');
    held('one task per Idempotency-Key');
    held('ran where expected (heavy: Space, rest: oracle)');
    held('exactly one result each, readable and correct');
    held('event seq contiguous from 1');
    held('one terminal status, last; one result event');
    held('consent asked exactly for the fallback tasks');
    held('SSE replay = the log, ids 1..n, then closes');
    held('each succeeded task executed by its server');
  });

  it('loses nothing, and every check holds', function () {
    assert.deepEqual(report.lost, []);
    for (const c of report.checks) if (!c.informational) held(c.name);
    assert.ok(report.ok, formatReport(report));
  });
});

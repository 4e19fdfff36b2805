import assert from 'node:assert/strict';
import { startStack, type Stack } from '../support/stack.ts';

// A registered server's input schema is matched against arguments inside the API process, at submission.
describe('a catastrophic-backtracking pattern in a registered schema', function () {
  let stack: Stack;
  let token: string;
  let projectId: string;

  before(async function () {
    // Rejected submissions never reach Temporal; no worker needed.
    stack = await startStack({ worker: false });
    token = await stack.token('mallory');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'redos' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', {
      token,
      body: {
        name: 'evil',
        tools: [{ name: 'evil', inputSchema: { type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' } }, required: ['s'] } }],
      },
    });
    assert.equal(reg.status, 201, reg.text);
  });

  after(async function () {
    await stack?.stop();
  });

  /** Submits `s` while /healthz is asked again and again; how long each took. */
  async function submitWhileProbing(s: string) {
    const started = performance.now();
    const submitting = stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'evil', arguments: { s } } }).then((r) => ({ r, ms: performance.now() - started }));
    let settled = false;
    void submitting.finally(() => (settled = true));
    const healthMs: number[] = [];
    do {
      const t = performance.now();
      const h = await stack.api('GET', '/healthz');
      assert.equal(h.status, 200, h.text);
      healthMs.push(performance.now() - t);
    } while (!settled);
    const { r, ms } = await submitting;
    return { r, submitMs: ms, healthMs: Math.max(...healthMs) };
  }

  it('answers 422 at once and /healthz stays fast meanwhile', async function () {
    // Bounds are generous for a loaded 2-core box; backtracking needs seconds for the short argument and hours for the long one.
    // The short one comes first so that a regression fails here rather than blocking the process (API and test share it).
    const short = await submitWhileProbing('a'.repeat(28) + '!');
    assert.ok(short.submitMs < 1000, `submit took ${short.submitMs.toFixed(0)} ms`);
    assert.ok(short.healthMs < 1000, `/healthz took ${short.healthMs.toFixed(0)} ms`);
    assert.equal(short.r.status, 422, short.r.text);

    const long = await submitWhileProbing('a'.repeat(39) + '!');
    assert.ok(long.submitMs < 1000, `submit took ${long.submitMs.toFixed(0)} ms`);
    assert.ok(long.healthMs < 1000, `/healthz took ${long.healthMs.toFixed(0)} ms`);
    assert.equal(long.r.status, 422, long.r.text);
    assert.match(long.r.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.equal(long.r.body.code, 'InvalidArguments');
    assert.deepEqual(long.r.body.errors, [{ path: 'arguments.s', message: 'must match pattern "^(a+)+$"' }]);
    const tasks = await stack.world.db.selectFrom('tasks').select('id').execute();
    assert.deepEqual(tasks, [], 'a rejected submission writes no task');
  });

  it('still accepts an argument the pattern matches', async function () {
    const { r, submitMs } = await submitWhileProbing('a'.repeat(40));
    assert.equal(r.status, 202, r.text);
    assert.ok(submitMs < 1000, `submit took ${submitMs.toFixed(0)} ms`);
  });
});

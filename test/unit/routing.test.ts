import assert from 'node:assert/strict';
import { planRoute, type RouteCandidate } from '../../src/core/routing.ts';

function candidate(id: string, o: Partial<RouteCandidate['server']> & { heavyTool?: boolean; space?: boolean; health?: RouteCandidate['health']; inFlight?: number } = {}): RouteCandidate {
  const { heavyTool, space, health, inFlight, ...server } = o;
  return {
    server: {
      id,
      name: `srv-${id}`,
      oracleUrl: `http://oracle-${id}/mcp`,
      transport: 'auto',
      healthPath: null,
      canRunOnUserSpace: false,
      fallbackToOracle: false,
      cost: 0,
      maxConcurrency: null,
      ...server,
    },
    tool: { name: 'scan', heavy: heavyTool ?? false, timeoutMs: null },
    ...(space ? { space: { url: `http://space-${id}/mcp` } } : {}),
    ...(health ? { health } : {}),
    ...(inFlight !== undefined ? { inFlight } : {}),
  };
}

const req = (heavy = false) => ({ tool: 'scan', heavy, defaultTimeoutMs: 60_000 });
const summary = (plan: ReturnType<typeof planRoute>) => plan.targets.map((t) => `${t.kind}:${t.serverId}${t.needsConsent ? ':consent' : ''}`);

describe('routing rules', function () {
  it('light task → the oracle, then the next-best candidate', function () {
    assert.deepEqual(summary(planRoute(req(), [candidate('b'), candidate('a')])), ['oracle:a', 'oracle:b']);
  });

  it('light task on a server without an oracle → the bound Space', function () {
    const c = candidate('a', { oracleUrl: null, canRunOnUserSpace: true, space: true });
    assert.deepEqual(summary(planRoute(req(), [c])), ['space:a']);
  });

  it('heavy task with a bound Space → the Space first, the oracle only with consent', function () {
    const c = candidate('a', { canRunOnUserSpace: true, fallbackToOracle: true, space: true });
    const plan = planRoute(req(true), [c]);
    assert.deepEqual(summary(plan), ['space:a', 'oracle:a:consent']);
    assert.equal(plan.targets[0]!.url, 'http://space-a/mcp');
  });

  it('a tool marked heavy in the registry is heavy even if the task does not say so', function () {
    const c = candidate('a', { canRunOnUserSpace: true, fallbackToOracle: true, space: true, heavyTool: true });
    assert.deepEqual(summary(planRoute(req(false), [c])), ['space:a', 'oracle:a:consent']);
  });

  it('heavy task, no Space bound → the oracle with consent, or nothing without fallbackToOracle', function () {
    assert.deepEqual(summary(planRoute(req(true), [candidate('a', { canRunOnUserSpace: true, fallbackToOracle: true })])), ['oracle:a:consent']);
    const none = planRoute(req(true), [candidate('a', { canRunOnUserSpace: true })]);
    assert.deepEqual(none.targets, []);
    assert.match(none.note!, /bind a Space/);
  });

  it('heavy task on a server that cannot use Spaces → its oracle, no consent', function () {
    assert.deepEqual(summary(planRoute(req(true), [candidate('a')])), ['oracle:a']);
  });

  it('targets needing consent come after every target that needs none', function () {
    const a = candidate('a', { canRunOnUserSpace: true, fallbackToOracle: true, space: true });
    const b = candidate('b', { canRunOnUserSpace: true, fallbackToOracle: true, space: true });
    assert.deepEqual(summary(planRoute(req(true), [b, a])), ['space:a', 'space:b', 'oracle:a:consent', 'oracle:b:consent']);
  });

  it('a recently unhealthy, loaded or costly server ranks lower; stale health is ignored', function () {
    const sick = candidate('a', { health: { oracle: { healthy: false, ageMs: 1000 } } });
    assert.deepEqual(summary(planRoute(req(), [sick, candidate('b')])), ['oracle:b', 'oracle:a']);
    const stale = candidate('a', { health: { oracle: { healthy: false, ageMs: 10 * 60_000 } } });
    assert.deepEqual(summary(planRoute(req(), [stale, candidate('b')])), ['oracle:a', 'oracle:b']);
    const busy = candidate('a', { maxConcurrency: 2, inFlight: 2 });
    assert.deepEqual(summary(planRoute(req(), [busy, candidate('b')])), ['oracle:b', 'oracle:a']);
    assert.deepEqual(summary(planRoute(req(), [candidate('a', { cost: 5 }), candidate('b', { cost: 1 })])), ['oracle:b', 'oracle:a']);
  });

  it('a server with no health record never outranks one recently seen healthy, whatever its cost or load', function () {
    const established = candidate('z', { cost: 50, maxConcurrency: 1, inFlight: 1, health: { oracle: { healthy: true, latencyMs: 9000, ageMs: 1000 } } });
    const newcomer = candidate('a');
    assert.deepEqual(summary(planRoute(req(), [newcomer, established])), ['oracle:z', 'oracle:a']);
    // A failing server still ranks below one nobody has seen yet.
    const failing = candidate('b', { health: { oracle: { healthy: false, ageMs: 1000 } } });
    assert.deepEqual(summary(planRoute(req(), [failing, newcomer])), ['oracle:a', 'oracle:b']);
  });

  it('heavy work meant for the user\'s Space needs consent on every oracle, not only its own server\'s', function () {
    const own = candidate('a', { canRunOnUserSpace: true, fallbackToOracle: true, space: true });
    const other = candidate('b');
    assert.deepEqual(summary(planRoute(req(true), [own, other])), ['space:a', 'oracle:a:consent', 'oracle:b:consent']);
    // No Space bound: still meant for the user's Space, so another server's oracle needs consent too.
    const unbound = candidate('a', { canRunOnUserSpace: true });
    assert.deepEqual(summary(planRoute(req(true), [unbound, other])), ['oracle:b:consent']);
    // Light work, or heavy work no candidate would run on a Space, moves freely.
    assert.deepEqual(summary(planRoute(req(false), [own, other])), ['oracle:a', 'oracle:b']);
    assert.deepEqual(summary(planRoute(req(true), [candidate('c'), other])), ['oracle:b', 'oracle:c']);
  });

  it('no candidates → an empty plan that says why', function () {
    const plan = planRoute(req(), []);
    assert.deepEqual(plan.targets, []);
    assert.match(plan.note!, /no enabled server offers the tool "scan"/);
  });

  it('uses the tool timeout when set, else the default', function () {
    const c = candidate('a');
    c.tool.timeoutMs = 1234;
    assert.equal(planRoute(req(), [c]).targets[0]!.timeoutMs, 1234);
    assert.equal(planRoute(req(), [candidate('a')]).targets[0]!.timeoutMs, 60_000);
  });

  it('marks an oracle fresh only when seen healthy within PROBE_FRESH, never a Space', function () {
    const fresh = { tool: 'scan', heavy: false, defaultTimeoutMs: 60_000, probeFreshMs: 2000 };
    const seen = (healthy: boolean, ageMs: number) => candidate('a', { canRunOnUserSpace: true, space: true, heavyTool: true, fallbackToOracle: true, health: { oracle: { healthy, ageMs }, space: { healthy: true, ageMs: 10 } } });
    const flags = (plan: ReturnType<typeof planRoute>) => plan.targets.map((t) => `${t.kind}:${t.fresh === true}`);
    assert.deepEqual(flags(planRoute(fresh, [seen(true, 500)])), ['space:false', 'oracle:true']);
    assert.deepEqual(flags(planRoute(fresh, [seen(true, 2000)])), ['space:false', 'oracle:false'], 'too old');
    assert.deepEqual(flags(planRoute(fresh, [seen(false, 10)])), ['space:false', 'oracle:false'], 'seen failing');
    assert.deepEqual(flags(planRoute(req(), [candidate('a', { health: { oracle: { healthy: true, ageMs: 1 } } })])), ['oracle:false'], 'no PROBE_FRESH given');
  });

  it("marks only the oracle of a server acting as the user: a Space gets its own token, never the user's GitHub one", function () {
    const c = candidate('a', { actsAs: 'github', canRunOnUserSpace: true, fallbackToOracle: true, space: true, heavyTool: true });
    const plan = planRoute(req(true), [c]);
    assert.deepEqual(plan.targets.map((t) => `${t.kind}:${t.actsAs ?? '-'}`), ['space:-', 'oracle:github']);
    assert.deepEqual(planRoute(req(), [candidate('b')]).targets.map((t) => t.actsAs), [undefined], 'an ordinary server acts as no one');
  });
});

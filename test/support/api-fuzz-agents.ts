import fc from 'fast-check';

// Generators for the agent routes, merged into routeGenerators (api-fuzz.ts): definitions that are valid DAGs, and
// the same mutated into cycles, unknown references, huge or hostile values.

export interface AgentFuzzParts {
  /** A path segment generator for project ids (the first belongs to the first token's user). */
  project: fc.Arbitrary<string>;
  /** Any-string generator (with hostile values). */
  text: fc.Arbitrary<string>;
  /** Arbitrary JSON values. */
  jsonValue: fc.Arbitrary<unknown>;
  body: (valid: fc.Arbitrary<Record<string, unknown>>) => fc.Arbitrary<{ body: unknown }>;
  seg: (a: fc.Arbitrary<string>) => fc.Arbitrary<string>;
  agentNames: string[];
  agentRunIds: string[];
}

export function agentRouteGenerators(p: AgentFuzzParts): Record<string, fc.Arbitrary<{ path: string; body?: unknown; headers?: Record<string, string> }>> {
  const stepId = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('a', 'b', 'c') }, { weight: 1, arbitrary: p.text });
  const refPath = fc.oneof(
    fc.constantFrom('input.text', 'input', 'steps.a.output', 'steps.b.output.x', 'item', 'item.0', 'steps.a.output.0.x', 'nowhere', 'steps..output'),
    p.text,
  );
  const argValue = fc.oneof(p.jsonValue, refPath.map(($ref) => ({ $ref })));
  const step = fc.record(
    {
      id: stepId,
      tool: fc.oneof(fc.constantFrom('echo', 'whoami', 'slow'), p.text),
      kind: fc.oneof(fc.constantFrom('tool', 'value', 'kg.upsert'), p.text),
      arguments: fc.dictionary(fc.constantFrom('text', 'ms', 'x'), argValue, { maxKeys: 3 }),
      dependsOn: fc.array(stepId, { maxLength: 3 }),
      heavy: fc.boolean(),
      consentToOracle: fc.boolean(),
      forEach: refPath.map(($ref) => ({ $ref })),
    },
    { requiredKeys: ['id', 'arguments'] },
  );
  const definition = fc.record(
    {
      description: p.text,
      inputSchema: fc.oneof(fc.constant({ type: 'object', properties: { text: { type: 'string' } } }), fc.dictionary(fc.string({ maxLength: 8 }), p.jsonValue, { maxKeys: 3 })),
      steps: fc.array(step, { minLength: 1, maxLength: 4 }),
    },
    { requiredKeys: ['steps'] },
  );
  const agentName = p.seg(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...p.agentNames) }, { weight: 1, arbitrary: p.text }));
  const run = p.seg(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...(p.agentRunIds.length > 0 ? p.agentRunIds : ['00000000-0000-4000-8000-000000000000'])) }, { weight: 1, arbitrary: p.text }));
  const newName = fc.oneof(fc.string({ unit: fc.constantFrom(...'abc123-_'), minLength: 1, maxLength: 10 }), p.text);

  return {
    'POST /v1/projects/:id/agents/:name/runs': fc
      .tuple(p.project, agentName, p.body(fc.record({ input: p.jsonValue }, { requiredKeys: [] })), fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: undefined }))
      .map(([pr, n, b, key]) => ({ path: `/v1/projects/${pr}/agents/${n}/runs`, ...b, ...(key !== undefined ? { headers: { 'Idempotency-Key': encodeURIComponent(key) } } : {}) })),
    'GET /v1/agent-runs/:id': run.map((r) => ({ path: `/v1/agent-runs/${r}` })),
    'POST /v1/agent-runs/:id/consent': fc.tuple(run, p.body(fc.record({ grant: fc.boolean() }))).map(([r, b]) => ({ path: `/v1/agent-runs/${r}/consent`, ...b })),
    'GET /v1/agent-runs/:id/events': fc
      .tuple(run, fc.option(fc.oneof(fc.nat().map(String), fc.constantFrom('2147483648', '9007199254740993', '-1', 'abc', '1e3')), { nil: undefined }))
      .map(([r, last]) => ({ path: `/v1/agent-runs/${r}/events`, ...(last !== undefined ? { headers: { 'Last-Event-ID': last } } : {}) })),
    'POST /v1/agent-runs/:id/cancel': run.map((r) => ({ path: `/v1/agent-runs/${r}/cancel` })),
    'POST /v1/projects/:id/agents': fc
      .tuple(p.project, fc.tuple(newName, definition).chain(([name, def]) => p.body(fc.constant({ name, ...def }))))
      .map(([pr, b]) => ({ path: `/v1/projects/${pr}/agents`, ...b })),
    'GET /v1/projects/:id/agents': p.project.map((pr) => ({ path: `/v1/projects/${pr}/agents` })),
    'GET /v1/projects/:id/agents/:name': fc.tuple(p.project, agentName).map(([pr, n]) => ({ path: `/v1/projects/${pr}/agents/${n}` })),
    'PUT /v1/projects/:id/agents/:name': fc.tuple(p.project, agentName, p.body(definition)).map(([pr, n, b]) => ({ path: `/v1/projects/${pr}/agents/${n}`, ...b })),
    'DELETE /v1/projects/:id/agents/:name': fc.tuple(p.project, p.seg(fc.oneof(fc.constant('doomed-agent'), p.text))).map(([pr, n]) => ({ path: `/v1/projects/${pr}/agents/${n}` })),
  };
}

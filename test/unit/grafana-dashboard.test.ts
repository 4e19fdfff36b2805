import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { collectProcessMetrics, createMetrics, registerActiveTaskGauge } from '../../src/lib/metrics.ts';

// The dashboard is JSON that nothing compiles: a renamed metric or label would leave an empty panel unnoticed. This
// checks every query against the metrics the processes really register.

interface Target {
  expr: string;
  legendFormat?: string;
}
interface Panel {
  id: number;
  title: string;
  targets: Target[];
}

const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana/orchestrator-dashboard.json', import.meta.url), 'utf8')) as { uid: string; panels: Panel[] };

function registeredMetrics(): Registry {
  const registry = new Registry();
  createMetrics(registry);
  registerActiveTaskGauge(registry, async () => ({}), ['queued']);
  collectProcessMetrics(registry);
  return registry;
}

/** The metric a series name belongs to, and whether it is a histogram's _bucket series (which adds `le`). */
function metricOf(registry: Registry, series: string): { labelNames: string[]; bucket: boolean } | undefined {
  const direct = registry.getSingleMetric(series);
  if (direct) return { labelNames: [...((direct as unknown as { labelNames?: string[] }).labelNames ?? [])], bucket: false };
  const m = series.match(/^(.*)_(bucket|count|sum)$/);
  const histogram = m ? registry.getSingleMetric(m[1]!) : undefined;
  if (!histogram) return undefined;
  return { labelNames: [...((histogram as unknown as { labelNames?: string[] }).labelNames ?? [])], bucket: m![2] === 'bucket' };
}

describe('Grafana dashboard', function () {
  const registry = registeredMetrics();

  it('has panels with unique ids, each with at least one query', function () {
    assert.equal(dashboard.uid, 'orchestrator');
    assert.ok(dashboard.panels.length >= 8);
    assert.equal(new Set(dashboard.panels.map((p) => p.id)).size, dashboard.panels.length);
    for (const p of dashboard.panels) assert.ok(p.targets.length > 0, p.title);
  });

  it('queries only metrics and labels the processes register', function () {
    for (const panel of dashboard.panels) {
      for (const { expr, legendFormat } of panel.targets) {
        const series = [...expr.matchAll(/\b((?:orchestrator|process)_[a-z_]+)\b/g)].map((m) => m[1]!);
        assert.ok(series.length > 0, `${panel.title}: ${expr} names no metric`);
        const known = new Set<string>(['instance', 'job']);
        for (const name of series) {
          const metric = metricOf(registry, name);
          assert.ok(metric, `${panel.title}: ${name} is not a registered metric`);
          for (const label of metric.labelNames) known.add(label);
          if (metric.bucket) known.add('le');
        }
        const used = [
          ...[...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim())),
          ...[...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/(\w+)\s*=~?/g)].map((l) => l[1]!)),
        ];
        for (const label of used) assert.ok(known.has(label), `${panel.title}: label ${label} is not on ${series.join(', ')}`);
        for (const m of (legendFormat ?? '').matchAll(/\{\{(\w+)\}\}/g)) assert.ok(known.has(m[1]!), `${panel.title}: legend label ${m[1]}`);
      }
    }
  });

  it('covers tasks by status and outcome, dispatch latency, consent and slot waits, rate limits and streams', function () {
    const all = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const name of [
      'orchestrator_tasks_active',
      'orchestrator_tasks_total',
      'orchestrator_dispatch_duration_seconds_bucket',
      'status="awaiting_consent"',
      'orchestrator_slot_attempts_total',
      'orchestrator_rate_limit_rejections_total',
      'orchestrator_sse_streams_open',
    ]) {
      assert.ok(all.includes(name), `no panel queries ${name}`);
    }
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { KPI_IDS, type KpiReport } from '../../src/domain/kpi.ts';
import { METRICS, METRIC_NAMES, SERIES_NAMES } from '../../src/metrics/names.ts';
import { GatewayMetrics, WorkerMetrics } from '../../src/metrics/registry.ts';

const dashboard = JSON.parse(fs.readFileSync(path.join(projectRoot, 'deploy', 'grafana', 'ai-factory.json'), 'utf8')) as {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
};
const PROMQL_FUNCTIONS = new Set(['sum', 'rate', 'increase', 'histogram_quantile', 'time', 'max', 'min', 'avg']);

/** The metric names an expression reads: what is left without label matchers, `by (…)` groupings, ranges, numbers and PromQL's functions. */
function referenced(expr: string): string[] {
  const bare = expr
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((w) => !PROMQL_FUNCTIONS.has(w));
}

describe('metrics: one list of names', () => {
  it('every metric the Grafana dashboard reads is one we export, and it shows every KPI', () => {
    const used = dashboard.panels.flatMap((p) => p.targets.flatMap((t) => referenced(t.expr)));
    expect(used.length).toBeGreaterThan(10);
    for (const name of used) expect(SERIES_NAMES.has(name), name).toBe(true);
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const id of KPI_IDS) expect(exprs, id).toContain(`kpi="${id}"`);
    for (const m of METRICS) expect(exprs, `${m.name} is on no panel`).toContain(m.name);
  });

  it('the registries export exactly the listed metrics, named as listed', async () => {
    const gw = new GatewayMetrics();
    const wk = new WorkerMetrics();
    const names = [...(await gw.registry.getMetricsAsJSON()), ...(await wk.registry.getMetricsAsJSON())].map((m) => m.name).sort();
    expect(names).toEqual([...METRIC_NAMES].sort());
  });

  it('a refused request with a hostile model name mints no series of its own; served requests count by model and version', async () => {
    const gw = new GatewayMetrics();
    gw.request({ model_name: 'credit', model_version: 3, status: 200, outcome: 'served', latency_ms: 12 });
    gw.request({ model_name: 'credit', model_version: 3, status: 200, outcome: 'served', latency_ms: 30 });
    gw.request({ model_name: '../\u001b[31m', model_version: null, status: 401, outcome: 'refused', latency_ms: 1 });
    gw.batch(3, 4);
    const text = await gw.registry.metrics();
    expect(text).toContain('factory_gateway_requests_total{model="credit",version="3",status="200",outcome="served"} 2');
    expect(text).toContain('factory_gateway_requests_total{model="-",version="-",status="401",outcome="refused"} 1');
    expect(text).toContain('factory_gateway_request_duration_seconds_count{model="credit",outcome="served"} 2');
    expect(text).toContain('factory_gateway_request_log_rows_total 3');
    expect(text).not.toContain('\u001b');
  });

  it('the KPI gauges come from one cached report per interval, and a failed computation is retried at the next scrape', async () => {
    let calls = 0;
    let fail = true;
    const report = (): KpiReport => ({
      asOf: '2026-11-27T12:00:00.000Z',
      since: '2026-10-28T12:00:00.000Z',
      policyDigest: 'sha256:x',
      kpis: Object.fromEntries(
        KPI_IDS.map((id) => [
          id,
          {
            id,
            title: id,
            value: id === 'auditLogCompleteness' ? null : 0.5,
            unit: 'ratio',
            numerator: 1,
            denominator: 2,
            goal: { op: '>=', value: 1, source: 't' },
            met: false,
            detail: {},
          },
        ]),
      ) as unknown as KpiReport['kpis'],
    });
    const wk = new WorkerMetrics({
      kpis: async () => {
        calls++;
        if (fail) throw new Error('database down');
        return report();
      },
      kpiIntervalMs: 60_000,
    });
    expect(await wk.registry.metrics()).not.toContain('factory_kpi_value{');
    fail = false;
    const text = await wk.registry.metrics();
    expect(text).toContain('factory_kpi_value{kpi="lineageCompleteness",unit="ratio"} 0.5');
    expect(text).not.toContain('kpi="auditLogCompleteness",unit');
    expect(text).toContain('factory_kpi_denominator{kpi="rollbackTime"} 2');
    await wk.registry.metrics();
    expect(calls).toBe(2);
  });

  it('counts lifecycles from the audit events their activities appended, and activity failures by type', async () => {
    const wk = new WorkerMetrics();
    wk.activity('appendAudit', 'control', 0.01, true, { kind: 'lifecycle.started' });
    wk.activity('appendAudit', 'control', 0.01, true, { kind: 'model.deployed' });
    wk.activity('appendAudit', 'control', 0.01, false, { kind: 'model.rejected' });
    wk.activity('trainModel', 'gpu-onprem', 12, false);
    const text = await wk.registry.metrics();
    expect(text).toContain('factory_lifecycles_started_total 1');
    expect(text).toContain('factory_lifecycles_completed_total{outcome="deployed"} 1');
    expect(text).not.toContain('outcome="rejected"');
    expect(text).toContain('factory_activity_failures_total{activity_type="trainModel",task_queue="gpu-onprem"} 1');
    expect(text).toContain('factory_activity_duration_seconds_count{activity_type="appendAudit",task_queue="control",outcome="completed"} 2');
  });
});

describe('metrics: documented', () => {
  it('README names every exported metric', () => {
    const readme = fs.readFileSync(path.join(projectRoot, 'README.md'), 'utf8');
    for (const m of METRICS) expect(readme, m.name).toContain(`\`${m.name}\``);
  });
});

import http from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KpiReport } from '../domain/kpi.ts';
import { KPI_IDS } from '../domain/kpi.ts';
import { METRICS, type MetricName } from './names.ts';

/**
 * Prometheus metrics with prom-client (docs/design.md, "Metrics"): each registry is built from the one
 * list in names.ts, so nothing is exported that README and the Grafana dashboard do not name.
 */
type AnyMetric = Counter | Gauge | Histogram;

function build(exporter: 'gateway' | 'worker', collects: Partial<Record<MetricName, (g: Gauge) => Promise<void>>> = {}) {
  const registry = new Registry();
  const byName = new Map<string, AnyMetric>();
  for (const spec of METRICS) {
    if (spec.exporter !== exporter) continue;
    const base = { name: spec.name, help: spec.help, labelNames: [...spec.labels], registers: [registry] };
    const collect = collects[spec.name];
    const m =
      spec.type === 'counter'
        ? new Counter(base)
        : spec.type === 'histogram'
          ? new Histogram({ ...base, buckets: [...('buckets' in spec ? spec.buckets : [])] })
          : new Gauge({
              ...base,
              ...(collect
                ? {
                    async collect(this: Gauge) {
                      await collect(this);
                    },
                  }
                : {}),
            });
    byName.set(spec.name, m);
  }
  const get = <T extends AnyMetric>(name: MetricName) => byName.get(name) as T;
  return { registry, get };
}

/** A model name as a label: only names the gateway accepted as one (a hostile URL cannot mint series). */
const MODEL_LABEL = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export class GatewayMetrics {
  readonly registry: Registry;
  private readonly requests: Counter;
  private readonly latency: Histogram;
  private readonly commit: Histogram;
  private readonly rows: Counter;
  constructor() {
    const { registry, get } = build('gateway');
    this.registry = registry;
    this.requests = get('factory_gateway_requests_total');
    this.latency = get('factory_gateway_request_duration_seconds');
    this.commit = get('factory_gateway_request_log_commit_seconds');
    this.rows = get('factory_gateway_request_log_rows_total');
  }

  /** One logged request (after its row committed). Labels are bounded: the model only if it was a valid name, the version only when routed. */
  request(row: { model_name?: string | null; model_version?: number | null; status: number; outcome: string; latency_ms: number }): void {
    const model = row.model_name && MODEL_LABEL.test(row.model_name) ? row.model_name : '-';
    this.requests.inc({
      model,
      version: row.model_version === null || row.model_version === undefined ? '-' : String(row.model_version),
      status: String(row.status),
      outcome: row.outcome,
    });
    this.latency.observe({ model, outcome: row.outcome }, row.latency_ms / 1000);
  }

  batch(rows: number, millis: number): void {
    this.commit.observe(millis / 1000);
    this.rows.inc(rows);
  }
}

/** The activity types whose completion is a lifecycle figure: the audit event it appended. */
const LIFECYCLE_EVENTS: Record<string, { started?: true; outcome?: string }> = {
  'lifecycle.started': { started: true },
  'model.deployed': { outcome: 'deployed' },
  'model.rejected': { outcome: 'rejected' },
};

export interface WorkerMetricsOptions {
  /** Computes the KPI report (computeKpis on the worker's database); absent: no KPI gauges are set. */
  kpis?: () => Promise<KpiReport>;
  /** Recompute the KPIs at most this often (a scrape in between is answered from the cache). */
  kpiIntervalMs?: number;
  onKpiError?: (err: Error) => void;
}

export class WorkerMetrics {
  readonly registry: Registry;
  private readonly duration: Histogram;
  private readonly failures: Counter;
  private readonly started: Counter;
  private readonly completed: Counter;
  private cached?: { at: number; report: Promise<KpiReport | undefined> };

  constructor(private readonly opts: WorkerMetricsOptions = {}) {
    const kpiGauge = (set: (g: Gauge, r: KpiReport) => void) => async (g: Gauge) => {
      const r = await this.report();
      g.reset();
      if (r) set(g, r);
    };
    const { registry, get } = build('worker', {
      factory_kpi_value: kpiGauge((g, r) => {
        for (const id of KPI_IDS) if (r.kpis[id].value !== null) g.set({ kpi: id, unit: r.kpis[id].unit }, r.kpis[id].value!);
      }),
      factory_kpi_numerator: kpiGauge((g, r) => {
        for (const id of KPI_IDS) if (r.kpis[id].numerator !== null) g.set({ kpi: id }, r.kpis[id].numerator!);
      }),
      factory_kpi_denominator: kpiGauge((g, r) => {
        for (const id of KPI_IDS) if (r.kpis[id].denominator !== null) g.set({ kpi: id }, r.kpis[id].denominator!);
      }),
      factory_kpi_goal: kpiGauge((g, r) => {
        for (const id of KPI_IDS) if (r.kpis[id].goal) g.set({ kpi: id }, r.kpis[id].goal!.value);
      }),
      factory_kpi_computed_timestamp_seconds: kpiGauge((g, r) => g.set(Date.parse(r.asOf) / 1000)),
    });
    this.registry = registry;
    this.duration = get('factory_activity_duration_seconds');
    this.failures = get('factory_activity_failures_total');
    this.started = get('factory_lifecycles_started_total');
    this.completed = get('factory_lifecycles_completed_total');
  }

  /** The KPI report, recomputed at most every kpiIntervalMs (one computation shared by every gauge of a scrape). */
  private report(): Promise<KpiReport | undefined> {
    if (!this.opts.kpis) return Promise.resolve(undefined);
    const now = Date.now();
    if (!this.cached || now - this.cached.at >= (this.opts.kpiIntervalMs ?? 60_000)) {
      this.cached = {
        at: now,
        report: this.opts.kpis().catch((err: Error) => {
          this.opts.onKpiError?.(err);
          this.cached = undefined; // a failed computation is not cached: the next scrape tries again
          return undefined;
        }),
      };
    }
    return this.cached.report;
  }

  /** One activity execution; `input` is its first argument (an audit event for appendAudit). */
  activity(type: string, taskQueue: string, seconds: number, ok: boolean, input?: unknown): void {
    this.duration.observe({ activity_type: type, task_queue: taskQueue, outcome: ok ? 'completed' : 'failed' }, seconds);
    if (!ok) this.failures.inc({ activity_type: type, task_queue: taskQueue });
    if (ok && type === 'appendAudit') {
      const kind = (input as { kind?: unknown } | undefined)?.kind;
      const fig = typeof kind === 'string' ? LIFECYCLE_EVENTS[kind] : undefined;
      if (fig?.started) this.started.inc();
      if (fig?.outcome) this.completed.inc({ outcome: fig.outcome });
    }
  }
}

/** Serves GET /metrics of a registry on host:port (the worker's FACTORY_METRICS_PORT); anything else is 404. */
export async function serveMetrics(registry: Registry, port: number, host = '127.0.0.1'): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

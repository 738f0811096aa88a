/**
 * Every Prometheus metric the factory exports: the one list the registries are built from, the README
 * table and the Grafana dashboard test read. Names and labels are public API (README, "Metrics").
 * Pure: no prom-client here, so docs and tests can read it without a registry.
 */
export interface MetricSpec {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  help: string;
  labels: readonly string[];
  /** Who exports it. */
  exporter: 'gateway' | 'worker';
  buckets?: readonly number[];
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
const ACTIVITY_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600] as const;

export const METRICS = [
  {
    name: 'factory_gateway_requests_total',
    type: 'counter',
    help: 'Gateway requests logged, by model, version, HTTP status and outcome (served, refused, failed); model "-" when the name was not a valid model name',
    labels: ['model', 'version', 'status', 'outcome'],
    exporter: 'gateway',
  },
  {
    name: 'factory_gateway_request_duration_seconds',
    type: 'histogram',
    help: 'Gateway request latency as logged (latency_ms), by model and outcome',
    labels: ['model', 'outcome'],
    exporter: 'gateway',
    buckets: LATENCY_BUCKETS,
  },
  {
    name: 'factory_gateway_request_log_commit_seconds',
    type: 'histogram',
    help: 'Time to commit one group-commit batch of the request log (rows and payloads)',
    labels: [],
    exporter: 'gateway',
    buckets: LATENCY_BUCKETS,
  },
  {
    name: 'factory_gateway_request_log_rows_total',
    type: 'counter',
    help: 'Request log rows committed',
    labels: [],
    exporter: 'gateway',
  },
  {
    name: 'factory_activity_duration_seconds',
    type: 'histogram',
    help: 'Activity execution time on this worker, by activity type, task queue and outcome (completed, failed)',
    labels: ['activity_type', 'task_queue', 'outcome'],
    exporter: 'worker',
    buckets: ACTIVITY_BUCKETS,
  },
  {
    name: 'factory_activity_failures_total',
    type: 'counter',
    help: 'Activity executions that failed (each attempt), by activity type and task queue',
    labels: ['activity_type', 'task_queue'],
    exporter: 'worker',
  },
  {
    name: 'factory_lifecycles_started_total',
    type: 'counter',
    help: 'Lifecycles started (their lifecycle.started event recorded by this worker)',
    labels: [],
    exporter: 'worker',
  },
  {
    name: 'factory_lifecycles_completed_total',
    type: 'counter',
    help: 'Lifecycles that reached a verdict (model.deployed or model.rejected recorded by this worker), by outcome',
    labels: ['outcome'],
    exporter: 'worker',
  },
  {
    name: 'factory_kpi_value',
    type: 'gauge',
    help: 'Each KPI of `factory kpi` (default window), by kpi id and unit (ratio, ms, count); absent while it has no value',
    labels: ['kpi', 'unit'],
    exporter: 'worker',
  },
  {
    name: 'factory_kpi_numerator',
    type: 'gauge',
    help: 'Numerator of a KPI of `factory kpi`, by kpi id',
    labels: ['kpi'],
    exporter: 'worker',
  },
  {
    name: 'factory_kpi_denominator',
    type: 'gauge',
    help: 'Denominator of a KPI of `factory kpi`, by kpi id',
    labels: ['kpi'],
    exporter: 'worker',
  },
  {
    name: 'factory_kpi_goal',
    type: 'gauge',
    help: 'Goal of a KPI of `factory kpi` (from the policy pack or 100%), by kpi id',
    labels: ['kpi'],
    exporter: 'worker',
  },
  {
    name: 'factory_kpi_computed_timestamp_seconds',
    type: 'gauge',
    help: 'When the KPI gauges were last computed (they are cached between scrapes)',
    labels: [],
    exporter: 'worker',
  },
] as const satisfies readonly MetricSpec[];

export type MetricName = (typeof METRICS)[number]['name'];
export const METRIC_NAMES: ReadonlySet<string> = new Set(METRICS.map((m) => m.name));

/** The series names a metric exposes (a histogram's _bucket, _sum and _count). */
export function seriesNames(m: Pick<MetricSpec, 'name' | 'type'>): string[] {
  return m.type === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name];
}
export const SERIES_NAMES: ReadonlySet<string> = new Set(METRICS.flatMap(seriesNames));

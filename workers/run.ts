/**
 * Worker entrypoint: `node --import tsx workers/run.ts [queue ...]` runs one worker per named task
 * queue in this process (all queues when none is named, as `factory dev up` does).
 */
import { NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { loadEnv } from '../src/config/env.ts';
import { ALL_TASK_QUEUES, type TaskQueue } from '../src/domain/task-queues.ts';
import { createLogger } from '../src/log.ts';
import { loadPolicyPack, policyPackPath } from '../src/policy/pack.ts';
import { writeWorkerReady } from '../src/process/worker-ready.ts';
import { closeActivityDeps } from '../activities/deps.ts';
import { startServingReconciler } from '../activities/serving.ts';
import { createWorker } from './worker.ts';
import { createEnvDb } from '../src/db/connect.ts';
import { computeKpis } from '../src/kpi/kpis.ts';
import { WorkerMetrics, serveMetrics } from '../src/metrics/registry.ts';
import { temporalCredentials } from '../src/temporal.ts';

const env = loadEnv();
const log = createLogger('worker', env.LOG_LEVEL);
const requested = process.argv.slice(2);
// The GPU zones are the policy pack's (gpu-onprem, gpu-burst …): a worker polls only a zone the pack knows.
const known = [...new Set<string>([...ALL_TASK_QUEUES, ...loadPolicyPack(policyPackPath()).pack.zones.map((z) => z.name)])];
const unknown = requested.filter((q) => !known.includes(q));
if (unknown.length) {
  log.fatal({ unknown, known }, 'unknown task queue');
  process.exit(2);
}
const queues = (requested.length ? requested : ALL_TASK_QUEUES) as TaskQueue[];

Runtime.install({ telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } } });
const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS, ...temporalCredentials(env) });
const metrics = env.FACTORY_METRICS_PORT === undefined ? undefined : await startMetrics(env.FACTORY_METRICS_PORT);
const workers = await Promise.all(queues.map((q) => createWorker(env, q, connection, metrics?.metrics)));
log.info({ queues, prefix: env.FACTORY_TASK_QUEUE_PREFIX, address: env.TEMPORAL_ADDRESS }, 'workers polling');
const running = Promise.all(workers.map((w) => w.run()));
// The serving zone also keeps Triton serving what the registry says is deployed (after a Triton restart).
const reconciler = queues.includes('serving') ? startServingReconciler() : undefined;
// Tells `factory dev up` that this process polls every queue (Temporal's poller list lags behind).
// It also names the policy pack this process loaded: `dev up` restarts workers whose pack changed.
if (process.env.FACTORY_WORKER_READY_FILE) writeWorkerReady(process.env.FACTORY_WORKER_READY_FILE);
await running;
await reconciler?.stop();
await metrics?.stop();
await connection.close();
await closeActivityDeps();
log.info('workers stopped');

/**
 * Prometheus metrics of this process (FACTORY_METRICS_PORT): its activities and lifecycles, and the KPI
 * gauges, computed by computeKpis (default window, no history cross-check: that costs a history read
 * per lifecycle) on a read-only connection, at most every FACTORY_METRICS_KPI_SECONDS.
 */
async function startMetrics(port: number) {
  const db = createEnvDb(env, 1, 'reader');
  const metrics = new WorkerMetrics({
    kpis: () => computeKpis(db),
    kpiIntervalMs: env.FACTORY_METRICS_KPI_SECONDS * 1000,
    onKpiError: (err) => log.warn({ err: err.message }, 'KPI gauges not computed'),
  });
  const server = await serveMetrics(metrics.registry, port, env.FACTORY_METRICS_HOST);
  log.info({ port, host: env.FACTORY_METRICS_HOST }, 'metrics served at /metrics');
  return {
    metrics,
    stop: async () => {
      await new Promise((resolve) => server.close(resolve));
      await db.destroy();
    },
  };
}

/**
 * Lifecycle throughput and control-plane overhead, against a baseline measured in the same run.
 *
 *   npm run bench -- [--n 5] [--epochs 50] [--trace-samples 200]
 *
 * For N lifecycles (low risk, short training, approved by the bench as soon as the gate opens) it
 * prints lifecycles per minute and the control-plane time per lifecycle: wall time minus the time
 * spent inside activities and waiting for the approver. The baseline is a bare workflow running the
 * same number of no-op activities on the same server and workers; the ratio is the governance
 * overhead of the lifecycle's workflow code. Then p50/p99 of `trace` (library call and CLI process).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { closeActivityDeps } from '../activities/deps.ts';
import { loadEnv, projectRoot } from '../src/config/env.ts';
import { createEnvDb } from '../src/db/connect.ts';
import { stackUp } from '../src/dev/stack.ts';
import { ALL_TASK_QUEUES } from '../src/domain/task-queues.ts';
import { benchLifecycleInput } from './lifecycle-input.ts';
import { approvalStatus, decide, startLifecycle } from '../src/lifecycle/client.ts';
import { createLogger } from '../src/log.ts';
import { connectClient } from '../src/temporal.ts';
import { traceModel } from '../src/trace/trace.ts';
import { createWorker } from '../workers/worker.ts';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '5' }, epochs: { type: 'string', default: '50' }, 'trace-samples': { type: 'string', default: '200' } },
});
const N = Number(values.n);
const EPOCHS = Number(values.epochs);
const TRACE_SAMPLES = Number(values['trace-samples']);

const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

interface Timing {
  wallMs: number;
  activityMs: number;
  humanMs: number;
  activities: number;
}

/** Splits a closed workflow's time into activity execution, human waiting and the rest (control plane). */
async function timingOf(client: Client, workflowId: string): Promise<Timing> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const started = new Map<string, number>();
  let activityMs = 0;
  let activities = 0;
  let gateOpened: number | undefined;
  let humanMs = 0;
  for (const e of events) {
    const t = ms(e.eventTime);
    if (e.activityTaskStartedEventAttributes) started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), t);
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      activityMs += t - (started.get(String(done.scheduledEventId)) ?? t);
      activities += 1;
      const scheduled = events.find((x) => String(x.eventId) === String(done.scheduledEventId));
      const input = scheduled?.activityTaskScheduledEventAttributes?.input?.payloads?.[0]?.data;
      if (input && Buffer.from(input).toString().includes('"step":"approval.requested"')) gateOpened = t;
    }
    if (e.workflowExecutionUpdateAcceptedEventAttributes && gateOpened !== undefined) {
      humanMs += t - gateOpened;
      gateOpened = undefined;
    }
  }
  const wallMs = ms(events.at(-1)?.eventTime) - ms(events[0]?.eventTime);
  return { wallMs, activityMs, humanMs, activities };
}

async function runLifecycle(client: Client, prefix: string, modelName: string): Promise<string> {
  const { workflowId } = await startLifecycle(client, benchLifecycleInput(modelName, EPOCHS), { taskQueuePrefix: prefix });
  for (;;) {
    const s = await approvalStatus(client, workflowId).catch(() => undefined);
    if (s?.stage === 'approval' && s.modelDigest) {
      await decide(client, workflowId, {
        decision: 'approve',
        approver: 'omar@hospital.example',
        role: 'model-owner',
        meaning: 'approval',
        modelDigest: s.modelDigest,
      });
      break;
    }
    if (s?.stage === 'rejected') throw new Error(`bench lifecycle rejected: ${s.outcome}`);
    await sleep(50);
  }
  await client.workflow.getHandle(workflowId).result();
  return workflowId;
}

const env = loadEnv();
const log = createLogger('bench', 'warn');
await stackUp({ env, log }, { onProgress: (m) => console.error(`[stack] ${m}`) });
Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } } });
const prefix = `bench${randomBytes(3).toString('hex')}-`;
const benchEnv = { ...env, FACTORY_TASK_QUEUE_PREFIX: prefix };
const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS });
const workers = await Promise.all(ALL_TASK_QUEUES.map((q) => createWorker(benchEnv, q, connection)));
const running = workers.map((w) => w.run());
const client = await connectClient(env);
const modelName = `bench-${prefix.slice(5, -1)}`;

try {
  console.error(`[bench] warm-up lifecycle…`);
  await runLifecycle(client, prefix, modelName);

  console.error(`[bench] ${N} lifecycles (epochs=${EPOCHS})…`);
  const t0 = Date.now();
  const ids: string[] = [];
  for (let i = 0; i < N; i++) ids.push(await runLifecycle(client, prefix, modelName));
  const lifecycleWallMin = (Date.now() - t0) / 60_000;
  const timings = await Promise.all(ids.map((id) => timingOf(client, id)));
  const controlMs = timings.map((t) => t.wallMs - t.activityMs - t.humanMs);
  const activityCount = timings[0]!.activities;

  console.error(`[bench] baseline: ${N} bare workflows of ${activityCount} no-op activities…`);
  const baseIds: string[] = [];
  for (let i = 0; i < N; i++) {
    const id = `bench-baseline-${randomBytes(6).toString('hex')}`;
    await client.workflow.execute('noopChain', { taskQueue: `${prefix}control`, workflowId: id, args: [activityCount] });
    baseIds.push(id);
  }
  const baseTimings = await Promise.all(baseIds.map((id) => timingOf(client, id)));
  const baseControlMs = baseTimings.map((t) => t.wallMs - t.activityMs);

  console.error(`[bench] trace: ${TRACE_SAMPLES} library calls, 5 CLI processes…`);
  const db = createEnvDb(env, 2);
  const traceMs: number[] = [];
  for (let i = 0; i < TRACE_SAMPLES; i++) {
    const t = performance.now();
    await traceModel(db, modelName);
    traceMs.push(performance.now() - t);
  }
  await db.destroy();
  const cliMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    execFileSync(process.execPath, [path.join(projectRoot, 'bin', 'factory.mjs'), 'trace', modelName, '--json'], { stdio: 'ignore' });
    cliMs.push(performance.now() - t);
  }

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const f = (x: number) => x.toFixed(1);
  const lines = [
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}`,
    `lifecycles: ${N} sequential, low risk, ${EPOCHS} epochs, ${activityCount} activities each, approver answering at once`,
    `  throughput:                 ${(N / lifecycleWallMin).toFixed(2)} lifecycles/min`,
    `  wall time per lifecycle:    mean ${f(mean(timings.map((t) => t.wallMs)))} ms (activities ${f(mean(timings.map((t) => t.activityMs)))} ms, approver ${f(mean(timings.map((t) => t.humanMs)))} ms)`,
    `  control plane / lifecycle:  mean ${f(mean(controlMs))} ms, p50 ${f(pct(controlMs, 50))} ms`,
    `baseline: bare workflow, ${activityCount} no-op activities, same server and workers`,
    `  control plane / workflow:   mean ${f(mean(baseControlMs))} ms, p50 ${f(pct(baseControlMs, 50))} ms`,
    `  ratio lifecycle / baseline: ${(mean(controlMs) / mean(baseControlMs)).toFixed(2)}×`,
    `trace ${modelName} (${TRACE_SAMPLES} library calls): p50 ${f(pct(traceMs, 50))} ms, p99 ${f(pct(traceMs, 99))} ms`,
    `trace via CLI process (5 runs, incl. Node start): p50 ${f(pct(cliMs, 50))} ms, max ${f(Math.max(...cliMs))} ms`,
  ];
  console.log(lines.join('\n'));
} finally {
  await client.connection.close();
  for (const w of workers) w.shutdown();
  await Promise.all(running);
  await connection.close();
  await closeActivityDeps();
}

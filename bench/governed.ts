/**
 * Governed vs bare, the same work, and many lifecycles at once.
 *
 *   npm run bench:governed -- [--concurrency 1,8] [--runs 3] [--epochs 50] [--many 50] [--many-epochs N] [--json]
 *
 * Governed: low-risk lifecycles of the WDBC classifier (every control on: quarantine, certification,
 * manifests, registry, audit chain, digest checks, approval, deployment to Triton), approved through
 * the `decide` update as soon as the gate opens. Bare: a plain Temporal workflow (bench/bare/) that
 * runs the same trainer and evaluator subprocesses on the same data, with none of the governance:
 * issue 12's baseline, and the headline ratio. Bare + deploy: the same, then a plain Triton deployment
 * (repository entry and load, nothing verified, no smoke), so a second ratio shows the governance's
 * cost apart from the serving work. At each concurrency all three run the same number of workflows
 * (max(runs, concurrency)) on the same server, and throughput is workflows per minute over the
 * batch's wall time; the ratios are computed in the same run (goal ≥ 0.8 for the headline). The
 * overhead is broken down per stage from the histories.
 * `--many N` then runs N lifecycles at once to completion: wall time, duplicates, the audit chain and
 * the registry check, and where the time went (per activity class from the histories, CPU per
 * process from ps). `--many 0` skips it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, makeTelemetryFilterString } from '@temporalio/worker';
import { sql } from 'kysely';
import { closeActivityDeps } from '../activities/deps.ts';
import { verifyAuditChain, verifyProjection } from '../src/audit/verify.ts';
import { loadEnv, projectRoot } from '../src/config/env.ts';
import { createEnvDb } from '../src/db/connect.ts';
import { stackUp } from '../src/dev/stack.ts';
import { ALL_TASK_QUEUES } from '../src/domain/task-queues.ts';
import { benchLifecycleInput } from './lifecycle-input.ts';
import { approvalStatus, decide, startLifecycle } from '../src/lifecycle/client.ts';
import { createLogger } from '../src/log.ts';
import { connectClient } from '../src/temporal.ts';
import { createWorker } from '../workers/worker.ts';
import * as bareActivities from './bare/activities.ts';
import { figure } from './summary.ts';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '1,8' },
    runs: { type: 'string', default: '3' },
    epochs: { type: 'string', default: '50' },
    many: { type: 'string', default: '50' },
    // "Short training" for the many-at-once run (default: --epochs).
    'many-epochs': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const CONCURRENCY = values.concurrency!.split(',').map(Number);
const RUNS = Number(values.runs);
const EPOCHS = Number(values.epochs);
const MANY = Number(values.many);
const MANY_EPOCHS = Number(values['many-epochs'] ?? values.epochs);
for (const n of [...CONCURRENCY, RUNS, EPOCHS, MANY, MANY_EPOCHS]) {
  if (!Number.isSafeInteger(n) || n < 0 || n > 500) throw new Error('--concurrency, --runs, --epochs, --many: whole numbers from 0 to 500');
}

const DATASET = path.join(projectRoot, 'datasets', 'breast-cancer-wisconsin', 'wdbc.csv');
const SCHEMA = path.join(projectRoot, 'datasets', 'breast-cancer-wisconsin', 'schema.json');
const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) => Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const say = (s: string) => (values.json ? process.stderr.write(`${s}\n`) : console.log(s));

/** Time per activity name (scheduled → completed, and queued: scheduled → started), the approver's wait, and the wall time. */
interface Timing {
  wallMs: number;
  byActivity: Map<string, { totalMs: number; queuedMs: number; count: number }>;
  approvalWaitMs: number;
}

async function timingOf(client: Client, workflowId: string): Promise<Timing> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const scheduled = new Map<string, { name: string; at: number; input: string }>();
  const started = new Map<string, number>();
  const byActivity = new Map<string, { totalMs: number; queuedMs: number; count: number }>();
  let gateOpened: number | undefined;
  let approvalWaitMs = 0;
  for (const e of events) {
    const t = ms(e.eventTime);
    const s = e.activityTaskScheduledEventAttributes;
    if (s) {
      const data = s.input?.payloads?.[0]?.data;
      scheduled.set(String(e.eventId), { name: s.activityType?.name ?? '?', at: t, input: data ? Buffer.from(data).toString() : '' });
    }
    if (e.activityTaskStartedEventAttributes) started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), t);
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const sch = scheduled.get(String(done.scheduledEventId));
      if (sch) {
        const a = byActivity.get(sch.name) ?? { totalMs: 0, queuedMs: 0, count: 0 };
        a.totalMs += t - sch.at;
        a.queuedMs += (started.get(String(done.scheduledEventId)) ?? sch.at) - sch.at;
        a.count += 1;
        byActivity.set(sch.name, a);
        if (sch.input.includes('"step":"approval.requested"')) gateOpened = t;
      }
    }
    if (e.workflowExecutionUpdateAcceptedEventAttributes && gateOpened !== undefined) {
      approvalWaitMs += t - gateOpened;
      gateOpened = undefined;
    }
  }
  return { wallMs: ms(events.at(-1)?.eventTime) - ms(events[0]?.eventTime), byActivity, approvalWaitMs };
}

/** Runs `n` jobs with at most `c` at once; returns the batch's wall time. */
async function pool(n: number, c: number, job: (i: number) => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(c, n) }, async () => {
      while (next < n) await job(next++);
    }),
  );
  return performance.now() - t0;
}

const env = loadEnv();
const log = createLogger('bench', 'warn');
await stackUp({ env, log }, { onProgress: (m) => process.stderr.write(`[stack] ${m}\n`) });
Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } } });
const prefix = `gov${randomBytes(3).toString('hex')}-`;
const benchEnv = { ...env, FACTORY_TASK_QUEUE_PREFIX: prefix };
const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS });
const workers = await Promise.all(ALL_TASK_QUEUES.map((q) => createWorker(benchEnv, q, connection)));
const bareWorker = await Worker.create({
  connection,
  taskQueue: `${prefix}bare`,
  workflowsPath: path.join(import.meta.dirname, 'bare', 'workflows.ts'),
  activities: bareActivities,
  // The same cap as the GPU zone's worker (workers/worker.ts): as many trainer processes at once on both sides.
  maxConcurrentActivityTaskExecutions: env.FACTORY_GPU_MAX_CONCURRENT_JOBS,
});
const running = [...workers, bareWorker].map((w) => w.run());
const client = await connectClient(env);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-bare-'));
const modelName = `gov-${prefix.slice(3, -1)}`;
// The bare deployments' own model, as many versions of it served as of the governed one.
const bareModel = `bare-${prefix.slice(3, -1)}`;
const inputWidth = fs.readFileSync(DATASET, 'utf8').split('\n', 1)[0]!.split(',').length - 1;
let bareVersion = 0;

async function governed(epochs = EPOCHS, model = modelName): Promise<string> {
  const { workflowId } = await startLifecycle(client, benchLifecycleInput(model, epochs), { taskQueuePrefix: prefix });
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
    if (s && ['rejected', 'failed', 'deployed'].includes(s.stage)) break;
    await sleep(25);
  }
  await client.workflow.getHandle(workflowId).result();
  return workflowId;
}

/** The bare baseline: train + evaluate (issue 12's definition), or with `deploy` a plain Triton deployment after them. */
async function bare(deploy = false): Promise<string> {
  const workflowId = `bare-${randomBytes(6).toString('hex')}`;
  const input = { workDir: path.join(work, workflowId), dataPath: DATASET, schemaPath: SCHEMA, epochs: EPOCHS, seed: 7 };
  await client.workflow.execute(deploy ? 'bareTrainEvaluateDeploy' : 'bareTrainEvaluate', {
    taskQueue: `${prefix}bare`,
    workflowId,
    args: [deploy ? { ...input, deploy: { model: bareModel, version: ++bareVersion, inputWidth } } : input],
  });
  return workflowId;
}

/** CPU seconds per long-lived process name (ps `times`), to say where the time of a run went. */
function cpuByProcess(): Map<string, number> {
  const out = execFileSync('ps', ['-eo', 'comm=,times='], { encoding: 'utf8' });
  const m = new Map<string, number>();
  for (const line of out.trim().split('\n')) {
    const [comm, t] = line.trim().split(/\s+/);
    if (comm && t) m.set(comm, (m.get(comm) ?? 0) + Number(t));
  }
  return m;
}

const STAGES: Record<string, string> = {
  trainModel: 'train (same trainer)',
  bareTrain: 'train (same trainer)',
  evaluateModel: 'evaluate (same evaluator)',
  bareEvaluate: 'evaluate (same evaluator)',
  smokeRows: 'deploy to Triton (+ smoke, record)',
  deployToTriton: 'deploy to Triton (+ smoke, record)',
  recordDeployment: 'deploy to Triton (+ smoke, record)',
  bareDeploy: 'deploy to Triton (+ smoke, record)',
  quarantineRaw: 'quarantine + certify data',
  certifyDataset: 'quarantine + certify data',
};
const stageOf = (activity: string) => STAGES[activity] ?? 'registry, audit, policy';

function stages(timings: Timing[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of timings) {
    let activities = 0;
    for (const [name, a] of t.byActivity) {
      out.set(stageOf(name), (out.get(stageOf(name)) ?? 0) + a.totalMs / timings.length);
      activities += a.totalMs;
    }
    out.set('approval (bench answers at once)', (out.get('approval (bench answers at once)') ?? 0) + t.approvalWaitMs / timings.length);
    out.set('workflow tasks, dispatch', (out.get('workflow tasks, dispatch') ?? 0) + (t.wallMs - activities - t.approvalWaitMs) / timings.length);
  }
  return out;
}

const result: Record<string, unknown> = {
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, shared with other stacks`,
  epochs: EPOCHS,
};
try {
  say(`machine: ${result.machine as string}; load ${os.loadavg()[0]!.toFixed(1)}`);
  process.stderr.write('[bench] warm-up: one governed lifecycle, one bare workflow of each kind…\n');
  await governed();
  await bare();
  await bare(true);

  const comparisons: Array<Record<string, unknown>> = [];
  for (const c of CONCURRENCY) {
    const n = Math.max(RUNS, c);
    process.stderr.write(`[bench] concurrency ${c}: ${n} governed lifecycles, then ${n} bare workflows, then ${n} bare + deploy…\n`);
    const govIds: string[] = [];
    const govMs = await pool(n, c, async () => govIds.push(await governed()));
    const bareIds: string[] = [];
    const bareMs = await pool(n, c, async () => bareIds.push(await bare()));
    const bdIds: string[] = [];
    const bdMs = await pool(n, c, async () => bdIds.push(await bare(true)));
    const timings = (ids: string[]) => Promise.all(ids.map((id) => timingOf(client, id)));
    const [gt, bt, dt] = [await timings(govIds), await timings(bareIds), await timings(bdIds)];
    const gov = (n / govMs) * 60_000;
    const bar = (n / bareMs) * 60_000;
    const bd = (n / bdMs) * 60_000;
    const gs = stages(gt);
    const bs = stages(bt);
    const ds = stages(dt);
    const deployMs = gs.get('deploy to Triton (+ smoke, record)') ?? 0;
    const perMean = (ts: Timing[]) => (mean(ts.map((t) => t.wallMs)) / 1000).toFixed(2);
    say(`\nconcurrency ${c}, ${n} workflows each (load ${os.loadavg()[0]!.toFixed(1)})`);
    say(`  governed              ${gov.toFixed(2).padStart(6)} lifecycles/min (wall ${(govMs / 1000).toFixed(1)} s, per lifecycle mean ${perMean(gt)} s)`);
    say(`  bare: train+evaluate  ${bar.toFixed(2).padStart(6)} workflows/min  (wall ${(bareMs / 1000).toFixed(1)} s, per workflow mean ${perMean(bt)} s)`);
    say(`  bare + plain deploy   ${bd.toFixed(2).padStart(6)} workflows/min  (wall ${(bdMs / 1000).toFixed(1)} s, per workflow mean ${perMean(dt)} s)`);
    say(`  ratio governed / bare (issue 12's baseline, train+evaluate): ${(gov / bar).toFixed(2)}×   goal ≥ 0.8 ${gov / bar >= 0.8 ? 'OK' : 'MISSED'}`);
    say(`  ratio governed / bare + plain Triton deploy (the governance alone): ${(gov / bd).toFixed(2)}×`);
    const noDeploy = mean(gt.map((t) => t.wallMs)) - deployMs;
    say(`  per-workflow ratio without the governed deployment stage: ${(mean(bt.map((t) => t.wallMs)) / noDeploy).toFixed(2)}×`);
    say(`  stage (mean ms per workflow)              governed     bare bare+dep.  overhead vs bare+deploy`);
    for (const stage of new Set([...gs.keys(), ...bs.keys(), ...ds.keys()])) {
      const g = gs.get(stage) ?? 0;
      const b = bs.get(stage) ?? 0;
      const d = ds.get(stage) ?? 0;
      say(`    ${stage.padEnd(40)} ${g.toFixed(0).padStart(8)} ${b.toFixed(0).padStart(8)} ${d.toFixed(0).padStart(8)} ${(g - d).toFixed(0).padStart(9)}`);
    }
    figure(`governed / bare (train+evaluate) throughput, concurrency ${c} (${n} each, ${EPOCHS} epochs)`, gov / bar, '×', '≥ 0.8', gov / bar >= 0.8);
    figure(`governed / bare + plain Triton deploy, concurrency ${c} (governance alone)`, gov / bd, '×', '', null);
    for (const stage of new Set([...gs.keys(), ...ds.keys()])) {
      figure(`  overhead vs bare + deploy at concurrency ${c}: ${stage}`, (gs.get(stage) ?? 0) - (ds.get(stage) ?? 0), 'ms/workflow');
    }
    comparisons.push({
      concurrency: c,
      workflows: n,
      governedPerMin: gov,
      barePerMin: bar,
      bareDeployPerMin: bd,
      ratio: gov / bar,
      ratioVsBareDeploy: gov / bd,
      ratioWithoutDeploy: mean(bt.map((t) => t.wallMs)) / noDeploy,
      stagesGoverned: Object.fromEntries(gs),
      stagesBare: Object.fromEntries(bs),
      stagesBareDeploy: Object.fromEntries(ds),
    });
  }
  result.comparisons = comparisons;

  if (MANY > 0) {
    process.stderr.write(`[bench] ${MANY} governed lifecycles at once (${MANY_EPOCHS} epochs)…\n`);
    const cpu0 = cpuByProcess();
    const ids: string[] = [];
    const failures: string[] = [];
    // A lifecycle that fails is counted and named, not a reason to stop the others.
    // One model per lifecycle (50 teams, not one model retrained 50 times): each deploy loads the
    // versions of its model that Triton serves, so 50 versions of one model would reload 1 + 2 + … + 50.
    let nth = 0;
    const wallMs = await pool(MANY, MANY, async () => {
      try {
        ids.push(await governed(MANY_EPOCHS, `${modelName}-m${nth++}`));
      } catch (err) {
        // The deepest cause names what broke (the outer ones say "Activity task failed").
        let e = err as Error;
        while (e.cause instanceof Error) e = e.cause;
        failures.push(e.message);
      }
    });
    const cpu1 = cpuByProcess();
    const timings = await Promise.all(ids.map((id) => timingOf(client, id)));
    const db = createEnvDb(env, 2);
    const rows = (
      await sql<{ workflows: string; versions: string; deployments: string; deployed: string }>`
      SELECT count(DISTINCT m.workflow_id)::text AS workflows, count(*)::text AS versions,
        (SELECT count(*) FROM deployments d JOIN model_versions mv ON mv.id = d.model_version_id WHERE mv.workflow_id = ANY(${ids}))::text AS deployments,
        count(*) FILTER (WHERE m.state = 'deployed')::text AS deployed
      FROM model_versions m WHERE m.workflow_id = ANY(${ids})`.execute(db)
    ).rows[0]!;
    // Duplicates: a version, a deployment or a once-per-lifecycle audit event recorded twice for one lifecycle.
    const dup = (
      await sql<{ versions: string; deployments: string; events: string }>`
      SELECT
        (SELECT count(*) FROM (SELECT workflow_id FROM model_versions WHERE workflow_id = ANY(${ids}) GROUP BY workflow_id HAVING count(*) > 1) v)::text AS versions,
        (SELECT count(*) FROM (SELECT d.model_version_id FROM deployments d JOIN model_versions mv ON mv.id = d.model_version_id
           WHERE mv.workflow_id = ANY(${ids}) GROUP BY d.model_version_id HAVING count(*) > 1) d)::text AS deployments,
        (SELECT count(*) FROM (SELECT workflow_id, kind FROM audit_events WHERE workflow_id = ANY(${ids})
           AND kind IN ('lifecycle.started', 'training.completed', 'model.registered', 'model.approved', 'model.deployed')
           GROUP BY workflow_id, kind HAVING count(*) > 1) e)::text AS events`.execute(db)
    ).rows[0]!;
    const duplicates = Number(dup.versions) + Number(dup.deployments) + Number(dup.events);
    const chain = await verifyAuditChain(db);
    const projection = await verifyProjection(db);
    await db.destroy();
    const classes: Record<string, number> = {};
    for (const t of timings) {
      for (const [name, a] of t.byActivity) {
        const cls = ['trainModel', 'evaluateModel'].includes(name)
          ? 'trainer and evaluator (subprocesses)'
          : ['deployToTriton', 'smokeRows'].includes(name)
            ? 'Triton (load + smoke)'
            : ['quarantineRaw', 'certifyDataset'].includes(name)
              ? 'data (S3 + validation)'
              : 'Postgres (registry, audit) and policy';
        classes[cls] = (classes[cls] ?? 0) + (a.totalMs - a.queuedMs) / timings.length;
        classes['queued for a worker slot'] = (classes['queued for a worker slot'] ?? 0) + a.queuedMs / timings.length;
      }
      const act = [...t.byActivity.values()].reduce((s, a) => s + a.totalMs, 0);
      classes['workflow tasks, dispatch (Temporal)'] =
        (classes['workflow tasks, dispatch (Temporal)'] ?? 0) + (t.wallMs - act - t.approvalWaitMs) / timings.length;
      classes['approval (bench answers at once)'] = (classes['approval (bench answers at once)'] ?? 0) + t.approvalWaitMs / timings.length;
    }
    const cpu = [...cpu1]
      .map(([k, v]) => [k, v - (cpu0.get(k) ?? 0)] as const)
      .filter(([, v]) => v >= 1)
      .sort((a, b) => b[1] - a[1]);
    if (failures.length) say(`  FAILED: ${failures.length} lifecycle(s): ${[...new Set(failures)].join('; ').slice(0, 500)}`);
    const okMany =
      failures.length === 0 &&
      Number(rows.workflows) === MANY &&
      Number(rows.versions) === MANY &&
      Number(rows.deployments) === MANY &&
      duplicates === 0 &&
      chain.ok &&
      projection.ok;
    say(
      `\n${MANY} lifecycles at once: wall ${(wallMs / 1000).toFixed(1)} s (${((MANY / wallMs) * 60_000).toFixed(2)} lifecycles/min), load ${os.loadavg()[0]!.toFixed(1)}`,
    );
    say(
      `  registry: ${rows.workflows} lifecycles, ${rows.versions} versions (no duplicates: ${rows.versions === rows.workflows ? 'yes' : 'NO'}), ${rows.deployed} deployed, ${rows.deployments} deployments`,
    );
    say(
      `  duplicates: ${dup.versions} lifecycles with two versions, ${dup.deployments} versions deployed twice, ${dup.events} once-per-lifecycle audit events recorded twice`,
    );
    say(
      `  audit verify: chain ${chain.ok ? 'intact' : 'BROKEN'} (${chain.rows} events), registry ${projection.ok ? 'matches' : 'DIFFERS'} (${projection.checked} rows)  ${okMany ? 'OK' : 'MISSED'}`,
    );
    say(
      `  per lifecycle (mean ms): ${Object.entries(classes)
        .map(([k, v]) => `${k} ${v.toFixed(0)}`)
        .join('; ')}`,
    );
    say(`  CPU seconds during the run by process (machine-wide, other stacks included): ${cpu.map(([k, v]) => `${k} ${v}`).join(', ')}`);
    figure(`${MANY} lifecycles at once: completed`, ids.length, `of ${MANY}`, `= ${MANY}`, ids.length === MANY && failures.length === 0);
    figure(`${MANY} lifecycles at once: wall time`, wallMs / 1000, 's', '', null);
    figure(`${MANY} lifecycles at once: deployments`, Number(rows.deployments), `of ${MANY}`, `= ${MANY}`, Number(rows.deployments) === MANY);
    figure(`${MANY} lifecycles at once: duplicates`, duplicates, 'rows', '= 0', duplicates === 0);
    figure(`${MANY} lifecycles at once: audit verify (chain + registry)`, chain.ok && projection.ok ? 1 : 0, 'clean', 'clean', chain.ok && projection.ok);
    for (const [k, v] of Object.entries(classes)) figure(`  where the time goes (per lifecycle): ${k}`, v / 1000, 's');
    for (const [k, v] of cpu.slice(0, 5)) figure(`  CPU during the run (machine-wide): ${k}`, v, 's');
    result.many = {
      duplicates: dup,
      lifecycles: MANY,
      wallMs,
      rows,
      chain: { ok: chain.ok, rows: chain.rows },
      projection: { ok: projection.ok, checked: projection.checked },
      classes,
      cpu: Object.fromEntries(cpu),
      ok: okMany,
    };
  }
  if (values.json) console.log(JSON.stringify(result, null, 2));
} finally {
  await client.connection.close();
  for (const w of [...workers, bareWorker]) w.shutdown();
  await Promise.all(running);
  await connection.close();
  await closeActivityDeps();
  fs.rmSync(work, { recursive: true, force: true });
}

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/db/connect.ts';
import { isAlive } from '../../src/dev/process.ts';
import { killGroup, readLease } from '../../src/jobs/job-process.ts';
import { env } from '../helpers.ts';
import { CuttableProxy, IsolatedWorkers, approveAndFinish, factoryCli, lifecycleSuite, startTestLifecycle, waitFor, waitForStatus } from './harness.ts';

// Each test here runs its own workers: it kills them, or routes their database through a proxy.
const suite = lifecycleSuite({ startWorkers: false });
const { db } = suite;

const EXPECTED_STEPS = [
  'lifecycle.started',
  'dataset.quarantined',
  'dataset.certified',
  'placement.decided',
  'placement.scheduled',
  'training.completed',
  'evaluation.completed',
  'provenance.signed',
  'model.registered',
  'model.validated',
  'approval.requested',
  'decision.1',
  'model.approved',
  'model.deployed',
  // Appended by the history archiver once the lifecycle has closed.
  'history.exported',
];

/** Every step once, none twice, and the chain still verifies. */
async function expectCompleteAuditTrail(workflowId: string) {
  const stepsNow = async () =>
    (await db.selectFrom('audit_events').select('step').where('workflow_id', '=', workflowId).orderBy('seq').execute()).map((r) => r.step);
  // The history is exported after the lifecycle closes: wait for that event, then compare the whole trail.
  const steps = await waitFor(
    "the closed lifecycle's history to be exported",
    async () => {
      const now = await stepsNow();
      return now.includes('history.exported') ? now : undefined;
    },
    120_000,
    250,
  );
  expect(steps).toEqual(EXPECTED_STEPS);
  const verify = await factoryCli(['audit', 'verify', '--json']);
  expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
}

/** Generous for a loaded machine (a CPU hog beside the run): each test waits on real conditions, not on time. */
const TEST_TIMEOUT = 600_000;
/**
 * A few seconds of training here unloaded, a minute at most under a CPU hog: the test freezes the job
 * (SIGSTOP) right after its first progress line while it needs it to be running, so the job cannot
 * finish early, and it need not be long.
 */
const TRAINING = { epochs: 3_000, seed: 7 };

/** The training job once it is really training: its start recorded and its first progress line written. */
async function trainingJob(workflowId: string): Promise<{ jobDir: string; pid: number }> {
  const jobDir = path.join(env.FACTORY_HOME, 'jobs', workflowId, 'train');
  const read = (f: string) => (fs.existsSync(path.join(jobDir, f)) ? fs.readFileSync(path.join(jobDir, f), 'utf8') : '');
  const pid = await waitFor(
    'the training job to start',
    () => {
      const m = /pid=(\d+)/.exec(read('starts.log'));
      return m && read('train.log').includes('"epoch": 0') ? Number(m[1]) : undefined;
    },
    300_000,
    10,
  ); // polled closely: the test freezes the job right after this line
  expect(fs.existsSync(path.join(jobDir, 'result.json'))).toBe(false);
  return { jobDir, pid };
}

interface PendingActivity {
  activityType?: { name?: string };
  attempt?: number;
  state?: unknown;
  lastFailure?: { message?: string; applicationFailureInfo?: { type?: string } };
}

/** The workflow's pending activities as the server sees them: attempt and last failure of each. */
async function pendingActivities(workflowId: string): Promise<PendingActivity[]> {
  const d = await suite.client.workflow.getHandle(workflowId).describe();
  return (d.raw.pendingActivities ?? []) as PendingActivity[];
}

/** Waits until an attempt of `activity` (any, when absent) has failed and a later one is pending. */
async function failedAttempt(workflowId: string, accept: (a: PendingActivity) => boolean, timeoutMs?: number): Promise<PendingActivity> {
  return waitFor(
    'a failed activity attempt',
    async () => (await pendingActivities(workflowId)).find((a) => (a.attempt ?? 1) >= 2 && a.lastFailure && accept(a)),
    timeoutMs,
  );
}

async function trainingAudit(workflowId: string) {
  return db
    .selectFrom('audit_events')
    .select('payload')
    .where('workflow_id', '=', workflowId)
    .where('step', '=', 'training.completed')
    .executeTakeFirstOrThrow();
}

describe('durability (real processes, real failures)', () => {
  it(
    'a GPU worker killed with SIGKILL during training: the retry re-attaches; one job, one model version, no duplicate audit rows',
    async () => {
      const workers = new IsolatedWorkers();
      await workers.startAll();
      try {
        const { workflowId } = await startTestLifecycle(suite.client, workers, { training: TRAINING });
        const { jobDir, pid } = await trainingJob(workflowId);
        // Frozen, so it is certainly mid-training when its worker dies, however loaded the machine.
        killGroup(pid, 'SIGSTOP');
        try {
          await workers.kill('gpu-onprem', 'SIGKILL');
          expect(isAlive(pid)).toBe(true);
          await workers.start('gpu-onprem');
          // The server gives the dead attempt up after the 10 s heartbeat timeout; the next one re-attaches.
          const retried = await failedAttempt(workflowId, (a) => a.activityType?.name === 'trainModel');
          expect(retried.lastFailure?.message).toMatch(/heartbeat/i);
          await waitFor('the next attempt to take the job over', () => ((readLease(jobDir)?.attempt ?? 1) >= 2 ? true : undefined));
        } finally {
          killGroup(pid, 'SIGCONT');
        }

        const outcome = await approveAndFinish(suite.client, workflowId);
        expect(outcome.outcome).toBe('deployed');
        expect(fs.readFileSync(path.join(jobDir, 'starts.log'), 'utf8').trim().split('\n')).toHaveLength(1);
        expect((await trainingAudit(workflowId)).payload.attach).toBe('reattached');
        expect(await db.selectFrom('model_versions').select('id').where('workflow_id', '=', workflowId).execute()).toHaveLength(1);
        await expectCompleteAuditTrail(workflowId);
      } finally {
        await workers.stopAll();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'a GPU worker stopped gracefully (SIGTERM) during training detaches: the same job keeps running, the next worker re-attaches, the lifecycle deploys',
    async () => {
      const workers = new IsolatedWorkers();
      await workers.startAll();
      try {
        const { workflowId } = await startTestLifecycle(suite.client, workers, { training: TRAINING });
        const { jobDir, pid } = await trainingJob(workflowId);
        killGroup(pid, 'SIGSTOP');
        try {
          await workers.kill('gpu-onprem', 'SIGTERM'); // returns once the worker process has exited
          expect(isAlive(pid)).toBe(true);
          // The attempt failed on purpose, at once (not after a heartbeat timeout), saying why.
          const failed = await failedAttempt(workflowId, (a) => a.activityType?.name === 'trainModel', 60_000);
          expect(failed.lastFailure?.applicationFailureInfo?.type).toBe('WorkerShutdown');
          expect(failed.lastFailure?.message).toContain(`pid ${pid}`);
          expect(isAlive(pid)).toBe(true);
          await workers.start('gpu-onprem');
          await waitFor('the new worker to take the job over', () => ((readLease(jobDir)?.attempt ?? 1) >= 2 ? true : undefined));
          expect(JSON.parse(fs.readFileSync(path.join(jobDir, 'job.json'), 'utf8'))).toMatchObject({ pid });
        } finally {
          killGroup(pid, 'SIGCONT');
        }

        const outcome = await approveAndFinish(suite.client, workflowId);
        expect(outcome.outcome).toBe('deployed');
        expect(fs.readFileSync(path.join(jobDir, 'starts.log'), 'utf8').trim().split('\n')).toHaveLength(1);
        expect((await trainingAudit(workflowId)).payload.attach).toBe('reattached');
        await expectCompleteAuditTrail(workflowId);
      } finally {
        await workers.stopAll();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'Postgres unreachable mid-lifecycle: an activity attempt fails on it, the database comes back, the lifecycle completes and no audit event is lost',
    async () => {
      const target = new URL(databaseUrl(env));
      const proxy = new CuttableProxy(target.hostname, Number(target.port || 5432));
      await proxy.open();
      const viaProxy = new URL(target);
      viaProxy.port = String(proxy.port);
      const workers = new IsolatedWorkers({ DATABASE_URL: viaProxy.toString() });
      await workers.startAll();
      try {
        const { workflowId } = await startTestLifecycle(suite.client, workers, { training: { epochs: 2_000, seed: 7 } });
        await waitForStatus(suite.client, workflowId, (s) => s.stage === 'train', 300_000);
        await proxy.cut();
        // Training needs no database; the audit write after it does. Held down until it has failed.
        const failed = await failedAttempt(workflowId, (a) => a.activityType?.name === 'appendAudit');
        expect(failed.lastFailure?.message).toMatch(/ECONNREFUSED|connect|Connection terminated/i);
        await proxy.open();

        const outcome = await approveAndFinish(suite.client, workflowId);
        expect(outcome.outcome).toBe('deployed');
        const history = await suite.client.workflow.getHandle(workflowId).fetchHistory();
        const retried = (history.events ?? []).some((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
        expect(retried).toBe(true);
        await expectCompleteAuditTrail(workflowId);
      } finally {
        await workers.stopAll();
        await proxy.cut();
      }
    },
    TEST_TIMEOUT,
  );
});

import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/db/connect.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { decide } from '../../src/lifecycle/client.ts';
import { env } from '../helpers.ts';
import { CuttableProxy, IsolatedWorkers, factoryCli, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

// Each test here runs its own workers: it kills them, or routes their database through a proxy.
const suite = lifecycleSuite({ startWorkers: false });
const { db } = suite;

const EXPECTED_STEPS = [
  'lifecycle.started',
  'dataset.quarantined',
  'dataset.certified',
  'training.completed',
  'evaluation.completed',
  'model.registered',
  'model.validated',
  'approval.requested',
  'decision.1',
  'model.approved',
  'model.deployed',
];

/** Every step once, none twice, and the chain still verifies. */
async function expectCompleteAuditTrail(workflowId: string) {
  const steps = (await db.selectFrom('audit_events').select('step').where('workflow_id', '=', workflowId).orderBy('seq').execute()).map((r) => r.step);
  expect(steps).toEqual(EXPECTED_STEPS);
  const verify = await factoryCli(['audit', 'verify', '--json']);
  expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
}

async function approveAndFinish(workflowId: string): Promise<LifecycleOutcome> {
  const s = await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval', 240_000);
  const verdict = await decide(suite.client, workflowId, { decision: 'approve', approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval', modelDigest: s.modelDigest! });
  expect(verdict.accepted).toBe(true);
  return (await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
}

describe('durability (real processes, real failures)', () => {
  it('a GPU worker killed with SIGKILL during training: the retry re-attaches; one job, one model version, no duplicate audit rows', async () => {
    const workers = new IsolatedWorkers();
    await workers.startAll();
    try {
      // Long enough to be killed mid-run: tens of thousands of epochs take several seconds here.
      const { workflowId } = await startTestLifecycle(suite.client, workers, { training: { epochs: 40_000, seed: 7 } });
      const jobDir = path.join(env.FACTORY_HOME, 'jobs', workflowId, 'train');
      for (let i = 0; i < 600 && !fs.existsSync(path.join(jobDir, 'starts.log')); i++) await sleep(100);
      expect(fs.existsSync(path.join(jobDir, 'starts.log'))).toBe(true);
      await sleep(500);
      expect(fs.existsSync(path.join(jobDir, 'result.json'))).toBe(false); // still training

      await workers.kill('gpu-onprem', 'SIGKILL');
      await sleep(1_000);
      await workers.start('gpu-onprem');

      const outcome = await approveAndFinish(workflowId);
      expect(outcome.outcome).toBe('deployed');
      expect(fs.readFileSync(path.join(jobDir, 'starts.log'), 'utf8').trim().split('\n')).toHaveLength(1);
      const training = await db.selectFrom('audit_events').select('payload').where('workflow_id', '=', workflowId).where('step', '=', 'training.completed').executeTakeFirstOrThrow();
      expect(['reattached', 'finished-earlier']).toContain(training.payload.attach);
      expect(await db.selectFrom('model_versions').select('id').where('workflow_id', '=', workflowId).execute()).toHaveLength(1);
      await expectCompleteAuditTrail(workflowId);
    } finally {
      await workers.stopAll();
    }
  });

  it('Postgres unreachable for a while mid-lifecycle: activities wait it out; the lifecycle completes and no audit event is lost', async () => {
    const target = new URL(databaseUrl(env));
    const proxy = new CuttableProxy(target.hostname, Number(target.port || 5432));
    await proxy.open();
    const viaProxy = new URL(target);
    viaProxy.port = String(proxy.port);
    const workers = new IsolatedWorkers({ DATABASE_URL: viaProxy.toString() });
    await workers.startAll();
    try {
      const { workflowId } = await startTestLifecycle(suite.client, workers, { training: { epochs: 3_000, seed: 7 } });
      await waitForStatus(suite.client, workflowId, (s) => s.stage === 'train');
      await proxy.cut();
      await sleep(12_000); // training ends and its audit write, registration and evaluation find no database
      const during = await suite.client.workflow.getHandle(workflowId).query<{ stage: string }>('approvalStatus');
      expect(['train', 'evaluate', 'register']).toContain(during.stage);
      await proxy.open();

      const outcome = await approveAndFinish(workflowId);
      expect(outcome.outcome).toBe('deployed');
      // The outage was real: some activity needed more than one attempt.
      const history = await suite.client.workflow.getHandle(workflowId).fetchHistory();
      const retried = (history.events ?? []).some((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
      expect(retried).toBe(true);
      await expectCompleteAuditTrail(workflowId);
    } finally {
      await workers.stopAll();
      await proxy.cut();
    }
  });
});

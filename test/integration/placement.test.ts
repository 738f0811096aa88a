import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { gpuActivitiesFor } from '../../activities/index.ts';
import { DATASET, factoryCli, lifecycleSuite, startTestLifecycle, waitFor, waitForStatus } from './harness.ts';

const suite = lifecycleSuite({ startWorkers: false });

/** Where each activity of the workflow was scheduled: [activity type, task queue]. */
async function scheduledActivities(workflowId: string): Promise<Array<[string, string]>> {
  const history = await suite.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes)
    .filter((a) => !!a)
    .map((a) => [a.activityType?.name ?? '', a.taskQueue?.name ?? '']);
}

async function auditKinds(workflowId: string): Promise<Array<{ kind: string; payload: unknown }>> {
  return suite.db.selectFrom('audit_events').select(['kind', 'payload']).where('workflow_id', '=', workflowId).orderBy('seq').execute();
}

describe('placement by policy', () => {
  it('a PHI lifecycle with only a burst worker waits (status says why) and never runs there, then trains on-prem once an on-prem worker polls', async () => {
    const { workers, client } = suite;
    // The WDBC dataset is PHI; the pack lets gpu-burst hold public and financial data only.
    await Promise.all([workers.start('control'), workers.start('gpu-burst')]);
    const { workflowId } = await startTestLifecycle(client, workers, { training: { epochs: 30, seed: 7 } });
    try {
      const waiting = await waitForStatus(client, workflowId, (s) => s.placement?.waiting === true, 300_000);
      expect(waiting.placement).toMatchObject({ classification: 'phi', allowedZones: ['gpu-onprem'], waiting: true });
      expect(waiting.placement?.reason).toContain('waiting for a worker on gpu-onprem');
      expect(waiting.placement?.reason).toContain('gpu-burst has workers but may not run it');

      const cli = await factoryCli(['status', workflowId]);
      expect(cli.stdout).toContain('placement: WAITING: waiting for a worker on gpu-onprem');

      // A while later it still waits, with the burst worker idle beside it: nothing was scheduled there.
      await sleep(6_000);
      expect((await waitForStatus(client, workflowId, () => true)).placement?.waiting).toBe(true);
      const kinds = (await auditKinds(workflowId)).map((e) => e.kind);
      expect(kinds).toEqual(expect.arrayContaining(['placement.decided', 'placement.waiting']));
      expect(kinds).not.toContain('training.completed');
      expect((await scheduledActivities(workflowId)).filter(([, q]) => q.endsWith('gpu-burst'))).toEqual([]);

      await workers.start('gpu-onprem');
      // Up to the gate, or a rejection by evaluation (registered, its events written): the cancellation
      // below then ends a consistent trail that `audit verify` accepts.
      const placed = await waitForStatus(client, workflowId, (s) => s.stage === 'approval' || s.stage === 'rejected', 400_000);
      expect(placed.placement).toMatchObject({ zone: 'gpu-onprem', waiting: false });
      const scheduled = await scheduledActivities(workflowId);
      const jobs = scheduled.filter(([type]) => type === 'trainModel' || type === 'evaluateModel');
      expect(jobs.map(([type]) => type)).toEqual(['trainModel', 'evaluateModel']);
      for (const [, queue] of jobs) expect(queue).toBe(`${workers.prefix}gpu-onprem`);
      expect(scheduled.filter(([, q]) => q.endsWith('gpu-burst'))).toEqual([]);
      const scheduledEvent = (await auditKinds(workflowId)).find((e) => e.kind === 'placement.scheduled');
      expect(scheduledEvent?.payload).toMatchObject({ zone: 'gpu-onprem', location: 'on-prem' });
      if (placed.stage === 'approval') {
        await client.workflow.getHandle(workflowId).cancel();
        await waitFor('the cancellation to be recorded', async () =>
          (await auditKinds(workflowId)).some((e) => e.kind === 'lifecycle.cancelled') ? true : undefined,
        );
      }
    } finally {
      await client.workflow
        .getHandle(workflowId)
        .cancel()
        .catch(() => undefined);
    }
  }, 900_000);

  it("the burst zone's worker refuses a PHI job handed to it directly: ZoneRefused, final", async () => {
    const activities = gpuActivitiesFor('gpu-burst');
    const refused = await new MockActivityEnvironment()
      .run(activities.trainModel, {
        workflowId: 'placement-direct',
        modelName: 'placement-direct',
        certifiedKey: 'never/read',
        schemaPath: DATASET.replace(/[^/]+$/, 'schema.json'),
        epochs: 1,
        seed: 1,
        imageDigest: `sha256:${'0'.repeat(64)}`,
      })
      .catch((err: unknown) => err);
    expect(refused).toMatchObject({ type: 'ZoneRefused', nonRetryable: true });
    expect((refused as Error).message).toBe('zone gpu-burst refused the job: burst zone gpu-burst may hold only public, financial data, not phi');
  });
});

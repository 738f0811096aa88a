import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { lifecycleSuite, startTestLifecycle, waitFor } from './harness.ts';

const suite = lifecycleSuite({ startWorkers: false });

describe('cross-zone transfers recorded (real Temporal, PostgreSQL, S3)', () => {
  it('training placed on a burst zone records data.transferred with the lifecycle purpose', { timeout: 300_000 }, async () => {
    // Only a burst worker beside the control one: the financial (German credit) data may go there, and does.
    await Promise.all([suite.workers.start('control'), suite.workers.start('gpu-burst')]);
    const { workflowId } = await startTestLifecycle(suite.client, suite.workers, {
      modelName: `credit-${suite.workers.prefix.slice(1, -1)}-xfer`,
      datasetPath: path.join(projectRoot, 'datasets', 'german-credit', 'german_credit.csv'),
      purpose: 'credit-risk-research',
      training: { epochs: 5, seed: 7 },
    });
    const events = await waitFor(
      'data.transferred',
      async () => {
        const rows = await suite.db.selectFrom('audit_events').select(['kind', 'payload']).where('workflow_id', '=', workflowId).orderBy('seq').execute();
        return rows.some((r) => r.kind === 'data.transferred') ? rows : undefined;
      },
      240_000,
      500,
    );
    // Training is not what this test is about: it ends here.
    await suite.client.workflow.getHandle(workflowId).terminate('transfer recorded; the test needs no model');
    const kinds = events.map((e) => e.kind);
    expect(kinds.indexOf('data.transferred')).toBe(kinds.indexOf('placement.scheduled') + 1);
    expect(events.find((e) => e.kind === 'placement.scheduled')!.payload).toMatchObject({ zone: 'gpu-burst', location: 'burst' });
    expect(events.find((e) => e.kind === 'data.transferred')!.payload).toMatchObject({
      classification: 'financial',
      fromLocation: 'on-prem',
      toZone: 'gpu-burst',
      toLocation: 'burst',
      purpose: 'credit-risk-research',
    });
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { databaseUrl } from '../../src/db/connect.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { env, stackPolicyText } from '../helpers.ts';
import { CuttableProxy, IsolatedWorkers, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

// The low tier's approval window is 20 s here, for these workers only.
const policyFile = path.join(env.FACTORY_HOME, 'test-policy-20s-window.yaml');
fs.mkdirSync(env.FACTORY_HOME, { recursive: true });
fs.writeFileSync(policyFile, stackPolicyText().replace('approvalTimeout: 7d', 'approvalTimeout: 20s'));

const suite = lifecycleSuite({ startWorkers: false });
const { db } = suite;

describe('the approval deadline is a timer of its own (real Temporal, Postgres cut through a proxy)', () => {
  it('judges decisions while the database is down, closes at the deadline, and refuses an approval sent after it', async () => {
    const target = new URL(databaseUrl(env));
    const proxy = new CuttableProxy(target.hostname, Number(target.port || 5432));
    await proxy.open();
    const viaProxy = new URL(target);
    viaProxy.port = String(proxy.port);
    const workers = new IsolatedWorkers({ DATABASE_URL: viaProxy.toString(), FACTORY_POLICY_PACK: policyFile });
    await workers.startAll();
    try {
      const { workflowId } = await startTestLifecycle(suite.client, workers);
      const open = await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval');
      // The gate has recorded that it opened: from here on it only judges, records and waits.
      for (let i = 0; i < 100; i++) {
        if (await db.selectFrom('audit_events').select('seq').where('workflow_id', '=', workflowId).where('step', '=', 'approval.requested').executeTakeFirst())
          break;
        await sleep(100);
      }
      await proxy.cut();

      // Judged at once, with no database to record it in yet.
      const handle = suite.client.workflow.getHandle(workflowId);
      await handle.signal('approve', { approver: 'eve@evil.example', role: 'model-owner', meaning: 'approval', modelDigest: open.modelDigest });
      const judged = await waitForStatus(suite.client, workflowId, (s) => s.counts?.refused === 1);
      expect(judged.refusals[0]!.reason).toMatch(/not a known principal/);

      // The deadline passes while every write still fails: the gate closes anyway.
      const deadline = Date.parse(open.deadline!);
      await sleep(Math.max(0, deadline - Date.now()) + 1_000);
      const closed = await waitForStatus(suite.client, workflowId, (s) => !s.waiting, 10_000);
      expect(closed.pendingRoles).toEqual(['model-owner']);

      // Too late: a valid approval after the deadline is answered, and refused, once the database is back.
      await handle.signal('approve', {
        approver: 'omar@hospital.example',
        role: 'model-owner',
        meaning: 'approval',
        modelDigest: open.modelDigest,
        comment: 'late',
      });
      await sleep(1_000);
      await proxy.open();
      const outcome = (await handle.result()) as LifecycleOutcome;
      expect(outcome).toMatchObject({ outcome: 'rejected', reason: 'approval timed out after 20s; still pending: model-owner' });
      const rows = await db
        .selectFrom('approvals')
        .select(['approver', 'accepted', 'refusal_reason'])
        .where('workflow_id', '=', workflowId)
        .orderBy('id')
        .execute();
      expect(rows).toEqual([
        { approver: 'eve@evil.example', accepted: false, refusal_reason: 'eve@evil.example is not a known principal in the policy pack' },
        { approver: 'omar@hospital.example', accepted: false, refusal_reason: expect.stringMatching(/no longer awaiting approval|approval gate has closed/) },
      ]);
    } finally {
      await workers.stopAll();
      await proxy.cut();
    }
  }, 180_000);
});

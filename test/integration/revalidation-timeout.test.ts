import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RevalidationReviewResult, RevalidationSweepReport } from '../../src/domain/revalidation.ts';
import type { InventoryEntry } from '../../src/inventory/inventory.ts';
import { stackPolicyText } from '../helpers.ts';
import { TEST_DATA, approveAndFinish, factoryCli, lifecycleSuite, startTestLifecycle, waitFor, waitForStatus } from './harness.ts';

/**
 * The escalation path of a revalidation review: nobody decides before the tier's approvalTimeout
 * (60 s in this pack, 45 s of validation), so the review ends `timed-out` with a finding, and the next
 * sweep asks again under `-r2` (once).
 */
fs.mkdirSync(TEST_DATA, { recursive: true });
const pack = path.join(TEST_DATA, `revalidation-timeout-pack-${process.pid}.yaml`);
const text = stackPolicyText();
for (const s of ['revalidateEvery: 1095d', 'approvalTimeout: 7d']) if (!text.includes(s)) throw new Error(`the stack pack no longer has the low tier’s ${s}`);
fs.writeFileSync(pack, text.replace('revalidateEvery: 1095d', 'revalidateEvery: 45s').replace('approvalTimeout: 7d', 'approvalTimeout: 60s'));

const suite = lifecycleSuite({ workerEnv: { FACTORY_POLICY_PACK: pack } });
const { db, workers } = suite;
const cli = (args: string[]) => factoryCli(args, { FACTORY_POLICY_PACK: pack, FACTORY_TASK_QUEUE_PREFIX: workers.prefix });

async function sweep(model: string): Promise<RevalidationSweepReport> {
  const r = await cli(['revalidation', 'run', '--model', model, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as RevalidationSweepReport;
}

describe('revalidation review deadline (real Temporal, PostgreSQL, S3, Triton)', () => {
  it('times out undecided with a finding; the next sweep opens attempt 2', async () => {
    const started = await startTestLifecycle(suite.client, workers);
    const deployed = await approveAndFinish(suite.client, started.workflowId);
    if (deployed.outcome !== 'deployed') throw new Error(`not deployed: ${JSON.stringify(deployed)}`);
    const model = started.input.modelName;
    const overdue = async () => {
      const r = await cli(['inventory', '--model', model, '--json']);
      const [entry] = (JSON.parse(r.stdout) as { versions: InventoryEntry[] }).versions;
      return entry?.overdue ? entry : undefined;
    };
    const due = await waitFor('overdue', overdue, 180_000, 2_000);

    const first = await sweep(model);
    expect(first.opened).toHaveLength(1);
    const reviewId = first.opened[0]!;
    await waitForStatus(suite.client, reviewId, (s) => s.stage === 'approval' && s.waiting);
    const result = (await suite.client.workflow.getHandle(reviewId).result()) as RevalidationReviewResult;
    expect(result).toMatchObject({ outcome: 'timed-out', dueAt: due.revalidationDueAt });
    expect(result.reason).toContain('still pending: validator');
    const finding = await db
      .selectFrom('audit_events')
      .select(['payload'])
      .where('workflow_id', '=', reviewId)
      .where('kind', '=', 'model.revalidation-failed')
      .executeTakeFirstOrThrow();
    expect(finding.payload).toMatchObject({ outcome: 'timed-out', finding: 'revalidation-timed-out', decidedBy: [] });
    expect((await suite.client.workflow.getHandle(reviewId).describe()).searchAttributes).toMatchObject({ RevalidationReview: ['timed-out'] });
    expect(await overdue()).toMatchObject({ openRevalidation: null, revalidatedAt: null });

    // Asked again for the same due date, once however often the sweep runs.
    const again = await sweep(model);
    expect(again.opened).toEqual([`${reviewId}-r2`]);
    expect(await sweep(model)).toMatchObject({ opened: [], existing: [`${reviewId}-r2`] });
    expect(await overdue()).toMatchObject({ openRevalidation: `${reviewId}-r2` });
    await suite.client.workflow.getHandle(`${reviewId}-r2`).result();

    const verify = await cli(['audit', 'verify', '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  }, 900_000);
});

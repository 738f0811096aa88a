import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RevalidationReviewResult, RevalidationSweepReport } from '../../src/domain/revalidation.ts';
import type { InventoryEntry } from '../../src/inventory/inventory.ts';
import type { RevalidationReviewRow } from '../../src/inventory/revalidation.ts';
import { stackPolicyText } from '../helpers.ts';
import { TEST_DATA, approveAndFinish, factoryCli, lifecycleSuite, startTestLifecycle, waitFor, waitForStatus } from './harness.ts';

/**
 * Periodic revalidation end to end on the real stack: the low tier's validation stands 45 s here (the
 * pack, not the rows, makes it fall due), so a deployed version falls due, a sweep run twice opens one
 * review, a validator decides it at the release gate, and the inventory reads the renewed validation.
 */
const EVERY_S = 45;
fs.mkdirSync(TEST_DATA, { recursive: true });
const pack = path.join(TEST_DATA, `revalidation-pack-${process.pid}.yaml`);
const text = stackPolicyText();
if (!text.includes('revalidateEvery: 1095d')) throw new Error('the stack pack no longer has the low tier’s revalidateEvery: 1095d');
fs.writeFileSync(pack, text.replace('revalidateEvery: 1095d', `revalidateEvery: ${EVERY_S}s`));

const suite = lifecycleSuite({ workerEnv: { FACTORY_POLICY_PACK: pack } });
const { db, workers } = suite;
const cli = (args: string[]) => factoryCli(args, { FACTORY_POLICY_PACK: pack, FACTORY_TASK_QUEUE_PREFIX: workers.prefix });

async function inventoryOf(model: string): Promise<InventoryEntry> {
  const r = await cli(['inventory', '--model', model, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const [entry] = (JSON.parse(r.stdout) as { versions: InventoryEntry[] }).versions;
  return entry!;
}

async function sweep(model: string): Promise<RevalidationSweepReport> {
  const r = await cli(['revalidation', 'run', '--model', model, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as RevalidationSweepReport;
}

async function kindsOf(workflowId: string): Promise<string[]> {
  const rows = await db.selectFrom('audit_events').select('kind').where('workflow_id', '=', workflowId).orderBy('seq').execute();
  return rows.map((r) => r.kind);
}

describe('revalidation reviews (real Temporal, PostgreSQL, S3, Triton)', () => {
  it('opens one review per due date however often the sweep runs; a validator renews the validation; a rejection is a finding', async () => {
    const started = await startTestLifecycle(suite.client, workers);
    const deployed = await approveAndFinish(suite.client, started.workflowId);
    if (deployed.outcome !== 'deployed') throw new Error(`not deployed: ${JSON.stringify(deployed)}`);
    const model = started.input.modelName;
    const version = deployed.version;

    // Falls due EVERY_S after its validation: the inventory flags it, and no review is open yet.
    const due = await waitFor('overdue', async () => ((await inventoryOf(model)).overdue ? inventoryOf(model) : undefined), 180_000, 2_000);
    expect(due).toMatchObject({ version, state: 'deployed', revalidateEvery: `${EVERY_S}s`, openRevalidation: null, revalidatedAt: null });

    // Swept twice (and the second time beside a third): one review.
    const first = await sweep(model);
    expect(first).toMatchObject({ due: 1, existing: [], truncated: false });
    expect(first.opened).toHaveLength(1);
    const reviewId = first.opened[0]!;
    expect(reviewId).toBe(`revalidation-${model}-${version}-${due.revalidationDueAt!.replace(/[:.]/g, '')}`);
    const [again, third] = await Promise.all([sweep(model), sweep(model)]);
    for (const r of [again, third]) expect(r).toMatchObject({ due: 1, opened: [], existing: [reviewId] });
    expect(await db.selectFrom('revalidation_reviews').select('workflow_id').where('model_name', '=', model).execute()).toEqual([{ workflow_id: reviewId }]);

    // Findable: the search attribute, the gate's status, the inventory and `revalidation status`.
    const status = await waitForStatus(suite.client, reviewId, (s) => s.stage === 'approval' && s.waiting);
    expect(status).toMatchObject({ modelName: model, version, riskTier: 'low', pendingRoles: ['validator'] });
    expect((await suite.client.workflow.getHandle(reviewId).describe()).searchAttributes).toMatchObject({
      RevalidationReview: ['open'],
      ModelName: [model],
    });
    expect(await inventoryOf(model)).toMatchObject({ overdue: true, openRevalidation: reviewId });
    const human = await cli(['inventory', '--model', model]);
    expect(human.stdout).toContain(`revalidation review open: ${reviewId}`);
    const opened = await db
      .selectFrom('audit_events')
      .select(['kind', 'payload'])
      .where('workflow_id', '=', reviewId)
      .where('kind', '=', 'model.revalidation-opened')
      .executeTakeFirstOrThrow();
    expect(opened.payload).toMatchObject({ modelName: model, version, riskTier: 'low', dueAt: due.revalidationDueAt, lastValidatedAt: due.lastValidatedAt });

    // Only a validator decides: the model owner is refused (exit 4), Vera (validator) is accepted.
    const owner = await cli(['approve', reviewId, '--as', 'omar@hospital.example', '--role', 'validator', '--json']);
    expect(owner.code, owner.stdout + owner.stderr).toBe(4);
    const vera = await cli(['approve', reviewId, '--as', 'vera@hospital.example', '--role', 'validator', '--comment', 'periodic review passed', '--json']);
    expect(vera.code, vera.stdout + vera.stderr).toBe(0);
    const result = (await suite.client.workflow.getHandle(reviewId).result()) as RevalidationReviewResult;
    expect(result).toMatchObject({ outcome: 'revalidated', modelName: model, version, dueAt: due.revalidationDueAt });

    // The inventory reads the renewed validation: no longer overdue, nothing open.
    const renewed = await inventoryOf(model);
    expect(renewed).toMatchObject({ overdue: false, openRevalidation: null, revalidatedAt: result.revalidatedAt, lastValidatedAt: result.revalidatedAt });
    expect(renewed.revalidationDueAt).toBe(new Date(Date.parse(result.revalidatedAt!) + EVERY_S * 1000).toISOString());
    expect(await kindsOf(reviewId)).toEqual(['model.revalidation-opened', 'approval.requested', 'approval.refused', 'approval.approved', 'model.revalidated']);
    const listed = await cli(['revalidation', 'status', `${model}@${version}`, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const [row] = (JSON.parse(listed.stdout) as { reviews: RevalidationReviewRow[] }).reviews;
    expect(row).toMatchObject({ workflowId: reviewId, outcome: 'revalidated', decidedAt: result.revalidatedAt });
    expect(row!.decidedBy.map((d) => [d.approver, d.role])).toEqual([['vera@hospital.example', 'validator']]);
    expect((await suite.client.workflow.getHandle(reviewId).describe()).searchAttributes).toMatchObject({ RevalidationReview: ['revalidated'] });

    // Due again EVERY_S later: a new review (a new due date); a rejection fails it with a finding.
    await waitFor('due again', async () => ((await inventoryOf(model)).overdue ? true : undefined), 180_000, 2_000);
    const next = await sweep(model);
    expect(next.opened).toHaveLength(1);
    const secondId = next.opened[0]!;
    expect(secondId).not.toBe(reviewId);
    await waitForStatus(suite.client, secondId, (s) => s.stage === 'approval' && s.waiting);
    const reject = await cli(['reject', secondId, '--as', 'vera@hospital.example', '--role', 'validator', '--comment', 'drift since validation', '--json']);
    expect(reject.code, reject.stdout + reject.stderr).toBe(0);
    const failed = (await suite.client.workflow.getHandle(secondId).result()) as RevalidationReviewResult;
    expect(failed).toMatchObject({ outcome: 'failed' });
    expect(failed.reason).toContain('drift since validation');
    const finding = await db
      .selectFrom('audit_events')
      .select(['payload', 'actor'])
      .where('workflow_id', '=', secondId)
      .where('kind', '=', 'model.revalidation-failed')
      .executeTakeFirstOrThrow();
    expect(finding).toMatchObject({ actor: 'vera@hospital.example', payload: { finding: 'revalidation-failed', outcome: 'failed' } });
    expect(await inventoryOf(model)).toMatchObject({ overdue: true, openRevalidation: null, revalidatedAt: result.revalidatedAt });
    // Not reopened for the same due date: the failure stands until the version is validated again.
    expect(await sweep(model)).toMatchObject({ due: 1, opened: [], existing: [secondId] });

    const verify = await cli(['audit', 'verify', '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  }, 900_000);

  it('schedules the sweep on a Temporal Schedule (created, then updated), refusing a bad interval', async () => {
    const bad = await cli(['revalidation', 'schedule', '--every', '1s']);
    expect(bad.code).toBe(2);
    const created = await cli(['revalidation', 'schedule', '--every', '12h', '--json']);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toEqual({ scheduleId: `${workers.prefix}revalidation-sweep`, created: true, every: '12h' });
    const handle = suite.client.schedule.getHandle(`${workers.prefix}revalidation-sweep`);
    try {
      const updated = await cli(['revalidation', 'schedule', '--json']);
      expect(JSON.parse(updated.stdout)).toMatchObject({ created: false, every: '1d' });
      const described = await handle.describe();
      expect(described.spec.intervals?.map((i) => i.every)).toEqual([86_400_000]);
      expect(described.action).toMatchObject({ workflowType: 'revalidationSweep', taskQueue: `${workers.prefix}control` });
    } finally {
      await handle.delete();
    }
  }, 120_000);
});

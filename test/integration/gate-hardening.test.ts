import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import type { ApprovalStatus, ReceivedSummary } from '../../src/domain/approval.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';
import { env, stackPolicyText } from '../helpers.ts';
import { factoryCli, lifecycleSuite, signedDecision, startTestLifecycle, temporalCli, waitForStatus } from './harness.ts';

// The stack's pack (the default with the dev keys), except that a medium-risk rejection reopens its role instead of ending the gate.
const policyFile = path.join(env.FACTORY_HOME, 'test-policy-reopen-role.yaml');
fs.mkdirSync(env.FACTORY_HOME, { recursive: true });
fs.writeFileSync(policyFile, stackPolicyText().replace('approvalTimeout: 10d', 'approvalTimeout: 10d\n    onRejection: reopen-role'));

const suite = lifecycleSuite({ workerEnv: { FACTORY_POLICY_PACK: policyFile } });
const { db, workers } = suite;

const omar = { approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval' } as const;
const signalCli = (workflowId: string, name: string, input: unknown) =>
  temporalCli(['workflow', 'signal', '--workflow-id', workflowId, '--name', name, '--input', JSON.stringify(input)]);
const statusOf = (workflowId: string) => suite.client.workflow.getHandle(workflowId).query<ApprovalStatus>('approvalStatus');
const decisionsOf = (workflowId: string) =>
  db
    .selectFrom('approvals')
    .select(['decision', 'approver', 'role', 'accepted', 'refusal_reason', 'comment'])
    .where('workflow_id', '=', workflowId)
    .orderBy('decided_at')
    .orderBy('id')
    .execute();

async function runsOf(workflowId: string): Promise<WorkflowExecutionInfo[]> {
  const runs: WorkflowExecutionInfo[] = [];
  for await (const r of suite.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runs.push(r);
  return runs;
}

describe('the approval gate under hostile input (real Temporal, temporal CLI, Postgres)', () => {
  it('refuses and records poison decisions (NUL, lone surrogate, oversized, wrong decision) and keeps working', async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers);
    const s = await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    const valid = { ...omar, modelDigest: s.modelDigest };
    const handle = suite.client.workflow.getHandle(workflowId);

    // Through the real temporal CLI: a NUL in the comment (PostgreSQL cannot store it).
    await signalCli(workflowId, 'approve', { ...valid, comment: 'ok\u0000' });
    // Through the SDK (Go's JSON would replace it): a lone surrogate.
    await handle.signal('approve', { ...valid, comment: 'ok \ud800' });
    // Below the server's limit but far over ours: kept as a digest and an excerpt, never whole.
    const big = { ...valid, comment: `\u001b]0;owned\u0007${'x'.repeat(200 * 1024)}` };
    await handle.signal('approve', big);
    // Over the server's payload limit: refused by Temporal before it reaches the history.
    const hugeFile = path.join(env.FACTORY_HOME, 'huge-signal.json');
    fs.writeFileSync(hugeFile, JSON.stringify({ ...valid, comment: 'y'.repeat(1024 * 1024) }));
    await expect(temporalCli(['workflow', 'signal', '--workflow-id', workflowId, '--name', 'approve', '--input-file', hugeFile])).rejects.toThrow(
      /size|limit/i,
    );
    // The decide update is judged whole in its validator: "Approve" is not a decision, NUL is not text.
    await expect(
      temporalCli([
        'workflow',
        'update',
        'execute',
        '--workflow-id',
        workflowId,
        '--name',
        'decide',
        '--input',
        JSON.stringify({ ...valid, decision: 'Approve' }),
      ]),
    ).rejects.toThrow(/invalid decision: decision/);
    await expect(handle.executeUpdate('decide', { args: [{ ...valid, decision: 'approve', comment: 'a\u0000b' }] })).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/invalid decision: comment: contains NUL/) },
    });

    const waiting = await waitForStatus(suite.client, workflowId, (st) => st.counts?.refused === 3);
    expect(waiting.stage).toBe('approval');
    expect(waiting.approvals).toEqual([]);
    expect(JSON.stringify(waiting).length).toBeLessThan(16_000);
    const received = waiting.refusals.map((r) => r.received as ReceivedSummary);
    expect(received[2]!.sha256).toBe(`sha256:${createHash('sha256').update(JSON.stringify(big)).digest('hex')}`);
    expect(received[2]!.excerpt).toContain('\\u001b]0;owned\\u0007');
    expect(received[2]!.excerpt.length).toBeLessThan(300);

    // A valid approval after all that is processed at once.
    await signalCli(workflowId, 'approve', { ...valid, comment: 'reviewed the evaluation report' });
    const outcome = (await handle.result()) as LifecycleOutcome;
    expect(outcome.outcome).toBe('deployed');

    const rows = await decisionsOf(workflowId);
    expect(rows.map((r) => [r.accepted, r.refusal_reason?.replace(/^malformed payload: /, '')])).toEqual([
      [false, 'comment: contains NUL or control characters'],
      [false, 'comment: contains a lone surrogate (not valid Unicode text)'],
      [false, expect.stringMatching(/^comment: at most 2000 characters; comment: contains NUL or control characters/)],
      [true, undefined],
    ]);
    expect(rows.every((r) => r.comment === null || r.comment === 'reviewed the evaluation report')).toBe(true);
    // The history holds the 200 KiB signal once, not copies of it in activity inputs.
    const { historySize } = await handle.describe();
    expect(Number(historySize)).toBeLessThan(600 * 1024);
    const verify = await factoryCli(['audit', 'verify', '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it('stays bounded under thousands of refusals: continues as new, counts all, records all, then approves', async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers);
    const s = await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    const handle = suite.client.workflow.getHandle(workflowId);
    const total = 2_000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 24 }, async () => {
        while (next < total) {
          const i = next++;
          const payload = {
            approver: `intruder${i}@evil.example`,
            role: 'model-owner',
            meaning: 'approval',
            modelDigest: s.modelDigest,
            comment: `attempt ${i}`,
          };
          // The server caps signals per run (temporal/dynamic-config.yaml); a persistent sender retries.
          for (;;) {
            try {
              await handle.signal('approve', payload);
              break;
            } catch (err) {
              if (!/limit for signal events/.test(String(((err as Error).cause as Error | undefined)?.message))) throw err;
              await sleep(200);
            }
          }
        }
      }),
    );
    const bounded = await waitForStatus(suite.client, workflowId, (st) => st.counts?.refused === total, 240_000);
    expect(bounded.stage).toBe('approval');
    // Each run takes at most 400 signals (the server's cap), so the refusals span at least total / 400 runs.
    expect(bounded.continuedRuns).toBeGreaterThanOrEqual(Math.ceil(total / 400) - 1);
    expect(bounded.refusals.length).toBeLessThanOrEqual(20);
    expect(JSON.stringify(bounded).length).toBeLessThan(32_000);

    // The `decide` update (what `factory approve` sends) is not subject to the per-run signal cap.
    const approved = await factoryCli(['approve', workflowId, '--as', omar.approver, '--role', omar.role, '--json']);
    expect(approved.code, approved.stderr).toBe(0);
    expect(((await handle.result()) as LifecycleOutcome).outcome).toBe('deployed');
    // Visibility follows the runs with a lag: wait until it lists every one of them.
    let runs = await runsOf(workflowId);
    for (let i = 0; i < 100 && runs.length < bounded.continuedRuns! + 1; i++) runs = await sleep(200).then(() => runsOf(workflowId));
    expect(runs.length).toBeGreaterThanOrEqual(bounded.continuedRuns! + 1);
    for (const r of runs) expect(r.historyLength).toBeLessThan(2_000); // Temporal warns from 10 240
    const recorded = await db
      .selectFrom('approvals')
      .select((eb) => [eb.fn.countAll<string>().as('n'), eb.fn.sum<string>(eb.cast<number>('accepted', 'integer')).as('accepted')])
      .where('workflow_id', '=', workflowId)
      .executeTakeFirstOrThrow();
    expect({ n: Number(recorded.n), accepted: Number(recorded.accepted) }).toEqual({ n: total + 1, accepted: 1 });
    const verify = await factoryCli(['audit', 'verify', '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  }, 420_000);

  it('lets an approver withdraw, and a rejection reopen the role where the policy says so', async () => {
    const { workflowId, input } = await startTestLifecycle(suite.client, workers, { riskTier: 'medium' });
    const s = await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    const approve = await factoryCli(['approve', workflowId, '--as', omar.approver, '--role', 'model-owner', '--json']);
    expect(approve.code, approve.stderr).toBe(0);
    await signalCli(workflowId, 'withdraw', {
      ...omar,
      meaning: 'review',
      modelDigest: s.modelDigest,
      comment: 'the held-out split overlaps the training export',
    });
    const withdrawn = await waitForStatus(suite.client, workflowId, (st) => st.counts?.withdrawn === 1);
    expect(withdrawn.pendingRoles).toEqual(['model-owner', 'validator']);
    expect(withdrawn.approvals).toEqual([]);
    // A withdrawal names its own approval: somebody else's cannot be taken back.
    await signalCli(workflowId, 'withdraw', {
      approver: 'vera@hospital.example',
      role: 'validator',
      meaning: 'review',
      modelDigest: s.modelDigest,
      comment: 'x',
    });
    // Under `reopen-role` a rejection is recorded and the role stays open for its holders.
    const reject = await factoryCli([
      'reject',
      workflowId,
      '--as',
      'vera@hospital.example',
      '--role',
      'validator',
      '--comment',
      'calibration plot missing',
      '--json',
    ]);
    expect(reject.code, reject.stderr).toBe(0);
    expect((await statusOf(workflowId)).stage).toBe('approval');
    for (const [who, role] of [
      ['vera@hospital.example', 'validator'],
      [omar.approver, 'model-owner'],
    ]) {
      const r = await factoryCli(['approve', workflowId, '--as', who!, '--role', role!, '--json']);
      expect(r.code, r.stderr).toBe(0);
    }
    expect(((await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome).outcome).toBe('deployed');
    const rows = await decisionsOf(workflowId);
    expect(rows.map((r) => `${r.decision} ${r.approver} ${r.accepted ? 'accepted' : 'refused'}`)).toEqual([
      'approve omar@hospital.example accepted',
      'withdraw omar@hospital.example accepted',
      'withdraw vera@hospital.example refused',
      'reject vera@hospital.example accepted',
      'approve vera@hospital.example accepted',
      'approve omar@hospital.example accepted',
    ]);
    const trace = JSON.parse((await factoryCli(['trace', `${input.modelName}@${s.version}`, '--json'])).stdout) as ModelTrace;
    expect(trace.approvals.map((a) => a.decision)).toEqual(['approve', 'withdraw', 'reject', 'approve', 'approve']);
  });

  it('ends the gate when a holder of an already filled role rejects (high risk: end-gate)', async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers, { riskTier: 'high', developer: 'alice@hospital.example' });
    await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    await signalCli(workflowId, 'approve', await signedDecision(suite.client, workflowId, { approver: 'omar@hospital.example', role: 'business' }));
    await waitForStatus(suite.client, workflowId, (st) => st.approvals.length === 1);
    await signalCli(
      workflowId,
      'reject',
      await signedDecision(suite.client, workflowId, {
        approver: 'lena@hospital.example',
        role: 'business',
        meaning: 'review',
        decision: 'reject',
        comment: 'no fairness analysis',
      }),
    );
    const outcome = (await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
    expect(outcome).toMatchObject({ outcome: 'rejected', reason: 'rejected by Lena Vogel <lena@hospital.example> as business: no fairness analysis' });
  });
});

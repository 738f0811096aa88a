import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { listCheckpoints } from '../../src/audit/checkpoint.ts';
import { auditChainName } from '../../src/db/connect.ts';
import { loadTrustedKeys } from '../../src/signing/trusted-keys.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import { tritonUrl } from '../../src/dev/components/triton.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { decide, startLifecycle } from '../../src/lifecycle/client.ts';
import { TritonClient } from '../../src/serving/triton.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';
import { env } from '../helpers.ts';
import { factoryCli, lifecycleSuite, signedDecision, startTestLifecycle, temporalCli, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();
const { db, workers } = suite;
const s3 = createS3(env);
afterAll(() => s3.destroy());

describe('the governed lifecycle, end to end (real Temporal, Postgres, S3, trainer, Triton)', () => {
  it('a high-risk model: refusals are recorded while it waits; three valid approvals deploy it; trace shows the chain', async () => {
    const client = suite.client;
    // omar develops the model and holds "business": he must not be able to approve it.
    const { workflowId, input } = await startTestLifecycle(client, workers, { riskTier: 'high', developer: 'omar@hospital.example' });
    const handle = client.workflow.getHandle(workflowId);

    // A retried CI start finds the same lifecycle instead of starting a second.
    const again = await startLifecycle(client, input, { taskQueuePrefix: workers.prefix });
    expect(again).toMatchObject({ workflowId, existing: true });

    const waiting = await waitForStatus(client, workflowId, (s) => s.stage === 'approval');
    expect(waiting.pendingRoles).toEqual(['business', 'security', 'compliance']);
    const digest = waiting.modelDigest!;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const described = await handle.describe();
    expect(described.searchAttributes).toMatchObject({
      PendingRoles: ['business', 'security', 'compliance'],
      LifecycleStage: ['approval'],
      RiskTier: ['high'],
    });
    // What the Web UI shows as the workflow's current details: what it waits for, and how to answer.
    const metadata = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toContain('Pending roles: business, security, compliance.');
    expect(metadata.currentDetails).toContain(`"modelDigest":"${digest}"`);

    const ok = (approver: string, role: string, extra: object = {}) => ({ approver, role, meaning: 'approval', modelDigest: digest, ...extra });
    const refusals: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['unauthorised approver (SDK signal)', () => handle.signal('approve', ok('vera@hospital.example', 'security')), /does not hold the role "security"/],
      [
        'self-approval by the developer (CLI update)',
        () => decide(client, workflowId, { decision: 'approve', ...ok('omar@hospital.example', 'business') } as never),
        /developed this model/,
      ],
      [
        'wrong digest (temporal CLI)',
        () =>
          temporalCli([
            'workflow',
            'signal',
            '-w',
            workflowId,
            '--name',
            'approve',
            '--input',
            JSON.stringify(ok('sam@hospital.example', 'security', { modelDigest: `sha256:${'0'.repeat(64)}` })),
          ]),
        /is not this candidate's/,
      ],
      [
        'missing fields (temporal CLI)',
        () => temporalCli(['workflow', 'signal', '-w', workflowId, '--name', 'approve', '--input', '{"approver":"sam@hospital.example"}']),
        /malformed payload: role/,
      ],
      [
        'wrong types (temporal CLI)',
        () =>
          temporalCli([
            'workflow',
            'signal',
            '-w',
            workflowId,
            '--name',
            'approve',
            '--input',
            '{"approver":"sam@hospital.example","role":7,"meaning":"approval","modelDigest":123}',
          ]),
        /malformed payload: role: .*expected string/,
      ],
      [
        'not JSON (temporal CLI, text pasted as a string)',
        () => temporalCli(['workflow', 'signal', '-w', workflowId, '--name', 'approve', '--input', '"approve it, thanks"']),
        /not JSON/,
      ],
      ['not JSON (raw bytes)', () => handle.signal('approve', new TextEncoder().encode('{approver: sam')), /not JSON/],
    ];
    for (const [i, [what, send, reason]] of refusals.entries()) {
      const verdict = await send();
      const s = await waitForStatus(client, workflowId, (st) => st.refusals.length === i + 1);
      expect(s.refusals[i]!.reason, what).toMatch(reason);
      expect(s.stage, what).toBe('approval');
      expect(s.pendingRoles, what).toEqual(['business', 'security', 'compliance']);
      if (verdict && typeof verdict === 'object' && 'accepted' in verdict)
        expect(verdict).toMatchObject({ accepted: false, reason: expect.stringMatching(reason) });
    }

    // Valid signed approvals through each public interface: the real temporal CLI (what the Web UI's
    // "Send a Signal" sends), the SDK update (what `factory approve` sends), an SDK signal.
    await temporalCli([
      'workflow',
      'signal',
      '-w',
      workflowId,
      '--name',
      'approve',
      '--input',
      JSON.stringify(await signedDecision(client, workflowId, { approver: 'lena@hospital.example', role: 'business', comment: 'fit for purpose' })),
    ]);
    await waitForStatus(client, workflowId, (s) => s.approvals.length === 1);
    expect(
      await decide(client, workflowId, {
        decision: 'approve',
        ...(await signedDecision(client, workflowId, { approver: 'sam@hospital.example', role: 'security' })),
      }),
    ).toEqual({
      accepted: true,
      pendingRoles: ['compliance'],
    });
    await handle.signal(
      'approve',
      await signedDecision(client, workflowId, { approver: 'dana@hospital.example', role: 'compliance', meaning: 'responsibility' }),
    );

    const outcome = (await handle.result()) as LifecycleOutcome;
    expect(outcome).toMatchObject({ outcome: 'deployed', modelName: input.modelName, artifactDigest: digest });
    if (outcome.outcome !== 'deployed') throw new Error('not deployed');

    // The model answers on Triton.
    const certifiedRow = [
      17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003,
      0.006193, 25.38, 17.33, 184.6, 2019, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189,
    ];
    const { outputs } = await new TritonClient(tritonUrl(env)).infer(outcome.tritonModel, [certifiedRow]);
    expect(outputs[0]![0]).toBeGreaterThan(0.5); // the first WDBC sample is malignant

    // The trace, through the CLI an auditor uses.
    const traced = await factoryCli(['trace', `${input.modelName}@${outcome.version}`, '--json']);
    expect(traced.code).toBe(0);
    const trace = JSON.parse(traced.stdout) as ModelTrace;
    expect(trace.model).toMatchObject({ state: 'deployed', artifactDigest: digest, riskTier: 'high' });
    expect(trace.data).toMatchObject({
      rowsTotal: 569,
      rowsAccepted: 569,
      rowsExcluded: 0,
      rawSha256: expect.stringMatching(/^sha256:/),
      manifestDigest: expect.stringMatching(/^sha256:/),
    });
    expect(trace.code).toEqual({
      commitSha: input.commitSha,
      imageDigest: input.imageDigest,
      developer: 'omar@hospital.example',
      requester: 'ci@hospital.example',
    });
    expect(trace.training.environment).toMatchObject({ torch: expect.any(String), device: expect.stringMatching(/cpu|cuda/), image_digest: input.imageDigest });
    expect(trace.evaluation.metrics.accuracy).toBeGreaterThanOrEqual(0.93);
    expect(trace.approvals.map((a) => [a.name, a.role, a.meaning])).toEqual([
      ['Lena Vogel', 'business', 'approval'],
      ['Sam Okafor', 'security', 'approval'],
      ['Dana Whitfield', 'compliance', 'responsibility'],
    ]);
    for (const a of trace.approvals) expect(a.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(trace.refusedDecisions).toBe(refusals.length);
    expect(trace.deployment).toMatchObject({ tritonModel: input.modelName, tritonVersion: outcome.version, artifactDigest: digest });

    // Each refusal is in the registry and in the audit trail, with its reason.
    const refused = await db.selectFrom('approvals').select(['refusal_reason']).where('workflow_id', '=', workflowId).where('accepted', '=', false).execute();
    expect(refused).toHaveLength(refusals.length);
    const auditKinds = await db.selectFrom('audit_events').select(['kind', 'step']).where('workflow_id', '=', workflowId).orderBy('seq').execute();
    expect(auditKinds.filter((e) => e.kind === 'approval.refused')).toHaveLength(refusals.length);
    expect(auditKinds.map((e) => e.kind)).toEqual(
      expect.arrayContaining([
        'lifecycle.started',
        'dataset.quarantined',
        'dataset.certified',
        'training.completed',
        'evaluation.completed',
        'model.registered',
        'model.validated',
        'approval.requested',
        'approval.approved',
        'model.approved',
        'model.deployed',
      ]),
    );
    expect((await handle.describe()).searchAttributes).toMatchObject({ LifecycleStage: ['deployed'] });

    const verify = await factoryCli(['audit', 'verify', '--json']);
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  });

  it('a model below the tier thresholds is rejected with the failing metrics, and never reaches approval', async () => {
    const client = suite.client;
    const { workflowId, input } = await startTestLifecycle(client, workers, { training: { epochs: 1, seed: 7 } });
    const outcome = (await client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
    expect(outcome).toMatchObject({ outcome: 'rejected', reason: expect.stringMatching(/below the low-risk thresholds: accuracy/) });
    if (outcome.outcome !== 'rejected') throw new Error('not rejected');
    expect(outcome.failing?.accuracy?.threshold).toBe(0.9);
    const row = await db.selectFrom('model_versions').select(['state']).where('workflow_id', '=', workflowId).executeTakeFirstOrThrow();
    expect(row.state).toBe('rejected');
    const kinds = (await db.selectFrom('audit_events').select('kind').where('workflow_id', '=', workflowId).execute()).map((r) => r.kind);
    expect(kinds).toContain('model.rejected');
    expect(kinds).not.toContain('approval.requested');
    const cli = await factoryCli(['trace', input.modelName, '--json']);
    expect(JSON.parse(cli.stdout).model.state).toBe('rejected');
    // Its end anchored the chain: a signed checkpoint at or past its last event, written before it closed.
    const last = await db
      .selectFrom('audit_events')
      .select(sql<string>`max(seq)::text`.as('seq'))
      .where('workflow_id', '=', workflowId)
      .executeTakeFirstOrThrow();
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const activities = history.events!.flatMap((e) =>
      e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType!.name] : [],
    );
    expect(activities.at(-1)).toBe('writeAuditCheckpoint');
    const listed = await listCheckpoints(
      s3,
      bucket(env, 'evidence'),
      auditChainName(env),
      loadTrustedKeys(env).map((k) => k.publicKey),
    );
    expect(BigInt(listed.valid.at(-1)!.seq)).toBeGreaterThanOrEqual(BigInt(last.seq));
  });
});

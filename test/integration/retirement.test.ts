import fs from 'node:fs';
import path from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import type { RetirementOutcome } from '../../src/domain/retirement.ts';
import { createKey, writeKeysFile } from '../../src/gateway/keys.ts';
import { decide } from '../../src/lifecycle/client.ts';
import { startRetirement } from '../../src/lifecycle/retirement.ts';
import { policyPackPath } from '../../src/policy/pack.ts';
import { parseS3Uri } from '../../src/serving/s3-uri.ts';
import { TritonClient, tritonUrl } from '../../src/serving/triton.ts';
import { createS3 } from '../../src/storage/s3.ts';
import { env } from '../helpers.ts';
import { GatewayProcess, factoryCli, gatewayCall, lifecycleSuite, startTestLifecycle, waitFor, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();
// The first WDBC sample (malignant).
const SAMPLE = [
  17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003,
  0.006193, 25.38, 17.33, 184.6, 2019, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189,
];
const BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 30], datatype: 'FP32', data: SAMPLE }] });
const REASON = 'superseded by the 2027 screening model; finding F-12';
const cliEnv = () => ({ FACTORY_TASK_QUEUE_PREFIX: suite.workers.prefix });

describe('retirement of a model version (real Temporal, PostgreSQL, S3, Triton, gateway)', () => {
  let model: string;
  let lifecycleId: string;
  let version: number;
  let key: string;
  let gateway: GatewayProcess;
  const triton = new TritonClient(tritonUrl(env));
  const call = (v?: number) => gatewayCall(gateway.base, model, key, { body: BODY, version: v });

  beforeAll(async () => {
    model = `bc-${suite.workers.prefix.slice(1, -1)}-ret`;
    const started = await startTestLifecycle(suite.client, suite.workers, { modelName: model });
    lifecycleId = started.workflowId;
    const s = await waitForStatus(suite.client, lifecycleId, (st) => st.stage === 'approval', 400_000);
    await decide(suite.client, lifecycleId, {
      decision: 'approve',
      approver: 'omar@hospital.example',
      role: 'model-owner',
      meaning: 'approval',
      modelDigest: s.modelDigest!,
    });
    const outcome = (await suite.client.workflow.getHandle(lifecycleId).result()) as LifecycleOutcome;
    if (outcome.outcome !== 'deployed') throw new Error(`not deployed: ${JSON.stringify(outcome)}`);
    version = outcome.version;

    // A gateway of the test's own, on the stack's pack plus a use case naming the model.
    const dir = path.join(env.FACTORY_HOME, 'test-data', `retire-${suite.workers.prefix}`);
    fs.mkdirSync(dir, { recursive: true });
    const pack = parse(fs.readFileSync(policyPackPath(), 'utf8')) as Record<string, unknown>;
    pack.useCases = [{ name: 'screening', models: [model], riskTiers: ['low'] }];
    fs.writeFileSync(path.join(dir, 'pack.yaml'), stringify(pack));
    const k = createKey('lena@hospital.example', 'screening');
    key = k.key;
    writeKeysFile(path.join(dir, 'keys.yaml'), [k.entry]);
    gateway = new GatewayProcess(
      { FACTORY_POLICY_PACK: path.join(dir, 'pack.yaml'), FACTORY_GATEWAY_KEYS_FILE: path.join(dir, 'keys.yaml') },
      env.FACTORY_GATEWAY_PORT + 2,
    );
    await gateway.start();
  }, 900_000);

  afterAll(async () => {
    await gateway?.kill('SIGTERM');
  });

  const state = async () =>
    (await suite.db.selectFrom('model_versions').select('state').where('model_name', '=', model).where('version', '=', version).executeTakeFirstOrThrow())
      .state;

  it('without its approval nothing is retired: a rejected retirement leaves the version served', async () => {
    expect((await call()).status).toBe(200);
    const asked = await factoryCli(['retire', `${model}@${version}`, '--reason', REASON, '--as', 'ci@hospital.example', '--json'], cliEnv());
    expect(asked.code, asked.stderr).toBe(0);
    const { workflowId } = JSON.parse(asked.stdout) as { workflowId: string };
    expect(workflowId).toBe(`retire-${model}-${version}`);
    const s = await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    expect(s).toMatchObject({ requiredRoles: ['model-owner'], pendingRoles: ['model-owner'], modelDigest: expect.stringMatching(/^sha256:/) });
    // A decision by someone not holding the role is refused and recorded; the version is still served meanwhile.
    const refused = await factoryCli(['approve', workflowId, '--as', 'vera@hospital.example', '--role', 'model-owner', '--json'], cliEnv());
    expect(refused.code).toBe(4);
    expect((await call()).status).toBe(200);
    expect(await triton.versionReady(model, version)).toBe(true);
    expect(await state()).toBe('deployed');

    const rejected = await factoryCli(
      ['reject', workflowId, '--as', 'omar@hospital.example', '--role', 'model-owner', '--comment', 'still in use by triage'],
      cliEnv(),
    );
    expect(rejected.code, rejected.stderr).toBe(0);
    const outcome = (await suite.client.workflow.getHandle(workflowId).result()) as RetirementOutcome;
    expect(outcome).toMatchObject({ outcome: 'rejected', reason: expect.stringContaining('still in use by triage') });
    expect((await call()).status).toBe(200);
    expect(await triton.versionReady(model, version)).toBe(true);
    expect(await state()).toBe('deployed');
    expect(await suite.db.selectFrom('retirements').select('id').where('model_name', '=', model).execute()).toHaveLength(0);
    const kinds = await suite.db.selectFrom('audit_events').select('kind').where('workflow_id', '=', workflowId).orderBy('seq').execute();
    expect(kinds.map((k) => k.kind)).toEqual(['retirement.requested', 'approval.requested', 'approval.refused', 'approval.rejected', 'retirement.rejected']);
  });

  it('once approved: the gateway answers 410 with the reason (logged), Triton unloads it, registry retired, evidence kept from the retirement date', async () => {
    const asked = await factoryCli(['retire', `${model}@${version}`, '--reason', REASON, '--as', 'ci@hospital.example', '--json'], cliEnv());
    expect(asked.code, asked.stderr).toBe(0);
    const { workflowId } = JSON.parse(asked.stdout) as { workflowId: string };
    await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval');
    const approved = await factoryCli(['approve', workflowId, '--as', 'omar@hospital.example', '--role', 'model-owner', '--json'], cliEnv());
    expect(approved.code, approved.stderr).toBe(0);
    const outcome = (await suite.client.workflow.getHandle(workflowId).result()) as RetirementOutcome;
    if (outcome.outcome !== 'retired') throw new Error(JSON.stringify(outcome));
    expect(outcome).toMatchObject({ routeRetired: true, unloaded: true });

    // The gateway: 410 Gone with the reason for the model and for the version named, each logged as a refusal.
    const gone = await waitFor(
      'the gateway to refuse',
      async () => {
        const res = await call();
        return res.status === 410 ? res : undefined;
      },
      10_000,
    );
    const answer = (await gone.json()) as { error: string; reason: string; request_id: string };
    expect(answer.reason).toBe('retired');
    expect(answer.error).toContain(REASON);
    const named = await call(version);
    expect(named.status).toBe(410);
    const logged = await suite.db.selectFrom('gateway_requests').selectAll().where('request_id', '=', answer.request_id).executeTakeFirstOrThrow();
    expect(logged).toMatchObject({ status: 410, outcome: 'refused', model_name: model, model_version: version, principal: 'lena@hospital.example' });
    expect(logged.reason).toMatch(/^retired: .*superseded by the 2027 screening model/);

    // Triton no longer serves it; the registry says retired; the trail says who and why.
    expect(await triton.versionReady(model, version)).toBe(false);
    expect(await state()).toBe('retired');
    const events = await suite.db
      .selectFrom('audit_events')
      .select(['kind', 'actor', 'payload'])
      .where('workflow_id', '=', workflowId)
      .orderBy('seq')
      .execute();
    const retired = events.find((e) => e.kind === 'model.retired');
    expect(retired).toMatchObject({ actor: 'ci@hospital.example', payload: { reason: REASON, from: 'deployed', routeRetired: true } });
    expect((retired!.payload as { approvals: Array<{ approver: string }> }).approvals.map((a) => a.approver)).toEqual(['omar@hospital.example']);
    expect(events.map((e) => e.kind)).toContain('serving.unloaded');

    // Evidence retention runs from the retirement date: each object's lock is at least retirement + 7 years (the pack's default).
    const row = await suite.db.selectFrom('retirements').selectAll().where('model_name', '=', model).executeTakeFirstOrThrow();
    const floor = new Date(outcome.retiredAt);
    floor.setUTCFullYear(floor.getUTCFullYear() + 7);
    expect(row.retention.map((r) => r.role).sort()).toEqual(expect.arrayContaining(['artifact', 'manifest', 'provenance', 'raw']));
    const s3 = createS3(env);
    try {
      for (const r of row.retention.filter((x) => x.outcome !== 'missing')) {
        const loc = parseS3Uri(r.uri)!;
        const head = await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }));
        expect(head.ObjectLockMode, r.uri).toBe('COMPLIANCE');
        expect(head.ObjectLockRetainUntilDate!.getTime(), r.uri).toBeGreaterThanOrEqual(floor.getTime() - 86_400_000);
      }
    } finally {
      s3.destroy();
    }
  });

  it('trace and status show the serving state and the deployment history; a second retirement is refused', async () => {
    const traced = await factoryCli(['trace', `${model}@${version}`, '--json']);
    expect(traced.code, traced.stderr).toBe(0);
    const t = JSON.parse(traced.stdout) as {
      serving: { model: { state: string }; version: { state: string; number: number }; history: Array<{ kind: string; version: number }> };
      retirement: { reason: string; approvals: Array<{ approver: string }> };
      approvals: Array<{ approver: string }>;
    };
    expect(t.serving.version).toMatchObject({ number: version, state: 'retired' });
    expect(t.serving.model.state).toBe('retired');
    expect(t.serving.history.map((e) => `${e.kind}:${e.version}`)).toEqual([`deployed:${version}`, `retired:${version}`]);
    expect(t.retirement).toMatchObject({ reason: REASON, approvals: [{ approver: 'omar@hospital.example' }] });
    // The release's approvals stay the release's.
    expect(t.approvals.map((a) => a.approver)).toEqual(['omar@hospital.example']);
    const human = await factoryCli(['trace', `${model}@${version}`]);
    expect(human.stdout).toMatch(/serving\n {2}\S+@\d+ {2}retired/);

    const status = await factoryCli(['status', lifecycleId, '--json']);
    expect(status.code, status.stderr).toBe(0);
    const st = JSON.parse(status.stdout) as { registry: { state: string; agrees: boolean }; serving: { version: { state: string }; history: unknown[] } };
    expect(st.registry).toMatchObject({ state: 'retired', agrees: true });
    expect(st.serving.version.state).toBe('retired');
    expect(st.serving.history).toHaveLength(2);

    // Its history is evidence too (exported as it closed: both runs), and the registry agrees with both histories.
    const retirementId = `retire-${model}-${version}`;
    await waitFor(
      'the retirement histories exported',
      async () =>
        (await suite.db.selectFrom('history_exports').select('run_id').where('workflow_id', '=', retirementId).execute()).length >= 2 ? true : undefined,
      60_000,
    );
    for (const id of [lifecycleId, retirementId]) {
      const verified = await factoryCli(['audit', 'verify', '--history', '--workflow', id, '--json']);
      const h = (JSON.parse(verified.stdout) as { history: { discrepancies: unknown[] } }).history;
      expect(h.discrepancies, id).toEqual([]);
    }

    const again = await factoryCli(['retire', `${model}@${version}`, '--reason', REASON, '--as', 'ci@hospital.example', '--json'], cliEnv());
    expect(again.code).toBe(4);
    expect(JSON.parse(again.stdout)).toMatchObject({ refused: true, state: 'retired' });
    // Started past the CLI's check, the workflow refuses it for good (non-retryable), and status says what to do.
    await startRetirement(
      suite.client,
      { modelName: model, version, reason: REASON, requestedBy: 'ci@hospital.example' },
      { taskQueuePrefix: suite.workers.prefix },
    );
    await expect(suite.client.workflow.getHandle(retirementId).result()).rejects.toThrow();
    const failed = await factoryCli(['status', retirementId]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('AlreadyRetired');
    expect(failed.stderr).toContain('npx factory retire');
  });
});

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { shadowModelName } from '../../src/domain/rollback.ts';
import { createKey, writeKeysFile } from '../../src/gateway/keys.ts';
import { decide } from '../../src/lifecycle/client.ts';
import { policyPackPath } from '../../src/policy/pack.ts';
import { env } from '../helpers.ts';
import { GatewayProcess, factoryCli, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

// The model's name and the service key exist before the workers start: the workers see the
// rollback's first correct inference through the test's gateway with that key.
const MODEL = `rb-${randomBytes(4).toString('hex')}`;
const SHADOW = shadowModelName(MODEL);
const service = createKey('sam@hospital.example', 'operations');
const caller = createKey('lena@hospital.example', 'triage');
// A port of this stack's block not taken by the dev gateway (+0), gateway.test.ts (+1) nor retirement.test.ts (+2).
// Its pack and keys file are written in beforeAll, into this object (read at start()).
const gatewayEnv: NodeJS.ProcessEnv = {};
const gateway = new GatewayProcess(gatewayEnv, env.FACTORY_GATEWAY_PORT + 3);
const suite = lifecycleSuite({ workerEnv: { FACTORY_GATEWAY_SERVICE_KEY: service.key, FACTORY_GATEWAY_URL: gateway.base } });

// The first WDBC sample (malignant).
const SAMPLE = [
  17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003,
  0.006193, 25.38, 17.33, 184.6, 2019, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189,
];

async function infer(model: string, version?: number): Promise<{ status: number; version?: string; reason?: string }> {
  const route = version === undefined ? `/v2/models/${model}/infer` : `/v2/models/${model}/versions/${version}/infer`;
  const res = await fetch(`${gateway.base}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${caller.key}` },
    body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 30], datatype: 'FP32', data: SAMPLE }] }),
  });
  const body = (await res.json()) as { model_version?: string; reason?: string };
  return { status: res.status, version: body.model_version, reason: body.reason };
}

/** The factory CLI on the test workers' task queues. */
const cli = (args: string[]) => factoryCli(args, { FACTORY_TASK_QUEUE_PREFIX: suite.workers.prefix });

/** A rollback that must be refused (exit 4, recorded as refused with this failure type) and leave `served` answering. */
async function expectRefusedRollback(args: string[], type: string, served: number): Promise<void> {
  const r = await cli(['rollback', MODEL, ...args, '--json']);
  expect(r.code, r.stderr).toBe(4);
  expect(JSON.parse(r.stdout)).toMatchObject({ outcome: 'refused', failure: { type } });
  expect(await infer(MODEL)).toMatchObject({ status: 200, version: String(served) });
}

describe('rollback and rollback drills (real Triton, gateway, Temporal, PostgreSQL, S3)', () => {
  let older: number;
  let newer: number;

  beforeAll(async () => {
    // Two versions of one model, both deployed, the newer one last (so it is live).
    const [a, b] = await Promise.all([
      startTestLifecycle(suite.client, suite.workers, { modelName: MODEL }),
      startTestLifecycle(suite.client, suite.workers, { modelName: MODEL }),
    ]);
    const [sa, sb] = await Promise.all([a, b].map((l) => waitForStatus(suite.client, l.workflowId, (s) => s.stage === 'approval', 400_000)));
    const byVersion = [
      { id: a.workflowId, s: sa! },
      { id: b.workflowId, s: sb! },
    ].sort((x, y) => x.s.version! - y.s.version!);
    for (const { id, s } of byVersion) {
      const verdict = await decide(suite.client, id, {
        decision: 'approve',
        approver: 'omar@hospital.example',
        role: 'model-owner',
        meaning: 'approval',
        modelDigest: s.modelDigest!,
      });
      expect(verdict.accepted).toBe(true);
      const outcome = (await suite.client.workflow.getHandle(id).result()) as LifecycleOutcome;
      expect(outcome.outcome).toBe('deployed');
    }
    [older, newer] = byVersion.map((v) => v.s.version!) as [number, number];

    // The gateway on the pack in force plus two use cases: callers (the model and its shadow route) and the workers' service principal.
    const dir = path.join(env.FACTORY_HOME, 'test-data', `rollback-${suite.workers.prefix}`);
    fs.mkdirSync(dir, { recursive: true });
    const pack = parse(fs.readFileSync(policyPackPath(), 'utf8')) as Record<string, unknown>;
    pack.useCases = [
      { name: 'triage', models: [MODEL, SHADOW], riskTiers: ['low'] },
      { name: 'operations', models: [MODEL, SHADOW], riskTiers: ['low', 'medium', 'high'] },
    ];
    fs.writeFileSync(path.join(dir, 'pack.yaml'), stringify(pack));
    writeKeysFile(path.join(dir, 'keys.yaml'), [service.entry, caller.entry]);
    Object.assign(gatewayEnv, { FACTORY_POLICY_PACK: path.join(dir, 'pack.yaml'), FACTORY_GATEWAY_KEYS_FILE: path.join(dir, 'keys.yaml') });
    await gateway.start();
  }, 900_000);

  afterAll(async () => {
    await gateway.kill('SIGTERM');
  });

  it('drills a rollback on the shadow deployment: live traffic, the live route and the registry untouched; RTO and verdict recorded as evidence', async () => {
    const liveRoute = () => suite.db.selectFrom('gateway_routes').selectAll().where('model_name', '=', MODEL).executeTakeFirstOrThrow();
    const before = await liveRoute();
    // Live traffic all through the drill.
    const seen: Array<{ status: number; version?: string }> = [];
    let stop = false;
    const traffic = (async () => {
      while (!stop) seen.push(await infer(MODEL));
    })();
    const run = await cli(['drill', 'run', MODEL, '--as', 'vera@hospital.example', '--json']);
    stop = true;
    await traffic;
    expect(run.code, run.stderr).toBe(0);
    const outcome = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(outcome).toMatchObject({
      verdict: 'passed',
      modelName: MODEL,
      shadowModel: SHADOW,
      liveVersion: newer,
      previousVersion: older,
      policyRtoSeconds: 900,
    });
    expect(outcome.rtoMs).toBeGreaterThan(0);
    expect(outcome.forwardMs).toBeGreaterThan(0);
    expect(outcome.evidenceUri).toMatch(/^s3:\/\/.+\/drills\//);

    expect(seen.length).toBeGreaterThan(5);
    expect(seen.filter((r) => r.status !== 200 || r.version !== String(newer))).toEqual([]);
    expect(await liveRoute()).toEqual(before);
    const states = await suite.db.selectFrom('model_versions').select(['version', 'state']).where('model_name', '=', MODEL).orderBy('version').execute();
    expect(states.map((r) => r.state)).toEqual(['deployed', 'deployed']);
    const shadow = await suite.db.selectFrom('gateway_routes').selectAll().where('model_name', '=', SHADOW).executeTakeFirstOrThrow();
    expect(shadow).toMatchObject({ state: 'shadow', model_version_id: before.model_version_id, triton_model: SHADOW });

    const row = await suite.db
      .selectFrom('rollback_drills')
      .selectAll()
      .where('id', '=', outcome.drillId as string)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({
      verdict: 'passed',
      rto_ms: outcome.rtoMs,
      forward_ms: outcome.forwardMs,
      requested_by: 'vera@hospital.example',
      evidence_uri: outcome.evidenceUri,
    });
    const events = await suite.db.selectFrom('audit_events').select(['kind']).where('workflow_id', '=', row.id).execute();
    expect(events.map((e) => e.kind)).toEqual(['drill.passed']);

    // The schedule: created, then updated in place; a per-minute drill is refused.
    const sched = await cli(['drill', 'schedule', MODEL, '--every', '30d', '--json']);
    expect(sched.code, sched.stderr).toBe(0);
    const { scheduleId, created } = JSON.parse(sched.stdout) as { scheduleId: string; created: boolean };
    expect(created).toBe(true);
    const described = await suite.client.schedule.getHandle(scheduleId).describe();
    expect(described.action).toMatchObject({ workflowType: 'rollbackDrill', taskQueue: `${suite.workers.prefix}control` });
    expect((await cli(['drill', 'schedule', MODEL, '--every', '7d', '--json'])).code).toBe(0);
    expect((await cli(['drill', 'schedule', MODEL, '--every', '5m'])).code).toBe(2);
    await suite.client.schedule.getHandle(scheduleId).delete();
  });

  it('rolls back to the previous version: the gateway serves it at once, the registry and the trail say who and why, the RTO is recorded', async () => {
    expect(await infer(MODEL)).toMatchObject({ status: 200, version: String(newer) });

    const run = await cli(['rollback', MODEL, '--reason', 'test: v2 misbehaves', '--as', 'dana@hospital.example', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const outcome = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(outcome).toMatchObject({
      outcome: 'rolled-back',
      modelName: MODEL,
      fromVersion: newer,
      toVersion: older,
      verifiedVia: 'gateway',
      trigger: 'manual',
    });
    expect(outcome.rtoMs).toBeGreaterThan(0);
    expect(outcome.rtoMs).toBeLessThan(60_000);

    // Through the gateway, at once (no cache wait): the old version answers; the rolled-back one is refused.
    expect(await infer(MODEL)).toMatchObject({ status: 200, version: String(older) });
    expect(await infer(MODEL, newer)).toMatchObject({ status: 409, reason: 'rolled-back' });

    const states = await suite.db.selectFrom('model_versions').select(['version', 'state']).where('model_name', '=', MODEL).orderBy('version').execute();
    expect(states).toEqual([
      { version: older, state: 'deployed' },
      { version: newer, state: 'rolled-back' },
    ]);
    const row = await suite.db
      .selectFrom('rollbacks')
      .selectAll()
      .where('id', '=', outcome.workflowId as string)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({
      model_name: MODEL,
      from_version: newer,
      to_version: older,
      trigger: 'manual',
      requested_by: 'dana@hospital.example',
      reason: 'test: v2 misbehaves',
    });
    const recovery = await suite.db.selectFrom('rollback_recoveries').selectAll().where('rollback_id', '=', row.id).executeTakeFirstOrThrow();
    expect(recovery).toMatchObject({ rto_ms: outcome.rtoMs, verified_via: 'gateway' });
    const events = await suite.db.selectFrom('audit_events').select(['kind', 'actor']).where('workflow_id', '=', row.id).orderBy('seq').execute();
    expect(events).toEqual([
      { kind: 'model.rolled-back', actor: 'dana@hospital.example' },
      { kind: 'rollback.recovered', actor: 'factory' },
    ]);

    // Nothing deployed below the older version: refused (exit 4), recorded, serving unchanged.
    await expectRefusedRollback(['--reason', 'test: again'], 'VersionNotEligible', older);

    // Forward again with --to: the rolled-back version is served again, the older one is rolled back.
    const forward = await cli(['rollback', MODEL, '--to', String(newer), '--reason', 'test: fixed upstream', '--json']);
    expect(forward.code, forward.stderr).toBe(0);
    expect(JSON.parse(forward.stdout)).toMatchObject({ fromVersion: older, toVersion: newer });
    expect(await infer(MODEL)).toMatchObject({ status: 200, version: String(newer) });
  });

  it('refuses hostile or impossible requests before anything changes', async () => {
    const control = await cli(['rollback', MODEL, '--reason', 'evil\u001b[2Jreason']);
    expect(control.code).toBe(2);
    await expectRefusedRollback(['--to', '999', '--reason', 'test: no such version'], 'VersionNotEligible', newer);
    // The workflow itself judges its input (the monitor starts it directly): a poison input fails once, not in a retry loop.
    const handle = await suite.client.workflow.start('modelRollback', {
      workflowId: `rollback-${MODEL}-poison-${Date.now()}`,
      taskQueue: `${suite.workers.prefix}control`,
      args: [{ modelName: MODEL, reason: 'x'.repeat(5_000), requestedBy: 'monitor', trigger: 'monitoring' }],
    });
    const failure = await handle.result().then(
      () => undefined,
      (err: Error & { cause?: Error }) => err.cause?.message,
    );
    expect(failure).toMatch(/^invalid rollback input: reason/);
    expect(await infer(MODEL)).toMatchObject({ status: 200, version: String(newer) });
  });

  it('raises a finding when a drill cannot roll back (nothing deployed below the live version)', async () => {
    // After the tests above: the newer version is live and the older one rolled back.
    const run = await cli(['drill', 'run', MODEL, '--json']);
    expect(run.code).toBe(1);
    const outcome = JSON.parse(run.stdout) as { drillId: string; verdict: string; reason: string };
    expect(outcome).toMatchObject({ verdict: 'failed' });
    expect(outcome.reason).toMatch(/^VersionNotEligible: /);
    const events = await suite.db.selectFrom('audit_events').select(['kind', 'payload']).where('workflow_id', '=', outcome.drillId).execute();
    expect(events).toEqual([expect.objectContaining({ kind: 'drill.failed', payload: expect.objectContaining({ finding: true }) })]);
    expect(await infer(MODEL)).toMatchObject({ status: 200, version: String(newer) });
  });
});

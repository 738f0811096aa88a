import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError } from '@temporalio/client';
import { type Kysely, Migrator, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeActivityDeps } from '../../activities/deps.ts';
import { type LifecycleEndInput, recordLifecycleEnd, registerModel, setModelState } from '../../activities/registry.ts';
import { appendAuditEvent } from '../../src/audit/append.ts';
import { projectRoot } from '../../src/config/env.ts';
import { createDb, migrateToLatest } from '../../src/db/connect.ts';
import { migrationProvider } from '../../src/db/migrations/index.ts';
import type { Database, ModelState } from '../../src/db/schema.ts';
import { CANCEL_REQUEST_SIGNAL } from '../../src/domain/cancel.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import type { LifecycleListItem } from '../../src/lifecycle/client.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';
import { privateDatabase } from './private-database.ts';
import { DATASET, IMAGE, factoryCli, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();
const { db, workers } = suite;

describe('registry terminal states and one version per run (PostgreSQL, migration 0004)', () => {
  let priv: Kysely<Database>;
  let drop: () => Promise<void>;
  const savedUrl = process.env.DATABASE_URL;
  const digest = `sha256:${'e'.repeat(64)}`;
  let legacyId = 0;

  beforeAll(async () => {
    const p = await privateDatabase('factory_retry');
    drop = p.drop;
    priv = createDb(p.url, { poolSize: 2 });
    // A registry as it was before 0004, with a row in it: the migration must keep it, and its rules.
    const before = await new Migrator({ db: priv, provider: migrationProvider }).migrateTo('0003_registry_facts_guarded');
    expect(before.error).toBeUndefined();
    await sql`INSERT INTO dataset_versions (manifest_digest, name, raw_uri, raw_sha256, certified_uri, manifest_uri, rows_total, rows_accepted, rows_excluded, exclusions, workflow_id)
      VALUES (${digest}, 'wdbc', 's3://q/raw', ${digest}, 's3://c/data', 's3://e/manifest', 2, 2, 0, '[]', 'wf-legacy')`.execute(priv);
    legacyId = (
      await sql<{
        id: number;
      }>`INSERT INTO model_versions (model_name, version, state, risk_tier, artifact_digest, artifact_uri, dataset_manifest_digest, commit_sha, image_digest, requester, developer, metrics, environment, policy_digest, workflow_id)
      VALUES ('bc', 1, 'validated', 'low', ${digest}, 's3://a/model.onnx', ${digest}, 'abc1234', ${digest}, 'ci@hospital.example', 'alice@hospital.example', '{}', '{}', ${digest}, 'wf-legacy') RETURNING id`.execute(
        priv,
      )
    ).rows[0]!.id;
    expect(await migrateToLatest(priv)).toContain('0004_lifecycle_runs_and_terminal_states');
    // Its registration event, appended as the chain is now written (with its hashed text, migration 0022).
    await appendAuditEvent(priv, {
      workflowId: 'wf-legacy',
      runId: 'run-legacy',
      step: 'model.registered',
      kind: 'model.registered',
      actor: 'factory',
      payload: { modelVersionId: legacyId, version: 1, artifactDigest: digest },
      occurredAt: '2026-11-27T00:00:00.000Z',
    });
    // The activities reach their database through activityDeps(), made from the environment on first use.
    process.env.DATABASE_URL = p.url;
  });

  afterAll(async () => {
    await closeActivityDeps();
    process.env.DATABASE_URL = savedUrl;
    await priv?.destroy();
    await drop?.();
  });

  /** registerModel as the workflow calls it, then its model.registered event (audit verify checks each version against it). */
  const register = async (workflowId: string, runId: string | undefined, modelName = 'bc') => {
    const mv = await registerModel({
      workflowId,
      ...(runId ? { runId } : {}),
      modelName,
      riskTier: 'low',
      artifactDigest: digest,
      artifactUri: 's3://a/model.onnx',
      datasetManifestDigest: digest,
      commitSha: 'abc1234',
      imageDigest: digest,
      requester: 'ci@hospital.example',
      developer: 'alice@hospital.example',
      metrics: { auc: 0.99 },
      environment: {},
      policyDigest: digest,
    });
    await appendAuditEvent(priv, {
      workflowId,
      runId: runId ?? 'run-before-0004',
      step: 'model.registered',
      kind: 'model.registered',
      actor: 'factory',
      payload: { modelVersionId: mv.id, version: mv.version, artifactDigest: digest },
      occurredAt: '2026-11-27T00:30:00.000Z',
    });
    return mv;
  };
  const stateOf = async (id: number) =>
    (await priv.selectFrom('model_versions').select(['state', 'run_id']).where('id', '=', id).executeTakeFirstOrThrow()).state;
  const eventOf = (eventId: string) => priv.selectFrom('audit_events').selectAll().where('event_id', '=', eventId).executeTakeFirst();
  const end = (over: Partial<LifecycleEndInput> & Pick<LifecycleEndInput, 'workflowId' | 'runId'>) =>
    recordLifecycleEnd({ outcome: 'failed', cause: 'DatasetUnreadable: gone', at: '2026-11-27T01:00:00.000Z', ...over });

  it('registers one version per run: a retried activity finds its row, another run of the same workflow id gets its own, older rows stay unique per workflow id', async () => {
    const a1 = await register('wf-runs', 'run-a');
    expect(await register('wf-runs', 'run-a')).toEqual(a1);
    const b = await register('wf-runs', 'run-b');
    expect(b.id).not.toBe(a1.id);
    expect(b.version).toBe(a1.version + 1);
    // A caller from before runs were told apart (no runId) keeps one row per workflow id, beside the per-run rows.
    const legacy = await register('wf-runs', undefined);
    expect(await register('wf-runs', undefined)).toEqual(legacy);
    const rows = await priv.selectFrom('model_versions').select(['run_id']).where('workflow_id', '=', 'wf-runs').orderBy('id').execute();
    expect(rows.map((r) => r.run_id)).toEqual(['run-a', 'run-b', null]);
    // The row from before the migration kept its NULL run id; the guard now keeps run_id fixed like every other fact.
    expect(await priv.selectFrom('model_versions').select('run_id').where('id', '=', legacyId).executeTakeFirstOrThrow()).toEqual({ run_id: null });
    await expect(sql`UPDATE model_versions SET run_id = 'forged' WHERE id = ${legacyId}`.execute(priv)).rejects.toThrow(
      /only the state of a version may change/,
    );
    await expect(sql`UPDATE model_versions SET run_id = 'run-b' WHERE id = ${a1.id}`.execute(priv)).rejects.toThrow(/only the state of a version may change/);
    await expect(
      sql`INSERT INTO model_versions (model_name, version, state, risk_tier, artifact_digest, artifact_uri, dataset_manifest_digest, commit_sha, image_digest, requester, developer, metrics, environment, policy_digest, workflow_id, run_id)
      VALUES ('bc', 99, 'registered', 'low', ${digest}, 's3://a', ${digest}, 'abc1234', ${digest}, 'a@b.example', 'c@d.example', '{}', '{}', ${digest}, 'wf-runs', 'run-a')`.execute(
        priv,
      ),
    ).rejects.toThrow(/model_versions_workflow_run/);
  });

  it('failed and cancelled are reachable from registered, validated and approved, and final; deployed and rejected stay final', async () => {
    const from: ModelState[] = ['registered', 'validated', 'approved'];
    for (const outcome of ['failed', 'cancelled'] as const) {
      for (const state of from) {
        const { id } = await register(`wf-guard-${outcome}-${state}`, 'run-1', `guard-${outcome}-${state}`);
        for (const step of from.slice(1, from.indexOf(state) + 1)) await setModelState({ id, to: step });
        expect(await stateOf(id)).toBe(state);
        await sql`UPDATE model_versions SET state = ${outcome} WHERE id = ${id}`.execute(priv);
        // Final: nothing leaves it, not even the way back.
        for (const to of ['registered', 'validated', 'approved', 'deployed', 'rejected', outcome === 'failed' ? 'cancelled' : 'failed']) {
          await expect(sql`UPDATE model_versions SET state = ${to} WHERE id = ${id}`.execute(priv), `${outcome} → ${to}`).rejects.toThrow(
            /is not a lifecycle transition/,
          );
        }
        await expect(setModelState({ id, to: 'approved' })).rejects.toMatchObject({ type: 'IllegalTransition' });
      }
    }
    for (const final of ['deployed', 'rejected'] as const) {
      const { id } = await register(`wf-guard-${final}`, 'run-1', `guard-${final}`);
      if (final === 'deployed') for (const to of ['validated', 'approved', 'deployed'] as const) await setModelState({ id, to });
      else await setModelState({ id, to: 'rejected' });
      for (const to of ['failed', 'cancelled']) {
        await expect(sql`UPDATE model_versions SET state = ${to} WHERE id = ${id}`.execute(priv)).rejects.toThrow(
          new RegExp(`${final} → ${to} is not a lifecycle transition`),
        );
        await expect(setModelState({ id, to: to as ModelState })).rejects.toMatchObject({ type: 'IllegalTransition' });
      }
    }
    // The migration widened the state check, nothing else: an unknown state is still refused.
    await expect(sql`UPDATE model_versions SET state = 'retired' WHERE id = ${legacyId}`.execute(priv)).rejects.toThrow(
      /model_versions_state_check|not a lifecycle transition/,
    );
  });

  it('recordLifecycleEnd moves the version and appends the terminal event in one transaction, once; a final version is left as it is', async () => {
    const { id } = await register('wf-end', 'run-1', 'end');
    await setModelState({ id, to: 'validated' });
    const first = await end({
      workflowId: 'wf-end',
      runId: 'run-1',
      modelVersionId: id,
      outcome: 'cancelled',
      cause: 'no longer needed',
      actor: 'dana@hospital.example',
    });
    expect(first).toEqual({ eventId: 'wf-end/run-1/lifecycle.cancelled', duplicate: false, modelVersion: { id, from: 'validated', to: 'cancelled' } });
    expect(await stateOf(id)).toBe('cancelled');
    const event = await eventOf('wf-end/run-1/lifecycle.cancelled');
    expect(event).toMatchObject({
      workflow_id: 'wf-end',
      run_id: 'run-1',
      step: 'lifecycle.cancelled',
      kind: 'lifecycle.cancelled',
      actor: 'dana@hospital.example',
      occurred_at: '2026-11-27T01:00:00.000Z',
    });
    expect(event!.payload).toEqual({ outcome: 'cancelled', cause: 'no longer needed', modelVersion: { id, from: 'validated', to: 'cancelled' } });
    // A retried activity: nothing more is written.
    const count = async () => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM audit_events`.execute(priv)).rows[0]!.n);
    const before = await count();
    expect(await end({ workflowId: 'wf-end', runId: 'run-1', modelVersionId: id, outcome: 'cancelled', cause: 'no longer needed' })).toMatchObject({
      duplicate: true,
    });
    expect(await count()).toBe(before);
    expect(await stateOf(id)).toBe('cancelled');

    // A lifecycle that failed before it registered anything: the event alone.
    expect(await end({ workflowId: 'wf-end-early', runId: 'run-1' })).toEqual({ eventId: 'wf-end-early/run-1/lifecycle.failed', duplicate: false });

    // Deployed stays deployed; the event still says how the run ended, and that the version was left.
    const d = await register('wf-end-deployed', 'run-1', 'end-deployed');
    for (const to of ['validated', 'approved', 'deployed'] as const) await setModelState({ id: d.id, to });
    expect(await end({ workflowId: 'wf-end-deployed', runId: 'run-1', modelVersionId: d.id })).toMatchObject({
      modelVersion: { id: d.id, from: 'deployed', to: 'deployed' },
    });
    expect(await stateOf(d.id)).toBe('deployed');

    // Another lifecycle's version is not this one's to end (non-retryable), and nothing is written.
    const n = await count();
    await expect(end({ workflowId: 'wf-other', runId: 'run-1', modelVersionId: id })).rejects.toMatchObject({
      type: 'UnknownModelVersion',
      nonRetryable: true,
    });
    await expect(end({ workflowId: 'wf-x', runId: 'run-1', outcome: 'done' as 'failed' })).rejects.toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    await expect(end({ workflowId: 'wf-x', runId: 'run-1', at: 'yesterday' })).rejects.toMatchObject({ type: 'InvalidInput' });
    expect(await count()).toBe(n);
  });

  it('a hostile cause is stored escaped and bounded to 2000 characters, and the chain and projection still verify', async () => {
    const hostile = `\u001b]0;owned\u0007line\nforged\u202e\u0000${'x'.repeat(5_000)}`;
    const r = await end({ workflowId: 'wf-hostile', runId: 'run-1', cause: hostile, actor: 'eve\u001b[2J' });
    const event = await eventOf(r.eventId);
    const cause = (event!.payload as { cause: string }).cause;
    expect(cause.startsWith('\\x1b]0;owned\\x07line\\x0aforged\\u202e\\x00xxx')).toBe(true);
    expect(cause.length).toBe(2_000);
    expect(cause.endsWith('…')).toBe(true);
    expect(cause).not.toMatch(/[\u0000-\u001f\u202e]/);
    expect(event!.actor).toBe('eve\\x1b[2J');

    const verify = await factoryCli(['audit', 'verify', '--json'], { DATABASE_URL: process.env.DATABASE_URL });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    // Every version made here (per run, per workflow id, from before 0004) matched its own model.registered event.
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, chain: { ok: true }, projection: { ok: true, mismatches: [] } });
  });

  it("audit verify checks each run's version against its own run's event: a row of the second run changed around the triggers is named", async () => {
    const row = await priv
      .selectFrom('model_versions')
      .select(['id', 'version', 'artifact_digest'])
      .where('workflow_id', '=', 'wf-runs')
      .where('run_id', '=', 'run-b')
      .executeTakeFirstOrThrow();
    const forged = `sha256:${'f'.repeat(64)}`;
    const aroundTriggers = (digestTo: string) =>
      priv.transaction().execute(async (tx) => {
        await sql`SET LOCAL session_replication_role = replica`.execute(tx);
        await sql`UPDATE model_versions SET artifact_digest = ${digestTo} WHERE id = ${row.id}`.execute(tx);
      });
    await aroundTriggers(forged);
    try {
      const verify = await factoryCli(['audit', 'verify', '--json'], { DATABASE_URL: process.env.DATABASE_URL });
      expect(verify.code).toBe(7);
      expect(JSON.parse(verify.stdout).projection.mismatches).toEqual([
        { table: 'model_versions', id: `bc@${row.version}`, reason: `artifact_digest is "${forged}", the audit trail says "${digest}"` },
      ]);
    } finally {
      await aroundTriggers(row.artifact_digest);
    }
  });
});

// ---- on the real stack -----------------------------------------------------------------------------

/** A dataset directory inside the project's datasets/ (an allowed input root), absent until a test creates it. */
const lateDir = path.join(projectRoot, 'datasets', `late-${workers.prefix.slice(0, -1)}`);
afterAll(() => fs.rmSync(lateDir, { recursive: true, force: true }));

const OMAR = { approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval' };

function startArgs(input: { modelName: string; datasetPath: string; commitSha: string }): string[] {
  return [
    'lifecycle',
    'start',
    '--model',
    input.modelName,
    '--dataset',
    input.datasetPath,
    '--commit',
    input.commitSha,
    '--image',
    IMAGE,
    '--risk',
    'low',
    '--requester',
    'ci@hospital.example',
    '--developer',
    'alice@hospital.example',
    '--epochs',
    '200',
  ];
}

async function approveAndDeploy(workflowId: string): Promise<LifecycleOutcome> {
  const s = await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval', 240_000);
  await suite.client.workflow.getHandle(workflowId).signal('approve', { ...OMAR, modelDigest: s.modelDigest });
  return (await suite.client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
}

/** The runs `lifecycle list` shows for a model, once visibility has them in the expected statuses. */
async function listedRuns(model: string, expected: string[]): Promise<LifecycleListItem[]> {
  let last = '';
  for (let i = 0; i < 100; i++) {
    const r = await factoryCli(['lifecycle', 'list', '--model', model, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const items = (JSON.parse(r.stdout) as { lifecycles: LifecycleListItem[] }).lifecycles;
    last = r.stdout;
    if (JSON.stringify(items.map((x) => x.temporalStatus).sort()) === JSON.stringify([...expected].sort())) return items;
    await sleep(200);
  }
  throw new Error(`lifecycle list never showed ${expected.join(', ')}: ${last}`);
}

const auditVerify = async () => {
  const r = await factoryCli(['audit', 'verify', '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
};

describe('retry, cancel and list of lifecycles (real stack)', () => {
  it('a lifecycle whose dataset is missing fails; a start says so and points at retry; once the file exists, `lifecycle retry` runs a new run to deployment', async () => {
    const datasetPath = path.join(lateDir, 'wdbc.csv');
    const modelName = `bc-${workers.prefix.slice(1, -1)}-late`;
    const { workflowId, runId: firstRun, input } = await startTestLifecycle(suite.client, workers, { modelName, datasetPath });
    const err = await suite.client.workflow
      .getHandle(workflowId)
      .result()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);

    // The same start again (as a retried CI job would send it): refused, exit 4, pointing at retry.
    const again = await factoryCli(startArgs(input));
    expect(again.code, again.stderr).toBe(4);
    expect(again.stderr).toContain(`ended FAILED (DatasetUnreadable:`);
    expect(again.stderr).toContain(`next: run it again with the same inputs: npx factory lifecycle retry ${workflowId}`);
    const againJson = JSON.parse((await factoryCli([...startArgs(input), '--json'])).stdout) as Record<string, unknown>;
    expect(againJson).toMatchObject({ workflowId, runId: firstRun, refused: true, temporalStatus: 'FAILED', failure: { type: 'DatasetUnreadable' } });

    fs.mkdirSync(lateDir, { recursive: true });
    fs.copyFileSync(DATASET, datasetPath);
    fs.copyFileSync(path.join(path.dirname(DATASET), 'schema.json'), path.join(lateDir, 'schema.json'));

    const retried = await factoryCli(['lifecycle', 'retry', workflowId, '--json']);
    expect(retried.code, retried.stderr).toBe(0);
    const r = JSON.parse(retried.stdout) as { workflowId: string; runId: string; previousRunId: string; previousStatus: string; existing: boolean };
    expect(r).toMatchObject({ workflowId, previousRunId: firstRun, previousStatus: 'FAILED', existing: false });
    expect(r.runId).not.toBe(firstRun);

    const outcome = await approveAndDeploy(workflowId);
    expect(outcome).toMatchObject({ outcome: 'deployed', modelName });

    // The first run never registered (its end is recorded all the same); the second registered one version, under its own run id.
    expect(
      await db.selectFrom('audit_events').select('payload').where('event_id', '=', `${workflowId}/${firstRun}/lifecycle.failed`).executeTakeFirstOrThrow(),
    ).toMatchObject({
      payload: { outcome: 'failed', cause: expect.stringContaining('DatasetUnreadable') },
    });
    const rows = await db.selectFrom('model_versions').select(['run_id', 'state', 'version']).where('workflow_id', '=', workflowId).execute();
    expect(rows).toEqual([{ run_id: r.runId, state: 'deployed', version: outcome.outcome === 'deployed' ? outcome.version : -1 }]);
    // Each run has its own audit events: the new run's ids carry its run id.
    const started = await db
      .selectFrom('audit_events')
      .select(['run_id'])
      .where('workflow_id', '=', workflowId)
      .where('step', '=', 'lifecycle.started')
      .orderBy('seq')
      .execute();
    expect(started.map((e) => e.run_id)).toEqual([firstRun, r.runId]);
    const trace = JSON.parse((await factoryCli(['trace', modelName, '--json'])).stdout) as ModelTrace;
    expect(trace.model).toMatchObject({ workflowId, runId: r.runId, state: 'deployed' });

    const listed = await listedRuns(modelName, ['FAILED', 'COMPLETED']);
    expect(listed.map((x) => [x.workflowId, x.runId, x.temporalStatus]).sort()).toEqual(
      [
        [workflowId, firstRun, 'FAILED'],
        [workflowId, r.runId, 'COMPLETED'],
      ].sort(),
    );
    expect(listed.find((x) => x.runId === r.runId)).toMatchObject({ stage: 'deployed', modelName, riskTier: 'low', closeTime: expect.any(String) });
    const human = await factoryCli(['lifecycle', 'list', '--model', modelName]);
    expect(human.stdout).toMatch(/^WORKFLOW ID\s+RUN\s+STATUS\s+STAGE\s+MODEL\s+RISK\s+STARTED\s+CLOSED$/m);
    expect(human.stdout).toContain(`${workflowId}  ${r.runId}  COMPLETED`);
    const deployedOnly = JSON.parse((await factoryCli(['lifecycle', 'list', '--model', modelName, '--state', 'deployed', '--json'])).stdout) as {
      lifecycles: LifecycleListItem[];
    };
    expect(deployedOnly.lifecycles.map((x) => x.runId)).toEqual([r.runId]);

    // Deployed: a retry is refused (exit 4), and a start with the same inputs finds it as before.
    const refused = await factoryCli(['lifecycle', 'retry', workflowId]);
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toContain(`lifecycle ${workflowId} is closed (COMPLETED: deployed)`);
    const found = await factoryCli([...startArgs(input), '--json']);
    expect(found.code, found.stderr).toBe(0);
    expect(JSON.parse(found.stdout)).toMatchObject({ workflowId, runId: r.runId, existing: true });

    await auditVerify();
  }, 420_000);

  it('`lifecycle cancel` sends the reason, then cancels: the run ends CANCELED; a retry registers a second version under its own run and deploys', async () => {
    const modelName = `bc-${workers.prefix.slice(1, -1)}-cancel`;
    const { workflowId, runId: firstRun } = await startTestLifecycle(suite.client, workers, { modelName });
    await waitForStatus(suite.client, workflowId, (st) => st.stage === 'approval', 240_000);

    const running = await factoryCli(['lifecycle', 'retry', workflowId]);
    expect(running.code, running.stderr).toBe(4);
    expect(running.stderr).toContain('is running: nothing to retry');
    const badReason = await factoryCli(['lifecycle', 'cancel', workflowId, '--reason', 'stop\u001b[2J', '--as', 'dana@hospital.example']);
    expect(badReason.code, badReason.stderr).toBe(2);
    expect(badReason.stderr).toContain('reason: no control characters');

    const cancelled = await factoryCli([
      'lifecycle',
      'cancel',
      workflowId,
      '--reason',
      'wrong training data',
      '--as',
      'dana@hospital.example',
      '--wait',
      '--json',
    ]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(JSON.parse(cancelled.stdout)).toMatchObject({ workflowId, runId: firstRun, stage: 'approval', requested: true, temporalStatus: 'CANCELED' });
    // The reason went to the workflow before the cancellation, as the signal the workflow records it from.
    const history = await suite.client.workflow.getHandle(workflowId, firstRun).fetchHistory();
    const kinds = history
      .events!.map((e) =>
        e.workflowExecutionSignaledEventAttributes?.signalName === CANCEL_REQUEST_SIGNAL
          ? 'signal'
          : e.workflowExecutionCancelRequestedEventAttributes
            ? 'cancel'
            : '',
      )
      .filter(Boolean);
    expect(kinds).toEqual(['signal', 'cancel']);
    const signalled = history.events!.find((e) => e.workflowExecutionSignaledEventAttributes?.signalName === CANCEL_REQUEST_SIGNAL)!;
    const payload = JSON.parse(Buffer.from(signalled.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!.data!).toString('utf8'));
    expect(payload).toEqual({ by: 'dana@hospital.example', reason: 'wrong training data' });

    const status = await factoryCli(['status', workflowId, '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ temporalStatus: 'CANCELED' });
    const twice = await factoryCli(['lifecycle', 'cancel', workflowId, '--reason', 'again']);
    expect(twice.code, twice.stderr).toBe(4);
    expect(twice.stderr).toContain('is closed (CANCELED');

    const retried = JSON.parse((await factoryCli(['lifecycle', 'retry', workflowId, '--json'])).stdout) as { runId: string; previousStatus: string };
    expect(retried.previousStatus).toBe('CANCELED');
    expect(await approveAndDeploy(workflowId)).toMatchObject({ outcome: 'deployed' });

    // One version per run that registered, each under its own run id: the cancelled run's ended cancelled,
    // recorded with who cancelled and why (the workflow's compensation, from the cancelRequest signal).
    const rows = await db.selectFrom('model_versions').select(['id', 'run_id', 'state']).where('workflow_id', '=', workflowId).orderBy('version').execute();
    expect(rows.map((x) => [x.run_id, x.state])).toEqual([
      [firstRun, 'cancelled'],
      [retried.runId, 'deployed'],
    ]);
    const ended = await db
      .selectFrom('audit_events')
      .select(['actor', 'payload'])
      .where('event_id', '=', `${workflowId}/${firstRun}/lifecycle.cancelled`)
      .executeTakeFirstOrThrow();
    expect(ended.actor).toBe('dana@hospital.example');
    expect(ended.payload).toMatchObject({
      outcome: 'cancelled',
      cause: expect.stringContaining('wrong training data'),
      modelVersion: { id: rows[0]!.id, from: 'validated', to: 'cancelled' },
    });
    await listedRuns(modelName, ['CANCELED', 'COMPLETED']);
    await auditVerify();
  }, 420_000);
});

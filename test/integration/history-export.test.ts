import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import type { HistoryCheckResult } from '../../src/history/verify.ts';
import { parseS3Uri } from '../../src/serving/s3-uri.ts';
import { createS3 } from '../../src/storage/s3.ts';
import { referencedObjects } from '../../src/audit/objects.ts';
import { hashObject } from '../../src/audit/objects-check.ts';
import { projectRoot } from '../../src/config/env.ts';
import { putOnce, sha256Digest } from '../../src/storage/objects.ts';
import { env, stackPolicyText } from '../helpers.ts';
import { factoryCli, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

// The stack's pack (the default with the dev keys) with its own retention: 6 years in days for evidence,
// 10 calendar years for histories.
const policyFile = path.join(env.FACTORY_HOME, 'test-policy-retention.yaml');
fs.mkdirSync(env.FACTORY_HOME, { recursive: true });
fs.writeFileSync(policyFile, stackPolicyText().replace('  default: 7y', '  default: 2190d\n  histories: 10y'));
const cliEnv = { FACTORY_POLICY_PACK: policyFile };

const suite = lifecycleSuite({ workerEnv: cliEnv });
const { db, workers } = suite;
const s3 = createS3(env);
afterAll(() => s3.destroy());

const DAY = 86_400_000;
const approve = (modelDigest: string) => ({ approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval', modelDigest });

async function exportsOf(workflowId: string, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await db.selectFrom('history_exports').selectAll().where('workflow_id', '=', workflowId).orderBy('run_index').execute();
    if (rows.length) return rows;
    if (Date.now() > deadline) throw new Error(`no history export for ${workflowId} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The Object Lock retention of an object's current version, as S3 reports it (head-object). */
async function retentionOf(uri: string): Promise<{ mode?: string; until?: Date }> {
  const loc = parseS3Uri(uri)!;
  const r = await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }));
  return { mode: r.ObjectLockMode, until: r.ObjectLockRetainUntilDate };
}

function expectLockedFor(r: { mode?: string; until?: Date }, retentionMs: number, what: string, { shared = false } = {}) {
  expect(r.mode, what).toBe('COMPLIANCE');
  // Written during this test: retain-until is the pack's retention from then (an hour of slack for a slow
  // machine). A content-addressed object another lifecycle wrote first (the same dataset) keeps the longer
  // of the two: a lock is extended, never shortened.
  const wanted = Date.now() + retentionMs;
  if (shared) expect(r.until!.getTime(), what).toBeGreaterThan(wanted - 3_600_000);
  else expect(Math.abs(r.until!.getTime() - wanted), what).toBeLessThan(3_600_000);
}

const tenYearsMs = () => {
  const d = new Date();
  d.setUTCFullYear(d.getUTCFullYear() + 10);
  return d.getTime() - Date.now();
};

describe('histories kept as evidence; retention from the pack on every evidence object (real Temporal, PostgreSQL, S3)', () => {
  it('an object stored unlocked before retention applied is locked when it is written again (same bytes, same version)', async () => {
    const Bucket = `${env.S3_BUCKET_PREFIX}artifacts`;
    const Key = `test/${workers.prefix}unlocked.bin`;
    const first = await s3.send(new PutObjectCommand({ Bucket, Key, Body: 'bytes', Metadata: { sha256: sha256Digest('bytes') } }));
    expect((await retentionOf(`s3://${Bucket}/${Key}`)).mode).toBeUndefined();
    const until = new Date(Date.now() + 2190 * DAY);
    const again = await putOnce(s3, Bucket, Key, 'bytes', { retainUntil: until });
    expect(again.versionId).toBe(first.VersionId);
    expectLockedFor(await retentionOf(`s3://${Bucket}/${Key}`), 2190 * DAY, 'relocked');
  });

  it('a deployed lifecycle: history exported on close, locked, recorded, signed into the chain; every evidence object locked; export again adds nothing; verify --history passes, then catches an inserted approval', async () => {
    const { workflowId } = await startTestLifecycle(suite.client, workers, { modelName: `bc-${workers.prefix.slice(1, -1)}-hx` });
    const status = await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval');
    const handle = suite.client.workflow.getHandle(workflowId);
    await handle.signal('approve', approve(status.modelDigest!));
    const outcome = (await handle.result()) as LifecycleOutcome;
    expect(outcome.outcome).toBe('deployed');
    const closedRunId = (await handle.describe()).runId;

    // The archiver (a workflow the lifecycle started as it closed) exported the one run.
    const [row, ...more] = await exportsOf(workflowId);
    expect(more).toEqual([]);
    expect(row).toMatchObject({ run_id: closedRunId, closed_run_id: closedRunId, run_index: 0, status: 'COMPLETED' });
    const loc = parseS3Uri(row!.uri)!;
    const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key }))).Body!.transformToByteArray());
    expect(sha256Digest(body)).toBe(row!.digest);
    const exported = JSON.parse(body.toString()) as { events: Array<{ eventType: string }> };
    expect(exported.events).toHaveLength(row!.events);
    expect(exported.events.at(-1)!.eventType).toBe('EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED');
    expectLockedFor(await retentionOf(row!.uri), tenYearsMs(), 'exported history');
    // audit verify --objects hashes it like every object the registry vouches for.
    const ref = (await referencedObjects(db)).find((r) => r.table === 'history_exports' && r.id === `${workflowId}/${closedRunId}`);
    expect(ref).toMatchObject({ role: 'history', uri: row!.uri, expected: row!.digest });
    expect(await hashObject(s3, ref!)).toMatchObject({ state: 'ok' });

    // Signed into the chain: the audit event carries the digest.
    const event = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('event_id', '=', `${workflowId}/${closedRunId}/history.exported`)
      .executeTakeFirstOrThrow();
    expect(event.kind).toBe('history.exported');
    expect(event.payload).toMatchObject({ closedRunId, status: 'COMPLETED', runs: [{ runId: closedRunId, digest: row!.digest, uri: row!.uri }] });

    // Every evidence object of the lifecycle: COMPLIANCE until the pack's retain-until (2190 days); the
    // dataset's objects are named by their digest and shared with earlier lifecycles on the same data.
    const mv = await db.selectFrom('model_versions').selectAll().where('workflow_id', '=', workflowId).executeTakeFirstOrThrow();
    const ds = await db.selectFrom('dataset_versions').selectAll().where('manifest_digest', '=', mv.dataset_manifest_digest).executeTakeFirstOrThrow();
    const artifactKey = parseS3Uri(mv.artifact_uri)!.key;
    const evidence = `s3://${env.S3_BUCKET_PREFIX}evidence`;
    const objects = {
      raw: ds.raw_uri,
      'raw manifest': `${ds.raw_uri}.manifest.json`,
      certified: ds.certified_uri,
      'certified manifest': ds.certified_uri.replace(/data\.csv$/, 'manifest.json'),
      'manifest (evidence)': ds.manifest_uri,
      artifact: mv.artifact_uri,
      environment: `${evidence}/${artifactKey}.environment.json`,
      evaluation: `${evidence}/${artifactKey}.evaluation.json`,
    };
    const shared = new Set(['raw', 'raw manifest', 'certified', 'certified manifest', 'manifest (evidence)']);
    for (const [what, uri] of Object.entries(objects)) expectLockedFor(await retentionOf(uri), 2190 * DAY, `${what} ${uri}`, { shared: shared.has(what) });

    // Export again (a re-run, e.g. by an operator): the same object, no second version, no second event.
    const again = await factoryCli(['history', 'export', workflowId, '--json'], cliEnv);
    expect(again.code, again.stderr).toBe(0);
    const re = JSON.parse(again.stdout) as { runs: Array<{ digest: string; duplicate: boolean }>; auditEventId: string };
    expect(re.runs).toEqual([expect.objectContaining({ digest: row!.digest, duplicate: true })]);
    expect(re.auditEventId).toBe(event.event_id);
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: loc.bucket, Prefix: loc.key }));
    expect((versions.Versions ?? []).filter((v) => v.Key === loc.key)).toHaveLength(1);
    const human = await factoryCli(['history', 'export', workflowId], cliEnv);
    expect(human.stdout).toContain(`run ${closedRunId} COMPLETED: ${row!.events} events ${row!.digest} ${row!.uri}`);
    expect(human.stdout).toContain('(already exported)');

    // The projection matches the exported history.
    const clean = await factoryCli(['audit', 'verify', '--history', '--workflow', workflowId, '--json']);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    const cleanReport = JSON.parse(clean.stdout) as { ok: boolean; history: HistoryCheckResult };
    expect(cleanReport.history).toMatchObject({ ok: true, lifecycles: 1, exportedRuns: 1, liveRuns: 0, discrepancies: [] });

    // An approval a superuser slips into the projection (triggers guard only UPDATE and DELETE) is not in the history.
    const forgedId = `${workflowId}/${closedRunId}/decision-999`;
    await sql`
      INSERT INTO approvals (id, model_version_id, workflow_id, decision, approver, role, meaning, model_digest, comment, accepted, refusal_reason, policy_digest, decided_at)
      VALUES (${forgedId}, ${mv.id}, ${workflowId}, 'approve', 'lena@hospital.example', 'business', 'approval', ${mv.artifact_digest}, NULL, true, NULL, ${mv.policy_digest}, now())`.execute(
      db,
    );
    try {
      const caught = await factoryCli(['audit', 'verify', '--history', '--workflow', workflowId, '--json']);
      expect(caught.code).toBe(7);
      const report = JSON.parse(caught.stdout) as { ok: boolean; history: HistoryCheckResult };
      expect(report.ok).toBe(false);
      expect(report.history.discrepancies).toContainEqual({
        workflowId,
        kind: 'not-in-history',
        table: 'approvals',
        id: forgedId,
        reason: 'accepted approve by lena@hospital.example as business: no run of the history recorded it',
      });
      const caughtHuman = await factoryCli(['audit', 'verify', '--history', '--workflow', workflowId]);
      expect(caughtHuman.code).toBe(7);
      expect(caughtHuman.stdout).toContain(`${workflowId} approvals ${forgedId}: NOT-IN-HISTORY: accepted approve by lena@hospital.example as business`);
    } finally {
      // Other test files verify the whole database: the forged row goes, around the append-only trigger.
      await db.transaction().execute(async (tx) => {
        await sql`ALTER TABLE approvals DISABLE TRIGGER USER`.execute(tx);
        await sql`DELETE FROM approvals WHERE id = ${forgedId}`.execute(tx);
        await sql`ALTER TABLE approvals ENABLE TRIGGER USER`.execute(tx);
      });
    }
    console.log(`[fixture] deployed ${workflowId} archiver ${workflowId}/history-export/${closedRunId}`);
  }, 600_000);

  it('a lifecycle cancelled at the gate: cross-checked live while it runs, exported CANCELED when it closes; a failed one exported FAILED, a rejected one COMPLETED', async () => {
    const rejecting = await startTestLifecycle(suite.client, workers, { modelName: `bc-${workers.prefix.slice(1, -1)}-hr` });
    const failing = await startTestLifecycle(suite.client, workers, {
      modelName: `bc-${workers.prefix.slice(1, -1)}-hf`,
      datasetPath: path.join(projectRoot, 'datasets', 'no-such-dataset', 'data.csv'),
    });
    const { workflowId } = await startTestLifecycle(suite.client, workers, { modelName: `bc-${workers.prefix.slice(1, -1)}-hc` });
    await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval');
    const live = await factoryCli(['audit', 'verify', '--history', '--workflow', workflowId, '--json']);
    expect(live.code, live.stdout + live.stderr).toBe(0);
    expect((JSON.parse(live.stdout) as { history: HistoryCheckResult }).history).toMatchObject({ ok: true, exportedRuns: 0, liveRuns: 1 });
    const running = await factoryCli(['history', 'export', workflowId]);
    expect(running.code).toBe(4);
    expect(running.stderr).toContain('is still running');

    const cancel = await factoryCli(['lifecycle', 'cancel', workflowId, '--reason', 'superseded', '--wait']);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(await exportsOf(workflowId)).toEqual([expect.objectContaining({ status: 'CANCELED', run_index: 0 })]);
    expect(await exportsOf(failing.workflowId)).toEqual([expect.objectContaining({ status: 'FAILED', run_index: 0 })]);
    const toReject = await waitForStatus(suite.client, rejecting.workflowId, (st) => st.stage === 'approval');
    await suite.client.workflow.getHandle(rejecting.workflowId).signal('reject', { ...approve(toReject.modelDigest!), comment: 'not this one' });
    expect(await suite.client.workflow.getHandle(rejecting.workflowId).result()).toMatchObject({ outcome: 'rejected' });
    expect(await exportsOf(rejecting.workflowId)).toEqual([expect.objectContaining({ status: 'COMPLETED', run_index: 0 })]);
    for (const id of [workflowId, failing.workflowId, rejecting.workflowId]) {
      const v = await factoryCli(['audit', 'verify', '--history', '--workflow', id, '--json']);
      expect(v.code, v.stdout).toBe(0);
    }
    console.log(`[fixture] cancelled ${workflowId} failed ${failing.workflowId} rejected ${rejecting.workflowId}`);
  }, 600_000);
});

import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError } from '@temporalio/client';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { tritonPaths, tritonUrl } from '../../src/dev/components/triton.ts';
import { venvPaths } from '../../src/dev/venv.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { createLogger } from '../../src/log.ts';
import { buildProvenanceStatement, signProvenanceStatement } from '../../src/provenance/statement.ts';
import { parseS3Uri } from '../../src/serving/s3-uri.ts';
import { reconcileServing } from '../../src/serving/reconcile.ts';
import { TritonClient } from '../../src/serving/triton.ts';
import { factoryKeyFromPem, generateFactoryKeyPem, loadFactoryKey } from '../../src/signing/factory-key.ts';
import { sha256Digest } from '../../src/storage/objects.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';
import { env, tinyOnnx } from '../helpers.ts';
import { exec, factoryCli, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();
const { db, workers } = suite;
const s3 = createS3(env);
afterAll(() => s3.destroy());
const factoryKey = loadFactoryKey(env);
const verifier = path.join(projectRoot, 'test', 'verifiers', 'verify_provenance.py');

const approve = (modelDigest: string) => ({ approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval', modelDigest });

async function getObject(uri: string, versionId?: string): Promise<Buffer> {
  const loc = parseS3Uri(uri)!;
  const res = await s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key, VersionId: versionId }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

/** The outside verifier (securesystemslib + in-toto-attestation, Python): exit code and its JSON line. */
async function verifyOutside(envelope: Buffer, publicHex: string): Promise<{ code: number; out: Record<string, unknown> | undefined; err: string }> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'prov-')), 'envelope.json');
  fs.writeFileSync(file, envelope);
  try {
    const { stdout } = await exec(venvPaths(env).python, [verifier, file, publicHex]);
    return { code: 0, out: JSON.parse(stdout) as Record<string, unknown>, err: '' };
  } catch (e) {
    const x = e as { code: number; stderr: string };
    return { code: x.code, out: undefined, err: x.stderr };
  }
}

/** A superuser changing registry facts around the triggers, as an attacker with the database's keys would. */
async function aroundTriggers(
  id: number,
  set: { artifact_digest?: string; provenance_digest?: string; provenance?: { uri: string; digest: string; keyId: string } | null },
) {
  await db.transaction().execute(async (tx) => {
    await sql`SET LOCAL session_replication_role = replica`.execute(tx);
    if (set.artifact_digest) await sql`UPDATE model_versions SET artifact_digest = ${set.artifact_digest} WHERE id = ${id}`.execute(tx);
    if (set.provenance_digest) await sql`UPDATE model_versions SET provenance_digest = ${set.provenance_digest} WHERE id = ${id}`.execute(tx);
    if (set.provenance !== undefined) {
      const p = set.provenance;
      await sql`UPDATE model_versions SET provenance_uri = ${p?.uri ?? null}, provenance_digest = ${p?.digest ?? null}, provenance_key_id = ${p?.keyId ?? null}
        WHERE id = ${id}`.execute(tx);
    }
  });
}

/** `audit verify --json`: its exit code and the registry rows it names. */
async function auditVerify(): Promise<{ code: number; mismatches: Array<{ table: string; id: string; reason: string }> }> {
  const r = await factoryCli(['audit', 'verify', '--json']);
  return {
    code: r.code,
    mismatches: (JSON.parse(r.stdout) as { projection: { mismatches: Array<{ table: string; id: string; reason: string }> } }).projection.mismatches,
  };
}

async function tritonHas(model: string): Promise<boolean> {
  const index = await new TritonClient(tritonUrl(env)).index();
  return index.some((e) => e.name === model && e.state === 'READY');
}

describe('signed provenance for every model version (real Temporal, PostgreSQL, S3, Triton; outside verifier)', () => {
  it('a deployed lifecycle signs an in-toto/SLSA provenance under Object Lock that securesystemslib verifies; trace shows it; reconcile refuses a re-signed one', async () => {
    const { workflowId, input } = await startTestLifecycle(suite.client, workers, { modelName: `bc-${workers.prefix.slice(1, -1)}-prov` });
    const status = await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval', 300_000);
    const handle = suite.client.workflow.getHandle(workflowId);
    await handle.signal('approve', approve(status.modelDigest!));
    const outcome = (await handle.result()) as LifecycleOutcome;
    if (outcome.outcome !== 'deployed') throw new Error(`not deployed: ${JSON.stringify(outcome)}`);
    console.log(`[provenance] deployed lifecycle ${workflowId}`);

    const mv = await db.selectFrom('model_versions').selectAll().where('workflow_id', '=', workflowId).executeTakeFirstOrThrow();
    const ds = await db.selectFrom('dataset_versions').selectAll().where('manifest_digest', '=', mv.dataset_manifest_digest).executeTakeFirstOrThrow();
    expect(mv.provenance_uri).toMatch(new RegExp(`^s3://${bucket(env, 'evidence')}/provenance/`));
    expect(mv.provenance_key_id).toBe(factoryKey.keyId);
    const envelope = await getObject(mv.provenance_uri!);
    expect(sha256Digest(envelope)).toBe(mv.provenance_digest);

    // Locked in compliance mode: nobody can shorten or lift it.
    const loc = parseS3Uri(mv.provenance_uri!)!;
    const head = await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }));
    expect(head.ObjectLockMode).toBe('COMPLIANCE');
    expect(head.ObjectLockRetainUntilDate!.getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);

    // The outside verifier: signature by the factory's public key (hex), Statement v1, SLSA Provenance v1.
    const outside = await verifyOutside(envelope, factoryKey.publicKeyHex);
    expect(outside.code, outside.err).toBe(0);
    expect(outside.out).toMatchObject({
      keyid: factoryKey.keyId,
      subject: [{ sha256: mv.artifact_digest.slice(7) }],
      predicateType: 'https://slsa.dev/provenance/v1',
      invocationId: `${workflowId}/${mv.run_id}`,
      dependencies: expect.objectContaining({
        'raw-dataset': { sha256: ds.raw_sha256.slice(7) },
        'certified-manifest': { sha256: mv.dataset_manifest_digest.slice(7) },
        source: { gitCommit: input.commitSha },
        image: { sha256: input.imageDigest.slice(7) },
        'policy-pack': { sha256: mv.policy_digest.slice(7) },
      }),
    });
    // ...and refuses it with another key.
    const other = factoryKeyFromPem(generateFactoryKeyPem(), 'other');
    expect((await verifyOutside(envelope, other.publicKeyHex)).code).toBe(1);

    // The measured environment is kept (locked) and its digest is what the provenance names; the trainer's
    // code digest is the one `sha256sum` gives for the files it loaded.
    const statement = JSON.parse(Buffer.from((JSON.parse(envelope.toString()) as { payload: string }).payload, 'base64').toString()) as {
      predicate: {
        buildDefinition: { resolvedDependencies: Array<{ name: string; uri?: string; digest: Record<string, string>; annotations?: Record<string, unknown> }> };
      };
    };
    const dep = (name: string) => statement.predicate.buildDefinition.resolvedDependencies.find((d) => d.name === name)!;
    const measured = await getObject(dep('training-environment').uri!);
    expect(sha256Digest(measured)).toBe(`sha256:${dep('training-environment').digest.sha256}`);
    const packages = (JSON.parse(measured.toString()) as { packages: Array<{ name: string; version: string }> }).packages;
    expect(packages.find((p) => p.name === 'torch')?.version).toMatch(/^\d/);
    const files = (dep('trainer-code').annotations!.files as Array<{ path: string }>).map((f) => f.path);
    expect(files).toEqual(['trainers/common.py', 'trainers/train.py']);
    const { stdout: sums } = await exec('sh', ['-c', `sha256sum ${files.join(' ')} | sha256sum`], { cwd: projectRoot });
    expect(dep('trainer-code').digest.sha256).toBe(sums.split(' ')[0]);

    // Recorded: the audit event and the deployment's verification.
    const events = await db.selectFrom('audit_events').select(['kind', 'payload']).where('workflow_id', '=', workflowId).execute();
    expect(events.find((e) => e.kind === 'provenance.signed')?.payload).toMatchObject({
      uri: mv.provenance_uri,
      digest: mv.provenance_digest,
      keyId: factoryKey.keyId,
    });
    expect(events.find((e) => e.kind === 'model.deployed')?.payload).toMatchObject({
      provenance: { uri: mv.provenance_uri, digest: mv.provenance_digest, keyId: factoryKey.keyId },
    });

    // trace: URI, digest, signer, verified (human and --json).
    const ref = `${input.modelName}@${outcome.version}`;
    const traced = JSON.parse((await factoryCli(['trace', ref, '--json'])).stdout) as ModelTrace;
    expect(traced.provenance).toEqual({ uri: mv.provenance_uri, digest: mv.provenance_digest, keyId: factoryKey.keyId, verified: true });
    expect((await factoryCli(['trace', ref])).stdout).toContain(
      `${mv.provenance_digest}  (${mv.provenance_uri})  signed by ${factoryKey.keyId}  verified: yes`,
    );

    // An attacker re-signs the statement with their key, puts it as a new version of the (locked) object
    // and points the registry at it: trace says so, and after a Triton restart nothing reloads it.
    const forged = JSON.stringify(
      signProvenanceStatement(other, JSON.parse(Buffer.from((JSON.parse(envelope.toString()) as { payload: string }).payload, 'base64').toString())),
    );
    await s3.send(new PutObjectCommand({ Bucket: loc.bucket, Key: loc.key, Body: forged }));
    await aroundTriggers(mv.id, { provenance_digest: sha256Digest(forged) });
    try {
      const t = JSON.parse((await factoryCli(['trace', ref, '--json'])).stdout) as ModelTrace;
      expect(t.provenance).toMatchObject({ verified: false, reason: expect.stringMatching(/trusted factory key/) });
      const triton = new TritonClient(tritonUrl(env));
      await triton.unload(input.modelName);
      for (let i = 0; i < 50 && (await triton.versionReady(input.modelName, outcome.version)); i++) await sleep(100);
      const deps = { env, db, s3, log: createLogger('test-reconcile', 'silent') };
      const pass = await reconcileServing(deps, { ignoreBackoff: true });
      expect(pass.versions.find((v) => v.model === input.modelName)).toMatchObject({
        outcome: 'refused',
        reason: expect.stringMatching(/^provenance: .*trusted factory key/),
      });
      expect(await triton.versionReady(input.modelName, outcome.version)).toBe(false);
      const refused = await db
        .selectFrom('audit_events')
        .select('payload')
        .where('workflow_id', '=', workflowId)
        .where('kind', '=', 'provenance.refused')
        .execute();
      expect(refused).toHaveLength(1);
      expect(refused[0]!.payload).toMatchObject({ at: 'reconcile', version: outcome.version });
      // audit verify names the row: its provenance is not the one the trail recorded as signed.
      const forgedVerify = await auditVerify();
      expect(forgedVerify.code).toBe(7);
      expect(forgedVerify.mismatches).toContainEqual({ table: 'model_versions', id: ref, reason: expect.stringMatching(/^provenance_digest is "sha256:/) });

      // Erasing the provenance from the row does not turn it into a version from before provenance:
      // the trail says its run signed one, so reconcile refuses it and audit verify names it.
      await aroundTriggers(mv.id, { provenance: null });
      const erased = await reconcileServing(deps, { ignoreBackoff: true });
      expect(erased.versions.find((v) => v.model === input.modelName)).toMatchObject({
        outcome: 'refused',
        reason: 'provenance: the registry names no provenance for this version',
      });
      expect(await triton.versionReady(input.modelName, outcome.version)).toBe(false);
      const erasedVerify = await auditVerify();
      expect(erasedVerify.code).toBe(7);
      expect(erasedVerify.mismatches).toContainEqual({
        table: 'model_versions',
        id: ref,
        reason: expect.stringMatching(/^provenance_uri is null, the audit trail says "s3:/),
      });
    } finally {
      await aroundTriggers(mv.id, { provenance: { uri: mv.provenance_uri!, digest: mv.provenance_digest!, keyId: mv.provenance_key_id! } });
      // The forged version is locked too (the bucket's default retention): the original goes back on top.
      await s3.send(new PutObjectCommand({ Bucket: loc.bucket, Key: loc.key, Body: envelope, Metadata: { sha256: mv.provenance_digest! } }));
    }
    const restored = await reconcileServing({ env, db, s3, log: createLogger('test-reconcile', 'silent') }, { ignoreBackoff: true });
    expect(restored.versions.find((v) => v.model === input.modelName)?.outcome ?? 'already ready').toMatch(/reloaded|already ready/);
    expect((await auditVerify()).code).toBe(0);
  });

  it('tampering refused at deploy: an envelope replaced by another key, an artifact swapped with its registry digest: lifecycle failed, reason recorded, nothing loaded', async () => {
    const replaced = await startTestLifecycle(suite.client, workers, { modelName: `bc-${workers.prefix.slice(1, -1)}-env` });
    const swapped = await startTestLifecycle(suite.client, workers, { modelName: `bc-${workers.prefix.slice(1, -1)}-art` });
    const other = factoryKeyFromPem(generateFactoryKeyPem(), 'attacker');

    // 1. A new version of the envelope object, re-signed by another key (the locked original stays underneath).
    const s1 = await waitForStatus(suite.client, replaced.workflowId, (s) => s.stage === 'approval', 300_000);
    const mv1 = await db.selectFrom('model_versions').selectAll().where('workflow_id', '=', replaced.workflowId).executeTakeFirstOrThrow();
    const loc1 = parseS3Uri(mv1.provenance_uri!)!;
    const original = await getObject(mv1.provenance_uri!);
    const statement = JSON.parse(Buffer.from((JSON.parse(original.toString()) as { payload: string }).payload, 'base64').toString()) as ReturnType<
      typeof buildProvenanceStatement
    >;
    await s3.send(new PutObjectCommand({ Bucket: loc1.bucket, Key: loc1.key, Body: JSON.stringify(signProvenanceStatement(other, statement)) }));
    await suite.client.workflow.getHandle(replaced.workflowId).signal('approve', approve(s1.modelDigest!));

    // 2. Different model bytes put over the artifact (the artifacts bucket is not locked) and the registry's
    //    digest changed to match them by a superuser: only the signed subject still names the trained model.
    const s2 = await waitForStatus(suite.client, swapped.workflowId, (s) => s.stage === 'approval', 300_000);
    const mv2 = await db.selectFrom('model_versions').selectAll().where('workflow_id', '=', swapped.workflowId).executeTakeFirstOrThrow();
    const other2 = tinyOnnx();
    const loc2 = parseS3Uri(mv2.artifact_uri)!;
    const trained = await getObject(mv2.artifact_uri);
    await s3.send(new PutObjectCommand({ Bucket: loc2.bucket, Key: loc2.key, Body: other2, Metadata: { sha256: sha256Digest(other2) } }));
    await aroundTriggers(mv2.id, { artifact_digest: sha256Digest(other2) });
    await suite.client.workflow.getHandle(swapped.workflowId).signal('approve', approve(s2.modelDigest!));

    try {
      await checkRefusals();
      // audit verify --objects hashes each envelope too: the replaced one is named.
      const objects = await factoryCli(['audit', 'verify', '--objects', '--json']);
      expect(objects.code).toBe(7);
      expect((JSON.parse(objects.stdout) as { objects: { problems: unknown[] } }).objects.problems).toContainEqual(
        expect.objectContaining({ table: 'model_versions', id: `${replaced.input.modelName}@${mv1.version}`, role: 'provenance', state: 'different' }),
      );
    } finally {
      // What the attacker changed is put back (the suite's later `audit verify` runs see an intact registry).
      await aroundTriggers(mv2.id, { artifact_digest: mv2.artifact_digest });
      await s3.send(new PutObjectCommand({ Bucket: loc2.bucket, Key: loc2.key, Body: trained, Metadata: { sha256: mv2.artifact_digest } }));
      await s3.send(new PutObjectCommand({ Bucket: loc1.bucket, Key: loc1.key, Body: original, Metadata: { sha256: mv1.provenance_digest! } }));
    }

    async function checkRefusals() {
      for (const [run, mv, why] of [
        [replaced, mv1, /replaced since it was signed/],
        [swapped, mv2, /subject digest is sha256:[0-9a-f]{64}, the registry holds sha256:/],
      ] as const) {
        const handle = suite.client.workflow.getHandle(run.workflowId);
        await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
        console.log(`[provenance] refused lifecycle ${run.workflowId}`);
        // Refused once, for good (no retries), before anything was downloaded or loaded.
        const history = (await handle.fetchHistory()).events ?? [];
        expect(history.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deployToTriton')).toHaveLength(1);
        const row = await db.selectFrom('model_versions').select('state').where('id', '=', mv.id).executeTakeFirstOrThrow();
        expect(row.state).toBe('failed');
        const events = await db.selectFrom('audit_events').select(['kind', 'payload']).where('workflow_id', '=', run.workflowId).execute();
        expect(events.find((e) => e.kind === 'provenance.refused')?.payload).toMatchObject({ at: 'deploy', reason: expect.stringMatching(why) });
        expect(String((events.find((e) => e.kind === 'lifecycle.failed')?.payload as { cause?: string }).cause)).toMatch(/^ProvenanceMismatch: /);
        expect(events.some((e) => e.kind === 'model.deployed')).toBe(false);
        expect(await tritonHas(run.input.modelName)).toBe(false);
        expect(fs.existsSync(path.join(tritonPaths(env).modelRepository, run.input.modelName, String(mv.version)))).toBe(false);
      }
    }
  });
});

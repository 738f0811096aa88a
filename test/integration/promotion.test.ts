import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { parse, stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { appendAuditEvent } from '../../src/audit/append.ts';
import type { PromotionOutcome } from '../../src/domain/promotion.ts';
import { policyPackPath } from '../../src/policy/pack.ts';
import { buildProvenanceStatement, signProvenanceStatement } from '../../src/provenance/statement.ts';
import { loadFactoryKey } from '../../src/signing/factory-key.ts';
import { getBytes, putOnce, sha256Digest } from '../../src/storage/objects.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import { env } from '../helpers.ts';
import { factoryCli, lifecycleSuite } from './harness.ts';

// The workers read a pack naming a site (in the stack's artifacts bucket, under its own prefix) and the transfer purposes.
const packDir = path.join(env.FACTORY_HOME, 'test-data', `promotion-${randomBytes(4).toString('hex')}`);
const packFile = path.join(packDir, 'pack.yaml');
const SITE_PREFIX = `sites/north-${randomBytes(3).toString('hex')}`;
{
  fs.mkdirSync(packDir, { recursive: true });
  const pack = parse(fs.readFileSync(policyPackPath(), 'utf8')) as Record<string, unknown>;
  pack.sites = [{ name: 'clinic-north', bucket: bucket(env, 'artifacts'), prefix: SITE_PREFIX }];
  pack.transferPurposes = ['serving-at-partner-site'];
  fs.writeFileSync(packFile, stringify(pack));
}
const suite = lifecycleSuite({ startWorkers: false, workerEnv: { FACTORY_POLICY_PACK: packFile } });
const s3 = createS3(env);
afterAll(() => s3.destroy());

/** A registered, approved version with signed provenance, written as the lifecycle writes it (without training one). */
async function approvedVersion(name: string): Promise<{ id: number; artifactKey: string; artifactDigest: string; provenanceKey: string }> {
  const db = suite.db;
  const manifest = JSON.stringify({ dataset: name, classification: 'public' });
  const raw = await putOnce(s3, bucket(env, 'quarantine'), `${name}/raw/data.csv`, 'a,b\n1,2\n');
  const certified = await putOnce(s3, bucket(env, 'certified'), `${name}/c/data.csv`, 'a,b\n1,2\n');
  const manifestObj = await putOnce(s3, bucket(env, 'evidence'), `datasets/${name}/m.manifest.json`, manifest);
  await db
    .insertInto('dataset_versions')
    .values({
      manifest_digest: manifestObj.digest,
      name,
      raw_uri: raw.uri,
      raw_sha256: raw.digest,
      certified_uri: certified.uri,
      manifest_uri: manifestObj.uri,
      rows_total: 1,
      rows_accepted: 1,
      rows_excluded: 0,
      exclusions: JSON.stringify([]),
      workflow_id: `test-${name}`,
    })
    .execute();
  const artifactKey = `${name}/1/model.onnx`;
  const artifact = await putOnce(s3, bucket(env, 'artifacts'), artifactKey, randomBytes(4096));
  const workflow = { id: `test-lifecycle-${name}`, runId: 'r1' };
  const key = loadFactoryKey(env);
  const common = { commitSha: 'a'.repeat(40), imageDigest: `sha256:${'b'.repeat(64)}`, policyDigest: `sha256:${'c'.repeat(64)}` };
  const statement = buildProvenanceStatement({
    artifact: { name: 'model.onnx', uri: artifact.uri, digest: artifact.digest },
    dataset: {
      name,
      rawUri: raw.uri,
      rawSha256: raw.digest,
      manifestUri: manifestObj.uri,
      manifestDigest: manifestObj.digest,
      certifiedUri: certified.uri,
      certifiedSha256: certified.digest,
    },
    commitSha: common.commitSha,
    imageDigest: common.imageDigest,
    modelName: name,
    riskTier: 'low',
    training: { epochs: 1, seed: 7 },
    trainerCode: { digest: sha256Digest('code'), files: [] },
    trainingEnvironment: { uri: `s3://${bucket(env, 'evidence')}/env.json`, digest: sha256Digest('env'), python: '3.11', packages: 0 },
    policy: { digest: common.policyDigest, source: 'test', version: 'test' },
    evaluator: { id: 'test', codeDigest: sha256Digest('eval'), files: [], taskQueue: 'control' },
    builder: { id: 'test', taskQueue: 'control', namespace: 'default' },
    workflow,
    startedOn: new Date().toISOString(),
    finishedOn: new Date().toISOString(),
  });
  const provenanceKey = `provenance/${name}/1.intoto.json`;
  const envelope = await putOnce(s3, bucket(env, 'evidence'), provenanceKey, JSON.stringify(signProvenanceStatement(key, statement)));
  const row = await db
    .insertInto('model_versions')
    .values({
      model_name: name,
      version: 1,
      state: 'approved',
      risk_tier: 'low',
      artifact_digest: artifact.digest,
      artifact_uri: artifact.uri,
      dataset_manifest_digest: manifestObj.digest,
      commit_sha: common.commitSha,
      image_digest: common.imageDigest,
      requester: 'ci@hospital.example',
      developer: 'alice@hospital.example',
      metrics: JSON.stringify({}),
      environment: JSON.stringify({}),
      policy_digest: common.policyDigest,
      workflow_id: workflow.id,
      run_id: workflow.runId,
      provenance_uri: envelope.uri,
      provenance_digest: envelope.digest,
      provenance_key_id: key.keyId,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  // The events a lifecycle records for such a row, so the registry still matches the audit trail
  // (every later `audit verify` on this shared database checks it).
  const at = new Date().toISOString();
  const recorded = (kind: string, payload: Record<string, unknown>) =>
    appendAuditEvent(db, { workflowId: workflow.id, runId: workflow.runId, step: kind, kind, actor: 'factory', payload, occurredAt: at });
  await recorded('provenance.signed', { uri: envelope.uri, digest: envelope.digest, keyId: key.keyId });
  await recorded('model.registered', { modelVersionId: row.id, version: 1, artifactDigest: artifact.digest });
  return { id: row.id, artifactKey, artifactDigest: artifact.digest, provenanceKey };
}

describe('artifact promotion between sites (real Temporal, PostgreSQL, S3)', () => {
  it('copies the re-verified artifact and provenance to the site under Object Lock and records it; a wrong purpose, a replaced provenance or a tampered artifact is refused and recorded', async () => {
    await suite.workers.start('control');
    const cli = (args: string[]) => factoryCli(args, { FACTORY_TASK_QUEUE_PREFIX: suite.workers.prefix });
    const name = `promo-${randomBytes(4).toString('hex')}`;
    const v = await approvedVersion(name);
    const args = (purpose: string) => ['promote', `${name}@1`, '--to-site', 'clinic-north', '--purpose', purpose, '--as', 'ci@hospital.example', '--json'];

    // A purpose the pack does not allow for transfers: refused (exit 4), recorded, nothing copied.
    const wrong = await cli(args('marketing-analytics'));
    expect(wrong.code, wrong.stderr).toBe(4);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ outcome: 'refused', failure: { type: 'PurposeNotAllowed' } });

    const ok = await cli(args('serving-at-partner-site'));
    expect(ok.code, ok.stderr).toBe(0);
    const promoted = JSON.parse(ok.stdout) as PromotionOutcome;
    const artifactsBucket = bucket(env, 'artifacts');
    expect(promoted).toMatchObject({
      outcome: 'promoted',
      fromSite: 'home',
      toSite: 'clinic-north',
      purpose: 'serving-at-partner-site',
      artifact: { to: `s3://${artifactsBucket}/${SITE_PREFIX}/${v.artifactKey}`, digest: v.artifactDigest },
      provenance: { to: `s3://${artifactsBucket}/${SITE_PREFIX}/${v.provenanceKey}`, keyId: loadFactoryKey(env).keyId },
    });
    const head = await s3.send(new HeadObjectCommand({ Bucket: artifactsBucket, Key: `${SITE_PREFIX}/${v.artifactKey}` }));
    expect(head.ObjectLockMode).toBe('COMPLIANCE');
    expect(head.Metadata?.sha256).toBe(v.artifactDigest);
    const rows = await suite.db.selectFrom('artifact_promotions').selectAll().where('model_version_id', '=', v.id).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ to_site: 'clinic-north', from_site: 'home', purpose: 'serving-at-partner-site', requested_by: 'ci@hospital.example' });

    // The provenance envelope at home is replaced (the registry still holds the signed digest): refused for good (exit 7), recorded.
    const evidenceBucket = bucket(env, 'evidence');
    const original = await getBytes(s3, evidenceBucket, v.provenanceKey);
    await s3.send(new PutObjectCommand({ Bucket: evidenceBucket, Key: v.provenanceKey, Body: original.toString().replace('"payload"', ' "payload"') }));
    const forged = await cli(args('serving-at-partner-site'));
    expect(forged.code, forged.stderr).toBe(7);
    expect(JSON.parse(forged.stdout)).toMatchObject({ outcome: 'refused', failure: { type: 'ProvenanceMismatch' } });
    await s3.send(new PutObjectCommand({ Bucket: evidenceBucket, Key: v.provenanceKey, Body: original }));

    // The artifact at home is replaced (a new object version beside the locked one): refused for good (exit 7), recorded.
    await s3.send(new PutObjectCommand({ Bucket: artifactsBucket, Key: v.artifactKey, Body: randomBytes(4096) }));
    const tampered = await cli(args('serving-at-partner-site'));
    expect(tampered.code, tampered.stderr).toBe(7);
    expect(JSON.parse(tampered.stdout)).toMatchObject({ outcome: 'refused', failure: { type: 'TamperedArtifact' } });
    expect(await suite.db.selectFrom('artifact_promotions').select('id').where('model_version_id', '=', v.id).execute()).toHaveLength(1);

    const events = await suite.db
      .selectFrom('audit_events')
      .select(['kind', 'actor', 'payload'])
      .where('workflow_id', '=', `promote-${name}-1-clinic-north`)
      .orderBy('seq')
      .execute();
    expect(events.map((e) => e.kind)).toEqual(['artifact.promotion-refused', 'artifact.promoted', 'artifact.promotion-refused', 'artifact.promotion-refused']);
    expect(events[0]!.payload).toMatchObject({ type: 'PurposeNotAllowed', purpose: 'marketing-analytics' });
    expect(events[1]).toMatchObject({
      actor: 'ci@hospital.example',
      payload: { fromSite: 'home', toSite: 'clinic-north', purpose: 'serving-at-partner-site', artifact: { digest: v.artifactDigest } },
    });
    expect(events[2]!.payload).toMatchObject({ type: 'ProvenanceMismatch', reason: expect.stringMatching(/replaced since it was signed/) });
    expect(events[3]!.payload).toMatchObject({ type: 'TamperedArtifact', artifactDigest: v.artifactDigest });
  }, 120_000);
});

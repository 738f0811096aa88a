/**
 * What signed provenance costs (docs/benchmarks.md): building and signing a statement, checking an
 * envelope (signature and digests), and the deployment's whole provenance phase against the running
 * stack (GET of the envelope from object storage + check) for the newest version that has one.
 *   node --import tsx bench/provenance.ts [--n 200]
 */
import os from 'node:os';
import { createEnvDb } from '../src/db/connect.ts';
import { loadEnv } from '../src/config/env.ts';
import { buildProvenanceStatement, checkProvenance, signProvenanceStatement, type ProvenanceFacts } from '../src/provenance/statement.ts';
import { verifyStoredProvenance } from '../src/provenance/verify.ts';
import { factoryKeyFromPem, generateFactoryKeyPem } from '../src/signing/factory-key.ts';
import { createS3 } from '../src/storage/s3.ts';

const n = Number(process.argv[process.argv.indexOf('--n') + 1] || 200) || 200;
const d = (c: string) => `sha256:${c.repeat(64)}`;
const facts: ProvenanceFacts = {
  artifact: { name: 'models/m/a/model.onnx', uri: 's3://b/k', digest: d('a') },
  dataset: {
    name: 'w',
    rawUri: 's3://b/r',
    rawSha256: d('b'),
    manifestUri: 's3://b/m',
    manifestDigest: d('c'),
    certifiedUri: 's3://b/c',
    certifiedSha256: d('d'),
  },
  commitSha: 'a'.repeat(40),
  imageDigest: d('e'),
  modelName: 'm',
  riskTier: 'low',
  training: { epochs: 300, seed: 7 },
  trainerCode: {
    digest: d('f'),
    files: [
      { path: 'trainers/common.py', sha256: '1'.repeat(64) },
      { path: 'trainers/train.py', sha256: '2'.repeat(64) },
    ],
  },
  trainingEnvironment: { uri: 's3://b/e', digest: d('0'), python: 'CPython 3.11.7', packages: 150 },
  policy: { digest: d('9'), source: 'policies/default.yaml', version: '1' },
  evaluator: { id: 'urn:ai-factory:evaluator:trainers/evaluate.py', codeDigest: d('8'), files: [], taskQueue: 'gpu-onprem' },
  builder: { id: 'urn:ai-factory:builder:temporal:default:gpu-onprem', taskQueue: 'gpu-onprem', namespace: 'default' },
  workflow: { id: 'lifecycle-m-x', runId: 'r' },
  startedOn: new Date().toISOString(),
  finishedOn: new Date().toISOString(),
};
const registry = { artifactDigest: d('a'), datasetManifestDigest: d('c'), commitSha: 'a'.repeat(40), policyDigest: d('9'), imageDigest: d('e') };
const key = factoryKeyFromPem(generateFactoryKeyPem(), 'bench');

const time = async (fn: () => unknown | Promise<unknown>) => {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6 / n;
};
console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}`);
const envelope = Buffer.from(JSON.stringify(signProvenanceStatement(key, buildProvenanceStatement(facts))));
console.log(`envelope: ${envelope.length} bytes`);
console.log(`build + sign:          ${(await time(() => signProvenanceStatement(key, buildProvenanceStatement(facts)))).toFixed(3)} ms (mean of ${n})`);
console.log(`check (sig + digests): ${(await time(() => checkProvenance(envelope, [key.publicKey], registry))).toFixed(3)} ms (mean of ${n})`);

const env = loadEnv();
const db = createEnvDb(env, 1);
const s3 = createS3(env);
try {
  const row = await db
    .selectFrom('model_versions')
    .select(['artifact_digest', 'dataset_manifest_digest', 'commit_sha', 'policy_digest', 'image_digest', 'provenance_uri', 'provenance_digest'])
    .where('provenance_uri', 'is not', null)
    .orderBy('id', 'desc')
    .executeTakeFirst();
  if (!row) console.log('deploy phase: no version with provenance in this stack (run a lifecycle first)');
  else {
    const v = await verifyStoredProvenance({ env, s3 }, row);
    if (!v.ok) console.log(`deploy phase: the newest provenance does not verify here: ${v.reason}`);
    else console.log(`deploy phase (GET + check, stack's S3): ${(await time(() => verifyStoredProvenance({ env, s3 }, row))).toFixed(2)} ms (mean of ${n})`);
  }
} finally {
  s3.destroy();
  await db.destroy();
}

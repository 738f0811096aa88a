import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { canonicalJson } from '../src/audit/canonical.ts';
import { SchemaMismatchError, datasetSchemaSchema, validateRows } from '../src/datasets/schema.ts';
import { bucket } from '../src/storage/s3.ts';
import { getBytes, putOnce, sha256Digest } from '../src/storage/objects.ts';
import { activityDeps } from './deps.ts';

export interface QuarantinedFile {
  datasetName: string;
  rawUri: string;
  rawKey: string;
  rawSha256: string;
  bytes: number;
}

/** Copies the raw file, untouched, into the quarantine bucket under its own digest. */
export async function quarantineRaw(input: { datasetPath: string; schemaPath: string }): Promise<QuarantinedFile> {
  const { env, s3 } = activityDeps();
  let body: Buffer;
  let schemaText: string;
  try {
    body = fs.readFileSync(input.datasetPath);
    schemaText = fs.readFileSync(input.schemaPath, 'utf8');
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`cannot read the dataset: ${(err as Error).message}`, 'DatasetUnreadable');
  }
  const schema = datasetSchemaSchema.parse(JSON.parse(schemaText));
  const digest = sha256Digest(body);
  const key = `${schema.name}/${digest.slice(7)}/${path.basename(input.datasetPath)}`;
  const put = await putOnce(s3, bucket(env, 'quarantine'), key, body, { contentType: 'text/csv' });
  await putOnce(
    s3,
    bucket(env, 'quarantine'),
    `${key}.manifest.json`,
    canonicalJson({ file: path.basename(input.datasetPath), sha256: digest, bytes: body.length, schema: schema.name }),
    { contentType: 'application/json' },
  );
  return { datasetName: schema.name, rawUri: put.uri, rawKey: key, rawSha256: digest, bytes: body.length };
}

export interface CertifiedDataset {
  datasetName: string;
  manifestDigest: string;
  manifestUri: string;
  certifiedKey: string;
  certifiedUri: string;
  certifiedSha256: string;
  rowsTotal: number;
  rowsAccepted: number;
  rowsExcluded: number;
  /** The first exclusions (all of them are in the manifest and the registry). */
  exclusions: Array<{ line: number; reason: string }>;
  classification: string;
}

/**
 * Validates the quarantined file row by row and promotes the clean rows to the certified bucket with a
 * manifest (raw digest, certified digest, schema digest, every exclusion and its reason). The file is
 * re-hashed first: a quarantined object that changed since ingest is refused.
 */
export async function certifyDataset(input: { workflowId: string; quarantined: QuarantinedFile; schemaPath: string }): Promise<CertifiedDataset> {
  const { env, s3, db } = activityDeps();
  const { quarantined } = input;
  const raw = await getBytes(s3, bucket(env, 'quarantine'), quarantined.rawKey);
  if (sha256Digest(raw) !== quarantined.rawSha256) {
    throw ApplicationFailure.nonRetryable(`quarantined file ${quarantined.rawUri} no longer matches its digest ${quarantined.rawSha256}`, 'TamperedArtifact');
  }
  const schemaText = fs.readFileSync(input.schemaPath, 'utf8');
  const schema = datasetSchemaSchema.parse(JSON.parse(schemaText));
  let result;
  try {
    result = validateRows(raw.toString('utf8'), schema);
  } catch (err) {
    if (err instanceof SchemaMismatchError) throw ApplicationFailure.nonRetryable(err.message, 'SchemaMismatch');
    throw err;
  }
  if (result.accepted.length === 0) throw ApplicationFailure.nonRetryable('no row of the dataset passed validation', 'EmptyDataset');
  const certified = `${result.header.join(',')}\n${result.accepted.join('\n')}\n`;
  const certifiedSha256 = sha256Digest(certified);
  const certifiedKey = `${schema.name}/${certifiedSha256.slice(7)}/data.csv`;
  const put = await putOnce(s3, bucket(env, 'certified'), certifiedKey, certified, { contentType: 'text/csv' });
  const manifest = {
    dataset: schema.name,
    classification: schema.classification,
    schemaSha256: sha256Digest(canonicalJson(JSON.parse(schemaText))),
    raw: { uri: quarantined.rawUri, sha256: quarantined.rawSha256, bytes: quarantined.bytes },
    certified: { uri: put.uri, sha256: certifiedSha256, rows: result.accepted.length },
    rowsTotal: result.rowsTotal,
    exclusions: result.exclusions,
  };
  const manifestText = canonicalJson(manifest);
  const manifestDigest = sha256Digest(manifestText);
  const manifestKey = `datasets/${schema.name}/${manifestDigest.slice(7)}.manifest.json`;
  await putOnce(s3, bucket(env, 'certified'), `${schema.name}/${certifiedSha256.slice(7)}/manifest.json`, manifestText, { contentType: 'application/json' });
  const evidence = await putOnce(s3, bucket(env, 'evidence'), manifestKey, manifestText, { contentType: 'application/json' });
  await db
    .insertInto('dataset_versions')
    .values({
      manifest_digest: manifestDigest,
      name: schema.name,
      raw_uri: quarantined.rawUri,
      raw_sha256: quarantined.rawSha256,
      certified_uri: put.uri,
      manifest_uri: evidence.uri,
      rows_total: result.rowsTotal,
      rows_accepted: result.accepted.length,
      rows_excluded: result.exclusions.length,
      exclusions: JSON.stringify(result.exclusions),
      workflow_id: input.workflowId,
    })
    .onConflict((oc) => oc.column('manifest_digest').doNothing())
    .execute();
  return {
    datasetName: schema.name,
    manifestDigest,
    manifestUri: evidence.uri,
    certifiedKey,
    certifiedUri: put.uri,
    certifiedSha256,
    rowsTotal: result.rowsTotal,
    rowsAccepted: result.accepted.length,
    rowsExcluded: result.exclusions.length,
    exclusions: result.exclusions.slice(0, 50),
    classification: schema.classification,
  };
}

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { canonicalJson } from '../src/audit/canonical.ts';
import type { Env } from '../src/config/env.ts';
import { EmptyFileError, certifyStream } from '../src/datasets/certify.ts';
import { InputRefused, describeSize } from '../src/datasets/lanes.ts';
import { type InputLanes, MAX_SCHEMA_BYTES, inputLanes, openInput, readInput } from '../src/datasets/open-input.ts';
import { type DatasetSchema, SchemaMismatchError, datasetSchemaSchema } from '../src/datasets/schema.ts';
import { retainUntilInForce } from '../src/policy/pack.ts';
import { bucket } from '../src/storage/s3.ts';
import { putOnce, sha256Digest } from '../src/storage/objects.ts';
import { DigestCounter, objectStream, putFileOnce } from '../src/storage/stream.ts';
import { activityDeps } from './deps.ts';

/**
 * Past this many exclusions a dataset is refused whatever the fraction: every exclusion is kept in
 * the manifest and the registry with its reason, and that record must stay bounded.
 */
export const MAX_RECORDED_EXCLUSIONS = 100_000;

export interface QuarantinedFile {
  datasetName: string;
  rawUri: string;
  rawKey: string;
  rawSha256: string;
  bytes: number;
}

/** An input refusal is final (the same input fails the same way): non-retryable, with its type. */
function refusal(err: unknown): unknown {
  if (err instanceof InputRefused) return ApplicationFailure.nonRetryable(err.message, err.type);
  if (err instanceof SchemaMismatchError) return ApplicationFailure.nonRetryable(err.message, 'SchemaMismatch');
  if (err instanceof EmptyFileError) return ApplicationFailure.nonRetryable(err.message, 'EmptyDataset');
  return err;
}

async function loadSchema(s3: S3Client, schemaPath: string, lanes: InputLanes): Promise<{ schema: DatasetSchema; text: string }> {
  const text = (await readInput(s3, schemaPath, 'schema', lanes, MAX_SCHEMA_BYTES)).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw ApplicationFailure.nonRetryable('the schema is not valid JSON', 'InvalidSchema');
  }
  const parsed = datasetSchemaSchema.safeParse(json);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `the schema is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'schema'}: ${i.message}`).join('; ')}`,
      'InvalidSchema',
    );
  }
  return { schema: parsed.data, text };
}

/** A private scratch file for one activity attempt; the caller removes it. */
function stagingFile(env: Env, name: string): string {
  const dir = path.join(env.FACTORY_HOME, 'staging');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return path.join(dir, `${randomBytes(8).toString('hex')}-${name}`);
}

/** Heartbeats at most once a second while a long phase runs (a 200 MB copy, a long validation). */
function heartbeater(): (details?: unknown) => void {
  let last = 0;
  return (details) => {
    if (Date.now() - last < 1_000) return;
    last = Date.now();
    Context.current().heartbeat(details);
  };
}

/**
 * Copies the raw file, untouched, into the quarantine bucket under its own digest. It is read only
 * through its lane (a file inside an allowed root, or an object in the landing bucket), streamed:
 * the bytes hashed are the bytes stored, in bounded memory.
 */
export async function quarantineRaw(input: { datasetPath: string; schemaPath: string }): Promise<QuarantinedFile> {
  const { env, s3 } = activityDeps();
  const lanes = inputLanes(env);
  const staging = stagingFile(env, 'raw');
  const beat = heartbeater();
  try {
    const { schema } = await loadSchema(s3, input.schemaPath, lanes);
    const opened = await openInput(s3, input.datasetPath, 'dataset', lanes);
    const counter = new DigestCounter(
      lanes.maxBytes,
      () => new InputRefused(`the dataset has more than the ${describeSize(lanes.maxBytes)} allowed`, 'DatasetTooLarge'),
    );
    counter.on('data', () => beat({ phase: 'copy', bytes: counter.bytes }));
    await pipeline(opened.stream, counter, fs.createWriteStream(staging));
    const digest = counter.digest();
    const file = opened.name.replace(/[^\w.-]/g, '_').slice(0, 100) || 'data.csv';
    const key = `${schema.name}/${digest.slice(7)}/${file}`;
    const retainUntil = retainUntilInForce('raw');
    const put = await putFileOnce(s3, bucket(env, 'quarantine'), key, staging, digest, {
      contentType: 'text/csv',
      retainUntil,
      onProgress: (bytes) => beat({ phase: 'upload', bytes }),
    });
    await putOnce(
      s3,
      bucket(env, 'quarantine'),
      `${key}.manifest.json`,
      canonicalJson({ file, source: opened.source, sha256: digest, bytes: counter.bytes, schema: schema.name }),
      { contentType: 'application/json', retainUntil },
    );
    return { datasetName: schema.name, rawUri: put.uri, rawKey: key, rawSha256: digest, bytes: counter.bytes };
  } catch (err) {
    throw refusal(err);
  } finally {
    fs.rmSync(staging, { force: true });
  }
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

export interface CertifyInput {
  workflowId: string;
  quarantined: QuarantinedFile;
  schemaPath: string;
  /** The risk tier's limit on excluded rows (policy `maxExcludedFraction`); absent: no limit (lifecycles started before it existed). */
  maxExcludedFraction?: number;
}

/**
 * Validates the quarantined file row by row and promotes the clean rows to the certified bucket with a
 * manifest (raw digest, certified digest, schema digest, every exclusion and its reason, counts per
 * reason). Streams from the quarantine object to a scratch file and from there to the certified bucket:
 * memory stays bounded whatever the file's size. The raw bytes are re-hashed on the way: a quarantined
 * object that changed since ingest is refused, as is a file whose excluded fraction passes the tier's limit.
 */
export async function certifyDataset(input: CertifyInput): Promise<CertifiedDataset> {
  const { env, s3, db } = activityDeps();
  const { quarantined } = input;
  const lanes = inputLanes(env);
  const staging = stagingFile(env, 'certified.csv');
  const beat = heartbeater();
  try {
    const { schema, text: schemaText } = await loadSchema(s3, input.schemaPath, lanes);
    const { body } = await objectStream(s3, bucket(env, 'quarantine'), quarantined.rawKey);
    const result = await certifyStream({
      source: body,
      schema,
      outFile: staging,
      maxRecordedExclusions: MAX_RECORDED_EXCLUSIONS,
      onProgress: (rows) => beat({ phase: 'validate', rows }),
    });
    if (result.rawSha256 !== quarantined.rawSha256) {
      throw ApplicationFailure.nonRetryable(`quarantined file ${quarantined.rawUri} no longer matches its digest ${quarantined.rawSha256}`, 'TamperedArtifact');
    }
    if (result.rowsAccepted === 0) throw ApplicationFailure.nonRetryable('no row of the dataset passed validation', 'EmptyDataset');
    const fraction = result.rowsExcluded / result.rowsTotal;
    const limit = input.maxExcludedFraction;
    if ((limit !== undefined && fraction > limit) || result.exclusionsTruncated) {
      const top = result.reasonCounts.slice(0, 5);
      const why = result.exclusionsTruncated
        ? `more than the ${MAX_RECORDED_EXCLUSIONS} exclusions a dataset may have`
        : `above the risk tier's limit of ${(limit! * 100).toFixed(2)}%`;
      throw ApplicationFailure.create({
        nonRetryable: true,
        type: 'ExcessiveExclusions',
        message: `${(fraction * 100).toFixed(2)}% of rows excluded (${result.rowsExcluded} of ${result.rowsTotal}), ${why}; top reasons: ${top.map((r) => `${r.reason} (${r.rows} rows)`).join('; ')}`,
        details: [{ fraction, limit: limit ?? null, rowsExcluded: result.rowsExcluded, rowsTotal: result.rowsTotal, reasons: top }],
      });
    }
    const certifiedSha256 = result.certifiedSha256;
    const certifiedKey = `${schema.name}/${certifiedSha256.slice(7)}/data.csv`;
    const retainUntil = retainUntilInForce('certified');
    const put = await putFileOnce(s3, bucket(env, 'certified'), certifiedKey, staging, certifiedSha256, {
      contentType: 'text/csv',
      retainUntil,
      onProgress: (bytes) => beat({ phase: 'upload', bytes }),
    });
    const manifest = {
      dataset: schema.name,
      classification: schema.classification,
      schemaSha256: sha256Digest(canonicalJson(JSON.parse(schemaText))),
      raw: { uri: quarantined.rawUri, sha256: quarantined.rawSha256, bytes: quarantined.bytes },
      certified: { uri: put.uri, sha256: certifiedSha256, rows: result.rowsAccepted },
      rowsTotal: result.rowsTotal,
      exclusions: result.exclusions,
      ...(result.rowsExcluded ? { exclusionReasons: result.reasonCounts, maxExcludedFraction: limit ?? null } : {}),
    };
    const manifestText = canonicalJson(manifest);
    const manifestDigest = sha256Digest(manifestText);
    const manifestKey = `datasets/${schema.name}/${manifestDigest.slice(7)}.manifest.json`;
    await putOnce(s3, bucket(env, 'certified'), `${schema.name}/${certifiedSha256.slice(7)}/manifest.json`, manifestText, {
      contentType: 'application/json',
      retainUntil,
    });
    const evidence = await putOnce(s3, bucket(env, 'evidence'), manifestKey, manifestText, { contentType: 'application/json', retainUntil });
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
        rows_accepted: result.rowsAccepted,
        rows_excluded: result.rowsExcluded,
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
      rowsAccepted: result.rowsAccepted,
      rowsExcluded: result.rowsExcluded,
      exclusions: result.exclusions.slice(0, 50),
      classification: schema.classification,
    };
  } catch (err) {
    throw refusal(err);
  } finally {
    fs.rmSync(staging, { force: true });
  }
}

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
import { type DatasetSchema, PurposeRefused, SchemaMismatchError, datasetSchemaSchema } from '../src/datasets/schema.ts';
import { type ApprovedOverride, MAX_OVERRIDE_BYTES, OverrideRefused, judgeOverride } from '../src/datasets/override.ts';
import { datasetLineage } from '../src/datasets/lineage.ts';
import { loadPolicyPack, policyPackPath, retainUntilInForce } from '../src/policy/pack.ts';
import { bucket } from '../src/storage/s3.ts';
import { putOnce, sha256Digest } from '../src/storage/objects.ts';
import { DigestCounter, objectStream, putFileOnce } from '../src/storage/stream.ts';
import { customFacet, datasetRef, identityColumnLineage, schemaFacets } from '../src/lineage/openlineage.ts';
import { activityDeps } from './deps.ts';
import { withLineage } from './lineage.ts';

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
  if (err instanceof PurposeRefused) return ApplicationFailure.nonRetryable(err.message, 'PurposeRefused');
  if (err instanceof OverrideRefused) return ApplicationFailure.nonRetryable(err.message, 'OverrideRefused');
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
  const source = datasetRef(input.datasetPath);
  return withLineage(
    'factory.ingest',
    { inputs: [source] },
    () => quarantine(input),
    ({ file, schema }) => {
      const lineage = datasetLineage(schema);
      return {
        inputs: [source],
        outputs: [
          {
            ...datasetRef(file.rawUri),
            facets: {
              ...schemaFacets(schema, lineage.columns, lineage.derivationsSha256, false),
              factory_digest: customFacet('DigestDatasetFacet', { sha256: file.rawSha256, bytes: file.bytes }),
            },
          },
        ],
      };
    },
  ).then((r) => r.file);
}

async function quarantine(input: { datasetPath: string; schemaPath: string }): Promise<{ file: QuarantinedFile; schema: DatasetSchema }> {
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
    return { file: { datasetName: schema.name, rawUri: put.uri, rawKey: key, rawSha256: digest, bytes: counter.bytes }, schema };
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
  /** Rows excluded for lack of consent to the lifecycle's purpose (part of rowsExcluded). */
  rowsExcludedForConsent?: number;
  /** The approved manual override applied, if any (who, under which key, which lines). */
  override?: ApprovedOverride;
  /** sha256 of the declared feature derivations (canonical JSON), as in the manifest. */
  derivationsSha256?: string;
}

export interface CertifyInput {
  workflowId: string;
  quarantined: QuarantinedFile;
  schemaPath: string;
  /** The risk tier's limit on excluded rows (policy `maxExcludedFraction`); absent: no limit (lifecycles started before it existed). */
  maxExcludedFraction?: number;
  /** The lifecycle's declared purpose: consent and the dataset's allowed purposes are judged against it. */
  purpose?: string;
  /** A signed override statement (its signature at `<path>.sig`) re-including consent exclusions. */
  overridePath?: string;
}

/** Reads and judges the override (statement and `.sig`) against the pack in force; refuses what is not approved. */
async function loadOverride(s3: S3Client, lanes: InputLanes, overridePath: string, expected: Parameters<typeof judgeOverride>[3]) {
  const statement = await readInput(s3, overridePath, 'override', lanes, MAX_OVERRIDE_BYTES);
  const signature = await readInput(s3, `${overridePath}.sig`, 'override signature', lanes, 16 * 1024).then(
    (b) => b.toString('utf8'),
    (err: unknown) => {
      if (err instanceof InputRefused && err.type === 'DatasetUnreadable') return undefined;
      throw err;
    },
  );
  return judgeOverride(statement, signature, loadPolicyPack(policyPackPath()).pack, expected);
}

/**
 * Validates the quarantined file row by row and promotes the clean rows to the certified bucket with a
 * manifest (raw digest, certified digest, schema digest, every exclusion and its reason, counts per
 * reason). Streams from the quarantine object to a scratch file and from there to the certified bucket:
 * memory stays bounded whatever the file's size. The raw bytes are re-hashed on the way: a quarantined
 * object that changed since ingest is refused, as is a file whose excluded fraction passes the tier's limit.
 */
export async function certifyDataset(input: CertifyInput): Promise<CertifiedDataset> {
  const raw = datasetRef(input.quarantined.rawUri);
  return withLineage(
    'factory.certify',
    { inputs: [raw], ...(input.purpose ? { runFacets: { factory_purpose: customFacet('PurposeRunFacet', { purpose: input.purpose }) } } : {}) },
    () => certify(input),
    ({ out, schema, reasons }) => {
      const lineage = datasetLineage(schema);
      return {
        inputs: [{ ...raw, facets: schemaFacets(schema, lineage.columns, lineage.derivationsSha256, false) }],
        outputs: [
          {
            ...datasetRef(out.certifiedUri),
            facets: {
              ...schemaFacets(schema, lineage.columns, lineage.derivationsSha256, true),
              columnLineage: identityColumnLineage(raw, lineage.columns),
              factory_digest: customFacet('DigestDatasetFacet', { sha256: out.certifiedSha256 }),
              factory_exclusions: customFacet('ExclusionsDatasetFacet', {
                rowsTotal: out.rowsTotal,
                rowsAccepted: out.rowsAccepted,
                rowsExcluded: out.rowsExcluded,
                rowsExcludedForConsent: out.rowsExcludedForConsent ?? 0,
                reasons,
                manifestUri: out.manifestUri,
                manifestDigest: out.manifestDigest,
                ...(input.purpose ? { purpose: input.purpose } : {}),
              }),
              ...(out.override ? { factory_override: customFacet('OverrideDatasetFacet', { ...out.override }) } : {}),
            },
          },
        ],
        ...(input.purpose ? { runFacets: { factory_purpose: customFacet('PurposeRunFacet', { purpose: input.purpose }) } } : {}),
      };
    },
  ).then((r) => r.out);
}

async function certify(input: CertifyInput): Promise<{ out: CertifiedDataset; schema: DatasetSchema; reasons: Array<{ reason: string; rows: number }> }> {
  const { env, s3, db } = activityDeps();
  const { quarantined } = input;
  const lanes = inputLanes(env);
  const staging = stagingFile(env, 'certified.csv');
  const beat = heartbeater();
  try {
    const { schema, text: schemaText } = await loadSchema(s3, input.schemaPath, lanes);
    const override = input.overridePath
      ? await loadOverride(s3, lanes, input.overridePath, { dataset: schema.name, rawSha256: quarantined.rawSha256, purpose: input.purpose })
      : undefined;
    const { body } = await objectStream(s3, bucket(env, 'quarantine'), quarantined.rawKey);
    const result = await certifyStream({
      source: body,
      schema,
      outFile: staging,
      maxRecordedExclusions: MAX_RECORDED_EXCLUSIONS,
      ...(input.purpose ? { purpose: input.purpose } : {}),
      ...(override ? { reinclude: new Set(override.approved.lines) } : {}),
      onProgress: (rows) => beat({ phase: 'validate', rows }),
    });
    if (override) {
      // An override is applied whole or not at all: a line it names must be a consent exclusion of this file.
      const applied = new Set(result.overridden.map((o) => o.line));
      const stray = override.approved.lines.filter((l) => !applied.has(l));
      if (stray.length) {
        throw new OverrideRefused(
          `the override names line${stray.length === 1 ? '' : 's'} ${stray.slice(0, 10).join(', ')} that certification did not exclude for consent: an override re-includes only consent exclusions`,
        );
      }
    }
    if (result.rawSha256 !== quarantined.rawSha256) {
      throw ApplicationFailure.nonRetryable(`quarantined file ${quarantined.rawUri} no longer matches its digest ${quarantined.rawSha256}`, 'TamperedArtifact');
    }
    if (result.rowsAccepted === 0) throw ApplicationFailure.nonRetryable('no row of the dataset passed validation', 'EmptyDataset');
    // Rows without consent are not data errors: only schema violations count against the tier's limit.
    const fraction = (result.rowsExcluded - result.rowsExcludedForConsent) / result.rowsTotal;
    const limit = input.maxExcludedFraction;
    if ((limit !== undefined && fraction > limit) || result.exclusionsTruncated) {
      const top = result.reasonCounts.slice(0, 5);
      const why = result.exclusionsTruncated
        ? `more than the ${MAX_RECORDED_EXCLUSIONS} exclusions a dataset may have`
        : `above the risk tier's limit of ${(limit! * 100).toFixed(2)}%`;
      throw ApplicationFailure.create({
        nonRetryable: true,
        type: 'ExcessiveExclusions',
        message: `${(fraction * 100).toFixed(2)}% of rows excluded (${result.rowsExcluded - result.rowsExcludedForConsent} of ${result.rowsTotal}), ${why}; top reasons: ${top.map((r) => `${r.reason} (${r.rows} rows)`).join('; ')}`,
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
    const lineage = datasetLineage(schema);
    const manifest = {
      dataset: schema.name,
      classification: schema.classification,
      // Fields added with governance (consent, purposes, overrides, derivations) appear only where they apply,
      // so the manifest of a dataset without them is byte for byte what it was.
      ...(schema.governance ? { governance: schema.governance, columns: lineage.columns } : {}),
      ...(input.purpose ? { purpose: input.purpose } : {}),
      ...(schema.consent ? { consent: { column: schema.consent.column, rowsExcluded: result.rowsExcludedForConsent } } : {}),
      ...(override ? { override: { ...override.approved, reincluded: result.overridden } } : {}),
      ...(schema.derivations ? { derivations: schema.derivations, derivationsSha256: lineage.derivationsSha256 } : {}),
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
    const out: CertifiedDataset = {
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
      ...(schema.consent ? { rowsExcludedForConsent: result.rowsExcludedForConsent } : {}),
      ...(override ? { override: override.approved } : {}),
      ...(schema.derivations ? { derivationsSha256: lineage.derivationsSha256 } : {}),
    };
    return { out, schema, reasons: result.reasonCounts.slice(0, 50) };
  } catch (err) {
    throw refusal(err);
  } finally {
    fs.rmSync(staging, { force: true });
  }
}

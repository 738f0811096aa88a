import {
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectLegalHoldCommand,
  type ObjectVersion,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { HOLD_ROLES, type HoldScope, type LegalHoldInput, type LegalHoldResult, type RetentionGroup, type RetentionReport } from '../src/domain/governance.ts';
import { loadPolicyPack, policyPackPath } from '../src/policy/pack.ts';
import { evidenceRetainUntil, type EvidenceKind } from '../src/policy/schema.ts';
import { SWEPT_BUCKETS, ownerOf, recordTypeOf, retentionVerdict, type SweptBucket } from '../src/retention/classify.ts';
import { parseS3Uri } from '../src/serving/s3-uri.ts';
import { bucket } from '../src/storage/s3.ts';
import { getBytes } from '../src/storage/objects.ts';
import { activityDeps } from './deps.ts';

/** At most this many object versions per hold (a larger case is split by dataset or model). */
const MAX_HELD_OBJECTS = 10_000;
/** At most this many object versions per sweep; the next sweep goes on. */
const MAX_SWEPT_OBJECTS = 100_000;

interface ObjectRef {
  bucket: string;
  key: string;
  versionId: string;
}

/** Every version of `key` (exact) or under `prefix`, newest first per key. */
async function versionsOf(s3: S3Client, bucketName: string, key: string, exact: boolean): Promise<ObjectRef[]> {
  const out: ObjectRef[] = [];
  let keyMarker: string | undefined;
  let versionMarker: string | undefined;
  do {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucketName, Prefix: key, KeyMarker: keyMarker, VersionIdMarker: versionMarker }));
    for (const v of page.Versions ?? [])
      if (v.Key && v.VersionId && (!exact || v.Key === key)) out.push({ bucket: bucketName, key: v.Key, versionId: v.VersionId });
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
  } while (keyMarker && out.length < MAX_HELD_OBJECTS);
  return out;
}

/** The principal must be in the pack and hold a role that may place or release legal holds. */
function authorised(by: string): { id: string; name: string } {
  const pack = loadPolicyPack(policyPackPath()).pack;
  const p = pack.principals.find((x) => x.id.toLowerCase() === by.toLowerCase());
  if (!p) throw ApplicationFailure.nonRetryable(`${by} is not a principal of the policy pack`, 'NotAuthorised');
  if (!p.roles.some((r) => (HOLD_ROLES as readonly string[]).includes(r))) {
    throw ApplicationFailure.nonRetryable(`${by} holds none of the roles that may place or release a legal hold (${HOLD_ROLES.join(', ')})`, 'NotAuthorised');
  }
  return { id: p.id, name: p.name };
}

/** Every object version of a model's or a dataset's records: data, manifests, artifacts, evaluations, provenance, histories. */
async function holdTargets(scope: HoldScope): Promise<ObjectRef[]> {
  const { db, s3, env } = activityDeps();
  const wanted: Array<{ uri: string; exact: boolean }> = [];
  let datasetRows;
  if ('model' in scope) {
    const models = await db
      .selectFrom('model_versions')
      .select(['artifact_uri', 'provenance_uri', 'dataset_manifest_digest', 'workflow_id'])
      .where('model_name', '=', scope.model)
      .execute();
    for (const m of models) {
      wanted.push({ uri: m.artifact_uri, exact: true });
      const artifact = parseS3Uri(m.artifact_uri);
      if (artifact) {
        for (const suffix of ['.environment.json', '.environment-measured.json', '.evaluation.json']) {
          wanted.push({ uri: `s3://${bucket(env, 'evidence')}/${artifact.key}${suffix}`, exact: true });
        }
      }
      if (m.provenance_uri) wanted.push({ uri: m.provenance_uri, exact: true });
      wanted.push({ uri: `s3://${bucket(env, 'evidence')}/histories/${encodeURIComponent(m.workflow_id)}/`, exact: false });
    }
    const digests = [...new Set(models.map((m) => m.dataset_manifest_digest))];
    datasetRows = digests.length ? await db.selectFrom('dataset_versions').selectAll().where('manifest_digest', 'in', digests).execute() : [];
  } else {
    datasetRows = await db.selectFrom('dataset_versions').selectAll().where('name', '=', scope.dataset).execute();
  }
  for (const d of datasetRows) {
    wanted.push({ uri: d.raw_uri, exact: true }, { uri: `${d.raw_uri}.manifest.json`, exact: true });
    wanted.push({ uri: d.certified_uri, exact: true }, { uri: d.certified_uri.replace(/[^/]+$/, 'manifest.json'), exact: true });
    wanted.push({ uri: d.manifest_uri, exact: true });
  }
  const seen = new Set<string>();
  const out: ObjectRef[] = [];
  for (const w of wanted) {
    const parsed = parseS3Uri(w.uri);
    if (!parsed) continue;
    for (const v of await versionsOf(s3, parsed.bucket, parsed.key, w.exact)) {
      const id = `${v.bucket}/${v.key}#${v.versionId}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(v);
      if (out.length > MAX_HELD_OBJECTS) {
        throw ApplicationFailure.nonRetryable(`more than ${MAX_HELD_OBJECTS} object versions: hold the case's datasets and models one by one`, 'HoldTooLarge');
      }
    }
  }
  return out;
}

async function setLegalHold(s3: S3Client, o: ObjectRef, on: boolean): Promise<void> {
  await s3.send(new PutObjectLegalHoldCommand({ Bucket: o.bucket, Key: o.key, VersionId: o.versionId, LegalHold: { Status: on ? 'ON' : 'OFF' } }));
}

/**
 * Places a case's legal hold: records the case (who, why, what), sets S3 legal hold ON on every object
 * version of the model's or dataset's records, and records each. Idempotent: a retry (or the same
 * case placed again with the same scope) sets what is missing; another scope under the same case id is refused.
 */
export async function placeLegalHold(input: Extract<LegalHoldInput, { action: 'place' }> & { workflowId: string }): Promise<LegalHoldResult> {
  const { db, s3 } = activityDeps();
  const who = authorised(input.by);
  const scopeKind = 'model' in input.scope ? 'model' : 'dataset';
  const scopeName = 'model' in input.scope ? input.scope.model : input.scope.dataset;
  const existing = await db.selectFrom('legal_holds').selectAll().where('case_id', '=', input.caseId).executeTakeFirst();
  if (existing && (existing.scope_kind !== scopeKind || existing.scope_name !== scopeName)) {
    throw ApplicationFailure.nonRetryable(
      `case ${input.caseId} already holds ${existing.scope_kind} ${existing.scope_name}: use another case id`,
      'HoldConflict',
    );
  }
  const released = await db.selectFrom('legal_hold_releases').select('released_by').where('case_id', '=', input.caseId).executeTakeFirst();
  if (released) throw ApplicationFailure.nonRetryable(`case ${input.caseId} was released by ${released.released_by}: use a new case id`, 'HoldConflict');
  const targets = await holdTargets(input.scope);
  if (!targets.length) throw ApplicationFailure.nonRetryable(`no records of ${scopeKind} ${scopeName} to hold`, 'NothingToHold');
  await db
    .insertInto('legal_holds')
    .values({ case_id: input.caseId, scope_kind: scopeKind, scope_name: scopeName, placed_by: who.id, reason: input.reason, workflow_id: input.workflowId })
    .onConflict((oc) => oc.column('case_id').doNothing())
    .execute();
  let done = 0;
  for (const o of targets) {
    await setLegalHold(s3, o, true);
    await db
      .insertInto('legal_hold_objects')
      .values({ case_id: input.caseId, bucket: o.bucket, key: o.key, version_id: o.versionId })
      .onConflict((oc) => oc.columns(['case_id', 'bucket', 'key', 'version_id']).doNothing())
      .execute();
    if (++done % 50 === 0) Context.current().heartbeat({ done });
  }
  return { caseId: input.caseId, action: 'place', by: who.id, scope: input.scope, objects: targets.length, existing: !!existing };
}

/**
 * Releases a case: only a principal other than the one who placed it (the database refuses it too).
 * The release is recorded first, then the S3 legal hold is lifted from each object version the case
 * held, except those another open case still holds. Idempotent.
 */
export async function releaseLegalHold(input: Extract<LegalHoldInput, { action: 'release' }> & { workflowId: string }): Promise<LegalHoldResult> {
  const { db, s3 } = activityDeps();
  const who = authorised(input.by);
  const hold = await db.selectFrom('legal_holds').selectAll().where('case_id', '=', input.caseId).executeTakeFirst();
  if (!hold) throw ApplicationFailure.nonRetryable(`no legal hold with case id ${input.caseId}`, 'NoSuchHold');
  const scope: HoldScope = hold.scope_kind === 'model' ? { model: hold.scope_name } : { dataset: hold.scope_name };
  if (hold.placed_by.toLowerCase() === who.id.toLowerCase()) {
    throw ApplicationFailure.nonRetryable(
      `case ${input.caseId} was placed by ${hold.placed_by}: a different principal (role ${HOLD_ROLES.join(' or ')}) must release it`,
      'SamePrincipal',
    );
  }
  const before = await db.selectFrom('legal_hold_releases').select('released_by').where('case_id', '=', input.caseId).executeTakeFirst();
  if (!before) {
    await db
      .insertInto('legal_hold_releases')
      .values({ case_id: input.caseId, released_by: who.id, reason: input.reason, workflow_id: input.workflowId })
      .onConflict((oc) => oc.column('case_id').doNothing())
      .execute();
  }
  const objects = await db.selectFrom('legal_hold_objects').selectAll().where('case_id', '=', input.caseId).execute();
  let lifted = 0;
  let stillHeld = 0;
  for (const o of objects) {
    const other = await db
      .selectFrom('legal_hold_objects as o')
      .select('o.case_id')
      .where('o.bucket', '=', o.bucket)
      .where('o.key', '=', o.key)
      .where('o.version_id', '=', o.version_id)
      .where('o.case_id', '<>', input.caseId)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('legal_hold_releases as r').select('r.case_id').whereRef('r.case_id', '=', 'o.case_id'))))
      .executeTakeFirst();
    if (other) {
      stillHeld++;
      continue;
    }
    try {
      await setLegalHold(s3, { bucket: o.bucket, key: o.key, versionId: o.version_id }, false);
      lifted++;
    } catch (err) {
      // A version already gone (deleted by a sweep after an earlier release) has nothing to lift.
      if ((err as { name?: string }).name !== 'NoSuchKey' && (err as { name?: string }).name !== 'NoSuchVersion') throw err;
    }
    if ((lifted + stillHeld) % 50 === 0) Context.current().heartbeat({ lifted });
  }
  return { caseId: input.caseId, action: 'release', by: who.id, scope, objects: lifted, stillHeld, existing: !!before };
}

/** Classification per dataset name (from its certified manifest) and the dataset of each model. */
async function classificationLookup(): Promise<(owner: { dataset?: string; model?: string }, uri: string) => string> {
  const { db, s3 } = activityDeps();
  const datasets = await db
    .selectFrom('dataset_versions')
    .select(['name', 'manifest_uri', 'manifest_digest'])
    .orderBy('created_at', 'desc')
    .limit(10_000)
    .execute();
  const classOf = new Map<string, string>();
  for (const d of datasets) {
    if (classOf.has(d.name)) continue;
    const parsed = parseS3Uri(d.manifest_uri);
    const manifest = parsed ? await getBytes(s3, parsed.bucket, parsed.key).catch(() => undefined) : undefined;
    let cls = 'unknown';
    try {
      cls = (JSON.parse(manifest?.toString('utf8') ?? '{}') as { classification?: string }).classification ?? 'unknown';
    } catch {
      // an unreadable manifest leaves the class unknown: it is reported, and deleted only when due like any other
    }
    classOf.set(d.name, cls);
  }
  const datasetOfDigest = new Map(datasets.map((d) => [d.manifest_digest, d.name]));
  const models = await db.selectFrom('model_versions').select(['model_name', 'dataset_manifest_digest', 'provenance_uri']).execute();
  const datasetOfModel = new Map(models.map((m) => [m.model_name, datasetOfDigest.get(m.dataset_manifest_digest)]));
  const datasetOfProvenance = new Map(models.filter((m) => m.provenance_uri).map((m) => [m.provenance_uri!, datasetOfDigest.get(m.dataset_manifest_digest)]));
  return (owner, uri) => {
    const dataset = owner.dataset ?? (owner.model ? datasetOfModel.get(owner.model) : datasetOfProvenance.get(uri));
    if (!dataset) return owner.dataset || owner.model ? 'unknown' : 'none';
    return classOf.get(dataset) ?? 'unknown';
  };
}

/**
 * The retention job's work: every object version in the swept buckets (under `keyPrefix` when given),
 * grouped by record type and classification, with what is due (retain-until passed, no legal hold),
 * held, and kept. In `delete` mode each due version is deleted, a tombstone row written in the same
 * transaction as the delete succeeds (a refused delete leaves no tombstone). The store refuses a
 * delete of a version still locked or held anyway: the job relies on it, not on its own reading.
 */
export async function sweepRetention(input: { mode: 'report' | 'delete'; keyPrefix?: string; sweepId: string }): Promise<RetentionReport> {
  const { db, s3, env, log } = activityDeps();
  const pack = loadPolicyPack(policyPackPath()).pack;
  const classify = await classificationLookup();
  const now = new Date();
  const groups = new Map<string, RetentionGroup>();
  let scanned = 0;
  let truncated = false;
  let deleted = 0;
  for (const name of SWEPT_BUCKETS) {
    const bucketName = bucket(env, name);
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectVersionsCommand({ Bucket: bucketName, Prefix: input.keyPrefix, KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
      );
      for (const v of page.Versions ?? []) {
        if (scanned >= MAX_SWEPT_OBJECTS) {
          truncated = true;
          break;
        }
        scanned++;
        if (scanned % 100 === 0) Context.current().heartbeat({ scanned });
        const outcome = await sweepOne(s3, db, name, bucketName, v, { pack, now, classify, mode: input.mode, sweepId: input.sweepId, log });
        const g = groups.get(`${outcome.recordType}\u0000${outcome.classification}`) ?? {
          recordType: outcome.recordType,
          classification: outcome.classification,
          objects: 0,
          bytes: 0,
          due: 0,
          heldPastRetention: 0,
          held: 0,
          deleted: 0,
        };
        g.objects++;
        g.bytes += v.Size ?? 0;
        if (outcome.verdict === 'due') g.due++;
        if (outcome.verdict === 'held') g.held++;
        if (outcome.verdict === 'held' && outcome.pastRetention) g.heldPastRetention++;
        if (outcome.deleted) {
          g.deleted++;
          deleted++;
        }
        groups.set(`${outcome.recordType}\u0000${outcome.classification}`, g);
      }
      keyMarker = page.IsTruncated && !truncated ? page.NextKeyMarker : undefined;
      versionMarker = page.IsTruncated && !truncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker);
    if (truncated) break;
  }
  const sorted = [...groups.values()].sort((a, b) => a.recordType.localeCompare(b.recordType) || a.classification.localeCompare(b.classification));
  return {
    sweepId: input.sweepId,
    mode: input.mode,
    at: now.toISOString(),
    ...(input.keyPrefix ? { keyPrefix: input.keyPrefix } : {}),
    scanned,
    truncated,
    groups: sorted,
    deleted,
    tombstones: deleted,
  };
}

async function sweepOne(
  s3: S3Client,
  db: ReturnType<typeof activityDeps>['db'],
  name: SweptBucket,
  bucketName: string,
  v: ObjectVersion,
  ctx: {
    pack: ReturnType<typeof loadPolicyPack>['pack'];
    now: Date;
    classify: (owner: { dataset?: string; model?: string }, uri: string) => string;
    mode: 'report' | 'delete';
    sweepId: string;
    log: ReturnType<typeof activityDeps>['log'];
  },
): Promise<{ recordType: string; classification: string; verdict: 'due' | 'held' | 'kept'; pastRetention: boolean; deleted: boolean }> {
  const key = v.Key!;
  const recordType = recordTypeOf(name, key);
  const classification = ctx.classify(ownerOf(name, key), `s3://${bucketName}/${key}`);
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucketName, Key: key, VersionId: v.VersionId }));
  const retainUntil = head.ObjectLockRetainUntilDate;
  const policyRetainUntil =
    !retainUntil && recordType !== 'other' && v.LastModified ? evidenceRetainUntil(ctx.pack, recordType as EvidenceKind, v.LastModified) : undefined;
  const legalHold = head.ObjectLockLegalHoldStatus === 'ON';
  const verdict = retentionVerdict({ retainUntil, policyRetainUntil, legalHold }, ctx.now);
  const until = retainUntil ?? policyRetainUntil;
  const pastRetention = !!until && until.getTime() <= ctx.now.getTime();
  let deleted = false;
  if (verdict === 'due' && ctx.mode === 'delete') {
    try {
      await db.transaction().execute(async (tx) => {
        await tx
          .insertInto('retention_tombstones')
          .values({
            bucket: bucketName,
            key,
            version_id: v.VersionId!,
            record_type: recordType,
            classification,
            retain_until: until ?? null,
            size_bytes: String(v.Size ?? 0),
            sha256: head.Metadata?.sha256 ?? null,
            sweep_id: ctx.sweepId,
          })
          .onConflict((oc) => oc.columns(['bucket', 'key', 'version_id']).doNothing())
          .execute();
        await s3.send(new DeleteObjectCommand({ Bucket: bucketName, Key: key, VersionId: v.VersionId }));
      });
      deleted = true;
    } catch (err) {
      // The store refused (a lock or hold set since the head): nothing deleted, no tombstone.
      ctx.log.warn({ bucket: bucketName, key, versionId: v.VersionId, error: String(err) }, 'retention delete refused');
    }
  }
  return { recordType, classification, verdict, pastRetention, deleted };
}

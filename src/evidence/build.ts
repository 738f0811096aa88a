import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { zipSync } from 'fflate';
import { type Kysely, sql } from 'kysely';
import { checkpointPrefix } from '../audit/checkpoint.ts';
import { sha256Hex } from '../audit/canonical.ts';
import type { Database } from '../db/schema.ts';
import { allowedSigners } from '../policy/pack.ts';
import type { PolicyPack } from '../policy/schema.ts';
import { parseS3Uri } from '../serving/s3-uri.ts';
import { signEnvelope } from '../signing/dsse.ts';
import type { FactoryKey } from '../signing/factory-key.ts';
import { getBytes } from '../storage/objects.ts';
import { MANIFEST_PAYLOAD_TYPE, PACK_FILES, PACK_FORMAT, PACK_LIMITS, type PackManifest, pathSegment } from './format.ts';

/**
 * Builds an evidence pack for one model version from the registry, the audit chain, the evidence
 * bucket and the policy pack in force: every file the examiner needs, a manifest of their sha256
 * digests signed by the factory key (DSSE), zipped. Reads only; the caller stores the archive and
 * records the export.
 */

export class EvidenceUnavailable extends Error {
  override name = 'EvidenceUnavailable';
  constructor(
    message: string,
    /** Worth retrying (a checkpoint not written yet) or final (no such version, too large). */
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export interface PackInput {
  model: string;
  version: number;
  case: string | null;
  actor: string;
  exportedAt: Date;
  exportWorkflowId: string;
}

export interface PackDeps {
  db: Kysely<Database>;
  s3: S3Client;
  evidenceBucket: string;
  chain: string;
  key: Pick<FactoryKey, 'privateKey' | 'keyId' | 'publicKeyPem' | 'sshPublicKey' | 'publicKeyHex'>;
  policy: { pack: PolicyPack; digest: string; text: string };
}

export interface BuiltPack {
  zip: Uint8Array;
  manifest: PackManifest;
  checkpointSeq: string;
  workflowId: string;
}

/** Related record types other features keep per model version, included when their table exists (read defensively). */
const EXCLUDED_TABLES = new Set(['model_versions', 'approvals', 'deployments', 'gateway_requests', 'payload_reads', 'audit_events', 'history_exports']);
const MAX_RECORD_ROWS = 10_000;

/** A row as JSON text: dates as ISO, bigints as text. */
function json(value: unknown): string {
  return `${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`;
}

export async function buildEvidencePack(deps: PackDeps, input: PackInput): Promise<BuiltPack> {
  const files = new Map<string, Uint8Array>();
  const put = (path: string, body: string | Uint8Array) => files.set(path, typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
  const { db, s3 } = deps;

  const mv = await db.selectFrom('model_versions').selectAll().where('model_name', '=', input.model).where('version', '=', input.version).executeTakeFirst();
  if (!mv) throw new EvidenceUnavailable(`no model version ${input.model}@${input.version} in the registry`, false);
  put(PACK_FILES.version, json(mv));

  // The signed provenance: the envelope's stored bytes, and its statement decoded for reading.
  if (mv.provenance_uri) {
    const loc = parseS3Uri(mv.provenance_uri);
    if (loc) {
      const envelope = await getBytes(s3, loc.bucket, loc.key);
      put(PACK_FILES.provenanceEnvelope, envelope);
      try {
        const payload = Buffer.from((JSON.parse(envelope.toString('utf8')) as { payload: string }).payload, 'base64').toString('utf8');
        put(PACK_FILES.provenanceStatement, json(JSON.parse(payload)));
      } catch {
        // Not readable as an envelope: the verifier names it; the raw bytes are what count.
      }
    }
  }

  // The certified dataset: its registry record (exclusions; classification where recorded) and manifest.
  const datasets = await db.selectFrom('dataset_versions').selectAll().where('manifest_digest', '=', mv.dataset_manifest_digest).execute();
  for (const d of datasets) {
    const dir = `${PACK_FILES.datasets}${pathSegment(d.manifest_digest.replace(/^sha256:/, ''))}/`;
    put(`${dir}record.json`, json(d));
    const loc = parseS3Uri(d.manifest_uri);
    if (loc) put(`${dir}manifest.json`, await getBytes(s3, loc.bucket, loc.key));
  }

  // The version's audit events (its lifecycle's workflow id) and the chain segment up to a signed checkpoint.
  const own = await db
    .selectFrom('audit_events')
    .select(['seq', 'event_id', 'kind', 'payload'])
    .where('workflow_id', '=', mv.workflow_id)
    .orderBy('seq')
    .execute();
  if (!own.length) throw new EvidenceUnavailable(`no audit event of ${mv.workflow_id}`, false);
  const firstSeq = String(own[0]!.seq);
  const lastOwnSeq = String(own.at(-1)!.seq);
  const checkpoint = await checkpointCovering(s3, deps.evidenceBucket, deps.chain, BigInt(lastOwnSeq));
  if (!checkpoint) throw new EvidenceUnavailable(`no signed checkpoint of the audit chain covers seq ${lastOwnSeq} yet`, true);
  const count = await sql<{ n: string }>`SELECT count(*)::text AS n FROM audit_events WHERE seq BETWEEN ${firstSeq} AND ${checkpoint.seq}`.execute(db);
  if (Number(count.rows[0]!.n) > PACK_LIMITS.auditEvents) {
    throw new EvidenceUnavailable(
      `the audit segment from seq ${firstSeq} to the checkpoint at ${checkpoint.seq} holds ${count.rows[0]!.n} events, more than ${PACK_LIMITS.auditEvents}`,
      false,
    );
  }
  const lines: string[] = [];
  let lastSeq = firstSeq;
  // Ordered by the bigint (audit_events.seq), not the text alias: "10" sorts before "9".
  for (let after = BigInt(firstSeq) - 1n; ;) {
    const page = await sql<Record<string, unknown> & { seq: string }>`
      SELECT seq::text AS seq, event_id, workflow_id, run_id, step, kind, actor, payload, occurred_at, prev_hash, hash
      FROM audit_events WHERE seq > ${after.toString()} AND seq <= ${checkpoint.seq} ORDER BY audit_events.seq LIMIT 5000`.execute(db);
    for (const r of page.rows) lines.push(JSON.stringify(r));
    if (page.rows.length < 5000) break;
    after = BigInt(page.rows.at(-1)!.seq);
  }
  if (lines.length) lastSeq = (JSON.parse(lines.at(-1)!) as { seq: string }).seq;
  put(PACK_FILES.auditEvents, `${lines.join('\n')}\n`);
  put(PACK_FILES.auditCheckpoint, checkpoint.bytes);
  put(PACK_FILES.auditProof, json({ firstSeq, lastSeq, checkpointSeq: checkpoint.seq, chain: deps.chain, versionEvents: own.map((e) => e.event_id) }));

  // The evaluation report against the thresholds the lifecycle judged it by (its evaluation.completed event).
  const artifact = parseS3Uri(mv.artifact_uri);
  if (artifact) {
    const report = await getBytes(s3, deps.evidenceBucket, `${artifact.key}.evaluation.json`).catch(() => undefined);
    if (report) put(PACK_FILES.evaluationReport, report);
  }
  const evaluated = own.find((e) => e.kind === 'evaluation.completed')?.payload as
    { metrics?: Record<string, number>; thresholds?: Record<string, number>; failing?: unknown; policyDigest?: string } | undefined;
  const thresholds = evaluated?.thresholds ?? deps.policy.pack.riskTiers[mv.risk_tier as 'low' | 'medium' | 'high']?.thresholds ?? {};
  put(
    PACK_FILES.evaluationThresholds,
    json({
      riskTier: mv.risk_tier,
      policyDigest: evaluated?.policyDigest ?? mv.policy_digest,
      metrics: Object.entries(thresholds).map(([metric, minimum]) => {
        const value = (evaluated?.metrics ?? mv.metrics)[metric];
        return { metric, value: value ?? null, minimum, passed: typeof value === 'number' && value >= minimum };
      }),
      allMetrics: evaluated?.metrics ?? mv.metrics,
    }),
  );

  // Every decision (accepted and refused), each signed one's statement and signature as files of their own.
  const approvals = await db.selectFrom('approvals').selectAll().where('model_version_id', '=', mv.id).orderBy('decided_at').orderBy('id').execute();
  const approvalRecords = approvals.map((a, i) => {
    const base = `${PACK_FILES.approvalsDir}${String(i + 1).padStart(3, '0')}-${pathSegment(a.role)}-${pathSegment(a.approver)}`;
    const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
    const rec = { ...a, decided_at: iso(a.decided_at)!, signed_at: iso(a.signed_at) } as Record<string, unknown>;
    delete rec.model_version_id;
    if (a.signed_statement !== null && a.signature !== null) {
      put(`${base}.statement.txt`, a.signed_statement);
      put(`${base}.statement.txt.sig`, a.signature);
      rec.statementFile = `${base}.statement.txt`;
      rec.signatureFile = `${base}.statement.txt.sig`;
    }
    return rec;
  });
  put(PACK_FILES.approvals, json(approvalRecords));

  put(PACK_FILES.deployments, json(await db.selectFrom('deployments').selectAll().where('model_version_id', '=', mv.id).orderBy('deployed_at').execute()));
  for (const [table, rows] of await relatedRecords(db, mv, [...new Set(datasets.map((d) => d.name))]))
    put(`${PACK_FILES.records}${pathSegment(table)}.json`, json(rows));

  // The lifecycle's exported Temporal histories, every run.
  const histories = await db
    .selectFrom('history_exports')
    .selectAll()
    .where('workflow_id', '=', mv.workflow_id)
    .orderBy('exported_at')
    .orderBy('run_index')
    .execute();
  const index = [];
  for (const h of histories) {
    const loc = parseS3Uri(h.uri);
    if (!loc) continue;
    const file = `${PACK_FILES.histories}${pathSegment(h.run_id)}.json`;
    if (!files.has(file)) put(file, await getBytes(s3, loc.bucket, loc.key));
    index.push({ runId: h.run_id, status: h.status, file, digest: h.digest, events: h.events, uri: h.uri });
  }
  put(PACK_FILES.historyIndex, json(index));

  put(PACK_FILES.policyPack, deps.policy.text);
  put(PACK_FILES.policyDigest, `${deps.policy.digest}\n`);
  put(PACK_FILES.factoryKeyPem, deps.key.publicKeyPem);
  put(PACK_FILES.factoryKeySsh, `${deps.key.sshPublicKey}\n`);
  put(PACK_FILES.factoryKeyHex, `${deps.key.publicKeyHex}\n`);
  put(PACK_FILES.allowedSigners, allowedSigners(deps.policy.pack));
  put(PACK_FILES.readme, readme(input, mv.workflow_id));

  const { zip, manifest } = sealPack(files, {
    model: mv.model_name,
    version: mv.version,
    workflowId: mv.workflow_id,
    artifactDigest: mv.artifact_digest,
    exportedAt: input.exportedAt,
    exportedBy: input.actor,
    case: input.case,
    exportWorkflowId: input.exportWorkflowId,
    key: deps.key,
  });
  return { zip, manifest, checkpointSeq: checkpoint.seq, workflowId: mv.workflow_id };
}

export interface SealFacts {
  model: string;
  version: number;
  workflowId: string;
  artifactDigest: string;
  exportedAt: Date;
  exportedBy: string;
  case: string | null;
  exportWorkflowId: string;
  key: Pick<FactoryKey, 'privateKey' | 'keyId'>;
}

/**
 * Lists every file with its sha256 in manifest.json, signs the manifest's exact bytes (DSSE, factory
 * key) into manifest.dsse.json, and zips the lot. Pure: the exporter and the verifier's tests seal packs with it.
 */
export function sealPack(content: ReadonlyMap<string, Uint8Array>, f: SealFacts): { zip: Uint8Array; manifest: PackManifest } {
  const files = new Map(content);
  const manifest: PackManifest = {
    format: PACK_FORMAT,
    model: f.model,
    version: f.version,
    workflowId: f.workflowId,
    artifactDigest: f.artifactDigest,
    exportedAt: f.exportedAt.toISOString(),
    exportedBy: f.exportedBy,
    case: f.case,
    exportWorkflowId: f.exportWorkflowId,
    keyId: f.key.keyId,
    files: [...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([path, bytes]) => ({ path, sha256: sha256Hex(bytes), bytes: bytes.length })),
  };
  const manifestText = json(manifest);
  files.set(PACK_FILES.manifest, Buffer.from(manifestText));
  files.set(PACK_FILES.manifestEnvelope, Buffer.from(json(signEnvelope(f.key, MANIFEST_PAYLOAD_TYPE, manifestText))));
  // One fixed time on every entry: the same records give the same archive bytes (a retried export stores nothing new).
  const mtime = f.exportedAt;
  const zip = zipSync(Object.fromEntries([...files].map(([p, b]) => [p, [b, { mtime }]])), { level: 6, mtime });
  return { zip, manifest };
}

/** The oldest signed checkpoint at or past `seq` (the shortest segment that proves the version's events). */
async function checkpointCovering(s3: S3Client, bucket: string, chain: string, seq: bigint): Promise<{ seq: string; bytes: Buffer } | undefined> {
  let best: { seq: bigint; key: string } | undefined;
  for (let token: string | undefined; ;) {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: checkpointPrefix(chain), ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const m = /-seq-(\d{1,19})\.dsse\.json$/.exec(o.Key ?? '');
      if (!m) continue;
      const s = BigInt(m[1]!);
      if (s >= seq && (!best || s < best.seq)) best = { seq: s, key: o.Key! };
    }
    if (!page.IsTruncated) break;
    token = page.NextContinuationToken;
  }
  return best ? { seq: best.seq.toString(), bytes: await getBytes(s3, bucket, best.key) } : undefined;
}

/**
 * Records other features keep about this version, read defensively (a section per table, present when
 * the table exists, the reader may read it and it has rows): any table with a column naming a model
 * version by id (`model_version_id`, `from_version_id`, `to_version_id`: retirements, rollbacks…) or
 * the version's dataset manifest digest; rollback drills and legal holds by model (and dataset) name.
 * Request logs (gateway_requests and its monthly partitions) are left out: per request, traced apart.
 */
async function relatedRecords(
  db: Kysely<Database>,
  mv: { id: number; model_name: string; version: number; dataset_manifest_digest: string },
  datasetNames: readonly string[],
): Promise<Array<[string, unknown[]]>> {
  // The catalog, not information_schema: partitions are told apart (relispartition) and no name is cast.
  const cols = await sql<{ table_name: string; column_name: string }>`
    SELECT c.relname AS table_name, a.attname AS column_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND NOT a.attisdropped
      AND a.attname IN ('model_version_id', 'from_version_id', 'to_version_id', 'dataset_manifest_digest', 'manifest_digest')
    ORDER BY c.relname, a.attname`.execute(db);
  const byTable = new Map<string, string[]>();
  for (const { table_name: t, column_name: c } of cols.rows) byTable.set(t, [...(byTable.get(t) ?? []), c]);
  const out: Array<[string, unknown[]]> = [];
  const read = async (table: string, where: ReturnType<typeof sql>) => {
    try {
      const rows = await sql<Record<string, unknown>>`SELECT * FROM ${sql.table(table)} WHERE ${where} LIMIT ${MAX_RECORD_ROWS}`.execute(db);
      if (rows.rows.length) out.push([table, rows.rows]);
      return rows.rows;
    } catch {
      // Not readable by this role (or gone): the section is left out, as for a table that does not exist.
      return [];
    }
  };
  for (const [table, columns] of byTable) {
    if (EXCLUDED_TABLES.has(table) || table.startsWith('gateway_requests') || table === 'dataset_versions' || !/^[a-z_][a-z0-9_]*$/.test(table)) continue;
    const conditions = columns.map((c) => sql`${sql.ref(c)} = ${c.endsWith('digest') ? mv.dataset_manifest_digest : mv.id}`);
    const rows = await read(table, sql.join(conditions, sql` OR `));
    if (table === 'rollbacks' && rows.length && (await tableExists(db, 'rollback_recoveries'))) {
      await read('rollback_recoveries', sql`rollback_id IN (${sql.join(rows.map((r) => r.id))})`);
    }
  }
  if (await tableExists(db, 'rollback_drills')) {
    await read('rollback_drills', sql`model_name = ${mv.model_name} AND (live_version = ${mv.version} OR previous_version = ${mv.version})`);
  }
  if (await tableExists(db, 'legal_holds')) {
    const holds = await read('legal_holds', sql`scope_name IN (${sql.join([mv.model_name, ...datasetNames])})`);
    if (holds.length && (await tableExists(db, 'legal_hold_releases'))) {
      await read('legal_hold_releases', sql`case_id IN (${sql.join(holds.map((h) => h.case_id))})`);
    }
  }
  return out;
}

async function tableExists(db: Kysely<Database>, table: string): Promise<boolean> {
  const r = await sql<{ t: string | null }>`SELECT to_regclass(${table})::text AS t`.execute(db);
  return !!r.rows[0]?.t;
}

function readme(input: PackInput, workflowId: string): string {
  return `Evidence pack: ${input.model}@${input.version} (lifecycle ${workflowId})
Exported ${input.exportedAt.toISOString()} by ${input.actor}${input.case ? ` for case ${input.case}` : ''}.

Verify everything offline:      npx factory evidence verify pack.zip [--trusted-key factory.pub.pem]
Or with standard tools, after unzipping:
  sha256sum every file against manifest.json (its "files" list);
  approvals:   ssh-keygen -Y verify -f keys/allowed_signers -I <approver> -n factory-approval \\
                 -s approvals/<n>-<role>-<approver>.statement.txt.sig < approvals/<n>-<role>-<approver>.statement.txt
  provenance:  the DSSE envelope provenance/provenance.dsse.json with securesystemslib and the key in
               keys/factory-signing.pub.hex (test/verifiers/verify_provenance.py in the repository).
Compare keys/factory-signing.pub with the factory's published key before trusting any signature.
`;
}

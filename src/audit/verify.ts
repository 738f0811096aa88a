import type { S3Client } from '@aws-sdk/client-s3';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.ts';
import { GENESIS_HASH, hashOf } from './chain.ts';
import { type ObjectCheck, mapLimit, referencedObjects } from './objects.ts';

export interface VerifyResult {
  ok: boolean;
  rows: number;
  lastSeq?: string;
  headHash?: string;
  /** The first row that does not verify, and why. */
  firstBad?: { seq: string; eventId: string; reason: string };
}

/**
 * Recomputes the chain from the first row: each row's hash over its canonical content, and its link
 * to the row before. An edited row fails its own hash; a deleted row breaks the next row's link.
 * (Gaps in seq alone prove nothing: a rolled-back insert leaves one. The hash link does.)
 */
export async function verifyAuditChain(db: Kysely<Database>, batch = 5_000): Promise<VerifyResult> {
  let prevHash = GENESIS_HASH;
  let prevSeq = 0n;
  let rows = 0;
  let lastSeq: string | undefined;
  for (;;) {
    const page = await db.selectFrom('audit_events').selectAll().where('seq', '>', String(prevSeq)).orderBy('seq').limit(batch).execute();
    for (const r of page) {
      const seq = BigInt(r.seq);
      const bad = (reason: string): VerifyResult => ({
        ok: false,
        rows,
        lastSeq,
        headHash: prevHash,
        firstBad: { seq: String(r.seq), eventId: r.event_id, reason },
      });
      if (r.prev_hash !== prevHash) {
        return bad(`its prev_hash does not match the hash of the row before it (seq ${prevSeq}): a row before it was deleted, inserted or changed`);
      }
      if (hashOf(r) !== r.hash) return bad('its content does not match its hash: the row was edited');
      prevHash = r.hash;
      prevSeq = seq;
      lastSeq = String(r.seq);
      rows += 1;
    }
    if (page.length < batch) break;
  }
  return { ok: true, rows, lastSeq, headHash: prevHash };
}

export interface ProjectionMismatch {
  table: 'approvals' | 'model_versions' | 'deployments';
  id: string;
  reason: string;
}

export interface ProjectionResult {
  ok: boolean;
  checked: number;
  mismatches: ProjectionMismatch[];
}

type Payload = Record<string, unknown>;

function differences(row: Record<string, unknown>, payload: Payload | null, fields: Array<[string, string]>): string[] {
  if (!payload) return ['no audit event records it'];
  return fields
    .filter(([col, key]) => row[col] !== payload[key])
    .map(([col, key]) => `${col} is ${JSON.stringify(row[col])}, the audit trail says ${JSON.stringify(payload[key])}`);
}

/**
 * Checks the registry tables that `trace` reads against the hash-chained audit trail: every
 * decision, model version and deployment must match the event recorded when it happened. (Run it
 * after verifyAuditChain: a verified chain makes these events the reference.)
 */
export async function verifyProjection(db: Kysely<Database>): Promise<ProjectionResult> {
  const mismatches: ProjectionMismatch[] = [];
  const decisions = await sql<{
    id: string;
    approver: string;
    role: string;
    meaning: string;
    model_digest: string;
    accepted: boolean;
    refusal_reason: string | null;
    kind: string | null;
    payload: Payload | null;
  }>`
    SELECT a.id, a.approver, a.role, a.meaning, a.model_digest, a.accepted, a.refusal_reason, e.kind, e.payload
    FROM approvals a LEFT JOIN audit_events e ON e.event_id = regexp_replace(a.id, '/decision-([0-9]+)$', '/decision.\\1')`.execute(db);
  for (const r of decisions.rows) {
    const problems = r.accepted
      ? differences(r, r.payload, [
          ['approver', 'approver'],
          ['role', 'role'],
          ['meaning', 'meaning'],
          ['model_digest', 'modelDigest'],
        ])
      : differences(r, r.payload, [['refusal_reason', 'reason']]);
    if (r.payload && (r.kind === 'approval.refused') === r.accepted) problems.push(`accepted is ${r.accepted}, the audit trail says ${r.kind}`);
    if (problems.length) mismatches.push({ table: 'approvals', id: r.id, reason: problems.join('; ') });
  }
  // A workflow id may hold several runs (a failed lifecycle retried), each registering its own version:
  // a version's event is its registering run's (run_id), or, for rows from before runs were told
  // apart, the event naming its id. A deployment's event has the deployment's own run in its id.
  // Its signed provenance (migration 0007) must be the one its run's `provenance.signed` event names;
  // a version whose run signed none (older lifecycles) has none.
  const versions = await sql<{
    id: number;
    model_name: string;
    version: number;
    artifact_digest: string;
    provenance_uri: string | null;
    provenance_digest: string | null;
    provenance_key_id: string | null;
    payload: Payload | null;
    signed: Payload | null;
  }>`
    SELECT m.id, m.model_name, m.version, m.artifact_digest, m.provenance_uri, m.provenance_digest, m.provenance_key_id, e.payload, p.payload AS signed
    FROM model_versions m LEFT JOIN audit_events e ON e.workflow_id = m.workflow_id AND e.step = 'model.registered'
      AND CASE WHEN m.run_id IS NULL THEN e.payload->>'modelVersionId' = m.id::text ELSE e.run_id = m.run_id END
    LEFT JOIN audit_events p ON p.workflow_id = m.workflow_id AND p.run_id = m.run_id AND p.step = 'provenance.signed'`.execute(db);
  for (const r of versions.rows) {
    const problems = differences(r, r.payload, [
      ['version', 'version'],
      ['artifact_digest', 'artifactDigest'],
    ]);
    if (r.signed || r.provenance_uri !== null || r.provenance_digest !== null || r.provenance_key_id !== null) {
      problems.push(
        ...differences(r, r.signed ?? { uri: null, digest: null, keyId: null }, [
          ['provenance_uri', 'uri'],
          ['provenance_digest', 'digest'],
          ['provenance_key_id', 'keyId'],
        ]),
      );
    }
    if (problems.length) mismatches.push({ table: 'model_versions', id: `${r.model_name}@${r.version}`, reason: problems.join('; ') });
  }
  const deployments = await sql<{ id: string; triton_model: string; triton_version: number; artifact_digest: string; payload: Payload | null }>`
    SELECT d.id, d.triton_model, d.triton_version, d.artifact_digest, e.payload
    FROM deployments d LEFT JOIN audit_events e ON e.event_id = regexp_replace(d.id, '/deployment$', '/model.deployed')`.execute(db);
  for (const r of deployments.rows) {
    const problems = differences(r, r.payload, [
      ['triton_model', 'tritonModel'],
      ['triton_version', 'tritonVersion'],
      ['artifact_digest', 'artifactDigest'],
    ]);
    if (problems.length) mismatches.push({ table: 'deployments', id: r.id, reason: problems.join('; ') });
  }
  return { ok: mismatches.length === 0, checked: decisions.rows.length + versions.rows.length + deployments.rows.length, mismatches };
}

export interface ObjectsResult {
  /** false when an object is missing or differs (tampering or loss); unreadable ones are counted apart. */
  ok: boolean;
  checked: number;
  /** Every object that is not as recorded: missing, different, or unreadable (the store did not answer). */
  problems: ObjectCheck[];
  unreadable: number;
}

/**
 * Checks that every object the registry references (raw datasets, certified data, manifests,
 * artifacts) exists in object storage with its recorded sha256, hashing each by stream, four at once.
 */
export async function verifyObjects(db: Kysely<Database>, s3: S3Client, { concurrency = 4 }: { concurrency?: number } = {}): Promise<ObjectsResult> {
  // The S3 SDK only here: `trace` shares this module's chunk and must not load it.
  const { hashObject } = await import('./objects-check.ts');
  const refs = await referencedObjects(db);
  const checks = await mapLimit(refs, concurrency, (r) => hashObject(s3, r));
  const problems = checks.filter((c) => c.state !== 'ok');
  return {
    ok: !problems.some((p) => p.state === 'missing' || p.state === 'different'),
    checked: checks.length,
    problems,
    unreadable: problems.filter((p) => p.state === 'unreadable').length,
  };
}

import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.ts';

export interface ProjectionMismatch {
  table: 'approvals' | 'model_versions' | 'deployments';
  id: string;
  reason: string;
}

export interface ProjectionResult {
  ok: boolean;
  checked: number;
  /** The rows that differ, in table and key order: at most MAX_MISMATCHES_LISTED of them (mismatchCount counts all). */
  mismatches: ProjectionMismatch[];
  /** How many rows differ in all (mismatches lists the first of them). */
  mismatchCount: number;
}

/** A registry rewritten wholesale would otherwise make a list as long as the registry. */
export const MAX_MISMATCHES_LISTED = 1_000;

type Payload = Record<string, unknown>;

function differences(row: Record<string, unknown>, payload: Payload | null | undefined, fields: Array<[string, string]>): string[] {
  if (!payload) return ['no audit event records it'];
  return fields
    .filter(([col, key]) => row[col] !== payload[key])
    .map(([col, key]) => `${col} is ${JSON.stringify(row[col])}, the audit trail says ${JSON.stringify(payload[key])}`);
}

/** A deployment's row id `<wf>/<run>/deployment` and its event id `<wf>/<run>/model.deployed`. */
export function deploymentEventId(deploymentId: string): string {
  return deploymentId.replace(/\/deployment$/, '/model.deployed');
}

interface EventRow {
  event_id: string;
  workflow_id: string;
  run_id: string;
  kind: string;
  payload: Payload;
}

/** The events with these ids, by id: one index lookup each (audit_events.event_id is unique). */
async function eventsById(db: Kysely<Database>, ids: string[]): Promise<Map<string, EventRow>> {
  if (!ids.length) return new Map();
  const rows = await sql<EventRow>`
    SELECT event_id, workflow_id, run_id, kind, payload FROM audit_events WHERE event_id = ANY(${ids}::text[])`.execute(db);
  return new Map(rows.rows.map((r) => [r.event_id, r]));
}

/**
 * Checks the registry tables that `trace` reads against the hash-chained audit trail: every
 * decision, model version and deployment must match the event recorded when it happened. (Run it
 * after verifyAuditChain: a verified chain makes these events the reference.)
 *
 * Streams: each table is read in keyset pages of `batch` rows (by primary key), and each page's
 * events are fetched by their unique event ids (index lookups), so memory stays bounded by the page
 * and the time grows with the registry, never with a join over the whole trail.
 */
export async function verifyProjection(db: Kysely<Database>, { batch = 2_000 }: { batch?: number } = {}): Promise<ProjectionResult> {
  const mismatches: ProjectionMismatch[] = [];
  let mismatchCount = 0;
  let checked = 0;
  const mismatch = (m: ProjectionMismatch) => {
    mismatchCount += 1;
    if (mismatches.length < MAX_MISMATCHES_LISTED) mismatches.push(m);
  };

  // Decisions are most of the registry (every refusal is one): each page is joined to its events in the
  // database (one index lookup per row, on the unique event id), and only the rows that may differ come
  // back, with the page's last row for the keyset; the comparison below stays the one that decides.
  for (let after = ''; ;) {
    const page = await sql<{
      id: string;
      approver: string;
      role: string;
      meaning: string;
      model_digest: string;
      accepted: boolean;
      refusal_reason: string | null;
      key_fingerprint: string | null;
      signed_statement: string | null;
      signature: string | null;
      kind: string | null;
      payload: Payload | null;
      n: string;
      is_last: boolean;
    }>`
      WITH page AS (
        SELECT id, approver, role, meaning, model_digest, accepted, refusal_reason, key_fingerprint, signed_statement, signature
        FROM approvals WHERE id > ${after} ORDER BY id LIMIT ${batch}
      ), last AS (SELECT max(id) AS id, count(*) AS n FROM page)
      SELECT p.*, e.kind, e.payload, last.n::text AS n, p.id = last.id AS is_last
      FROM page p CROSS JOIN last LEFT JOIN audit_events e ON e.event_id = regexp_replace(p.id, '/decision-([0-9]+)$', '/decision.\\1')
      WHERE p.id = last.id OR e.payload IS NULL OR (e.kind = 'approval.refused') = p.accepted
        OR (p.accepted AND (e.payload->'approver' IS DISTINCT FROM to_jsonb(p.approver) OR e.payload->'role' IS DISTINCT FROM to_jsonb(p.role)
          OR e.payload->'meaning' IS DISTINCT FROM to_jsonb(p.meaning) OR e.payload->'modelDigest' IS DISTINCT FROM to_jsonb(p.model_digest)))
        OR (NOT p.accepted AND e.payload->'reason' IS DISTINCT FROM COALESCE(to_jsonb(p.refusal_reason), 'null'::jsonb))
        OR (p.accepted AND (e.payload->'signature'->'keyFingerprint' IS DISTINCT FROM to_jsonb(p.key_fingerprint)
          OR e.payload->'signature'->'statement' IS DISTINCT FROM to_jsonb(p.signed_statement)
          OR e.payload->'signature'->'signature' IS DISTINCT FROM to_jsonb(p.signature)))
      ORDER BY p.id`.execute(db);
    for (const r of page.rows) {
      const problems = r.accepted
        ? differences(r, r.payload, [
            ['approver', 'approver'],
            ['role', 'role'],
            ['meaning', 'meaning'],
            ['model_digest', 'modelDigest'],
          ])
        : differences(r, r.payload, [['refusal_reason', 'reason']]);
      if (r.payload && (r.kind === 'approval.refused') === r.accepted) problems.push(`accepted is ${r.accepted}, the audit trail says ${r.kind}`);
      // A signed decision's evidence is in its event too (migration 0005): the row must carry the same.
      if (r.payload && r.accepted) {
        const sig = (r.payload.signature ?? null) as { keyFingerprint?: string; statement?: string; signature?: string } | null;
        for (const [col, key] of [
          ['key_fingerprint', 'keyFingerprint'],
          ['signed_statement', 'statement'],
          ['signature', 'signature'],
        ] as const) {
          const trail = sig?.[key] ?? null;
          if (r[col] !== trail)
            problems.push(`${col} ${r[col] === null ? 'is empty' : 'differs'}, the audit trail ${trail === null ? 'has none' : 'has another'}`);
        }
      }
      if (problems.length) mismatch({ table: 'approvals', id: r.id, reason: problems.join('; ') });
    }
    const n = Number(page.rows[0]?.n ?? 0);
    checked += n;
    if (n < batch) break;
    after = page.rows.find((r) => r.is_last)!.id;
  }

  // A workflow id may hold several runs (a failed lifecycle retried), each registering its own version:
  // a version's event is its registering run's (`<wf>/<run>/model.registered`), or, for rows from
  // before runs were told apart (run_id NULL), the workflow's model.registered event naming its id.
  // Its signed provenance (migration 0007) must be the one its run's `provenance.signed` event names;
  // a version whose run signed none (older lifecycles) has none.
  for (let after = 0; ;) {
    const page = await db
      .selectFrom('model_versions')
      .select(['id', 'model_name', 'version', 'artifact_digest', 'workflow_id', 'run_id', 'provenance_uri', 'provenance_digest', 'provenance_key_id'])
      .where('id', '>', after)
      .orderBy('id')
      .limit(batch)
      .execute();
    const byRun = await eventsById(
      db,
      page.filter((m) => m.run_id !== null).flatMap((m) => [`${m.workflow_id}/${m.run_id}/model.registered`, `${m.workflow_id}/${m.run_id}/provenance.signed`]),
    );
    const legacy = page.filter((m) => m.run_id === null);
    const legacyEvents = legacy.length
      ? (
          await sql<EventRow>`
            SELECT event_id, workflow_id, run_id, kind, payload FROM audit_events
            WHERE workflow_id = ANY(${legacy.map((m) => m.workflow_id)}::text[]) AND step = 'model.registered'`.execute(db)
        ).rows
      : [];
    for (const m of page) {
      const e =
        m.run_id !== null
          ? byRun.get(`${m.workflow_id}/${m.run_id}/model.registered`)
          : legacyEvents.find((x) => x.workflow_id === m.workflow_id && String(x.payload.modelVersionId) === String(m.id));
      const problems = differences(m, e?.payload, [
        ['version', 'version'],
        ['artifact_digest', 'artifactDigest'],
      ]);
      const signed = m.run_id !== null ? byRun.get(`${m.workflow_id}/${m.run_id}/provenance.signed`)?.payload : undefined;
      if (signed || m.provenance_uri !== null || m.provenance_digest !== null || m.provenance_key_id !== null) {
        problems.push(
          ...differences(m, signed ?? { uri: null, digest: null, keyId: null }, [
            ['provenance_uri', 'uri'],
            ['provenance_digest', 'digest'],
            ['provenance_key_id', 'keyId'],
          ]),
        );
      }
      if (problems.length) mismatch({ table: 'model_versions', id: `${m.model_name}@${m.version}`, reason: problems.join('; ') });
    }
    checked += page.length;
    if (page.length < batch) break;
    after = page.at(-1)!.id;
  }

  for (let after: string | null = null; ;) {
    const page: Array<{ id: string; triton_model: string; triton_version: number; artifact_digest: string }> = await db
      .selectFrom('deployments')
      .select(['id', 'triton_model', 'triton_version', 'artifact_digest'])
      .$if(after !== null, (q) => q.where('id', '>', after!))
      .orderBy('id')
      .limit(batch)
      .execute();
    const events = await eventsById(
      db,
      page.map((d) => deploymentEventId(d.id)),
    );
    for (const d of page) {
      const problems = differences(d, events.get(deploymentEventId(d.id))?.payload, [
        ['triton_model', 'tritonModel'],
        ['triton_version', 'tritonVersion'],
        ['artifact_digest', 'artifactDigest'],
      ]);
      if (problems.length) mismatch({ table: 'deployments', id: d.id, reason: problems.join('; ') });
    }
    checked += page.length;
    if (page.length < batch) break;
    after = page.at(-1)!.id;
  }
  return { ok: mismatchCount === 0, checked, mismatches, mismatchCount };
}

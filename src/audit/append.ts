import { type Kysely, type Transaction, sql } from 'kysely';
import type { Database } from '../db/schema.ts';
import { sha256Hex } from './canonical.ts';
import { type AuditEventInput, GENESIS_HASH, auditEventId, canonicalEvent } from './chain.ts';

/** Serialises writers of the chain (any process): each row needs the previous row's hash. */
const AUDIT_CHAIN_LOCK = 7_240_001;

export interface AppendedEvent {
  seq: string;
  eventId: string;
  hash: string;
  duplicate: boolean;
}

/**
 * Appends one event to the hash chain. Idempotent: an event id already present is returned as it is,
 * so a retried activity or a replayed step never adds a second row. The insert runs as the
 * least-privileged role `factory_audit_writer` (INSERT and SELECT on audit_events, nothing else).
 */
export async function appendAuditEvent(db: Kysely<Database>, e: AuditEventInput): Promise<AppendedEvent> {
  return db.transaction().execute(async (tx) => (await appendAuditEventsIn(tx, [e]))[0]!);
}

/**
 * Appends several events in order inside the caller's transaction, so they commit together with the
 * registry rows they record. Switches the transaction to the least-privileged writer role: write the
 * caller's own rows first.
 */
export async function appendAuditEventsIn(tx: Transaction<Database>, events: readonly AuditEventInput[]): Promise<AppendedEvent[]> {
  await sql`SELECT pg_advisory_xact_lock(${AUDIT_CHAIN_LOCK})`.execute(tx);
  await sql`SET LOCAL ROLE factory_audit_writer`.execute(tx);
  const out: AppendedEvent[] = [];
  let last = (await tx.selectFrom('audit_events').select('hash').orderBy('seq', 'desc').limit(1).executeTakeFirst())?.hash ?? GENESIS_HASH;
  for (const e of events) {
    const eventId = auditEventId(e);
    const existing = await tx.selectFrom('audit_events').select(['seq', 'hash']).where('event_id', '=', eventId).executeTakeFirst();
    if (existing) {
      out.push({ seq: String(existing.seq), eventId, hash: existing.hash, duplicate: true });
      continue;
    }
    const row = {
      event_id: eventId,
      workflow_id: e.workflowId,
      run_id: e.runId,
      step: e.step,
      kind: e.kind,
      actor: e.actor,
      payload: e.payload,
      occurred_at: e.occurredAt,
      prev_hash: last,
    };
    // The text hashed is stored as it is: verify streams it instead of rebuilding it (migration 0022).
    const canonical = canonicalEvent(row);
    const hash = sha256Hex(canonical);
    const inserted = await tx
      .insertInto('audit_events')
      .values({ ...row, payload: JSON.stringify(row.payload), hash, canonical })
      .returning('seq')
      .executeTakeFirstOrThrow();
    last = hash;
    out.push({ seq: String(inserted.seq), eventId, hash, duplicate: false });
  }
  return out;
}

import { appendAuditEvent } from '../src/audit/append.ts';
import type { AuditEventInput } from '../src/audit/chain.ts';
import { activityDeps } from './deps.ts';

/** Appends one lifecycle event to the hash-chained audit projection (idempotent by event id). */
export async function appendAudit(event: AuditEventInput): Promise<{ seq: string; hash: string }> {
  const res = await appendAuditEvent(activityDeps().db, event);
  return { seq: res.seq, hash: res.hash };
}

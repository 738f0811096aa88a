import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { GENESIS_HASH, hashOf } from './chain.ts';

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
      const bad = (reason: string): VerifyResult => ({ ok: false, rows, lastSeq, headHash: prevHash, firstBad: { seq: String(r.seq), eventId: r.event_id, reason } });
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

import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.ts';
import { hashOf } from './chain.ts';
import type { AnchorPoint } from './verify.ts';

export interface SinceResult {
  ok: boolean;
  /** Rows after the checkpoint that were checked (their hash and link). */
  checked: number;
  /** true when the chain went on past `maxRows`: those rows were not checked here (`factory audit verify` checks all). */
  capped: boolean;
  lastSeq: string;
  firstBad?: { seq: string; reason: string };
}

/**
 * The chain from a signed checkpoint onwards: the checkpointed row must still hash to what was signed,
 * and each later row must hash to its content and link to the one before, up to `maxRows` rows. What
 * lies before the checkpoint was held against it when it was signed (the writer refuses a head that
 * differs) and is left to `factory audit verify`, which recomputes the whole chain: this is the
 * bounded check a status page can afford on every load.
 */
export async function verifyChainSince(db: Kysely<Database>, anchor: AnchorPoint, { maxRows = 20_000, batch = 5_000 } = {}): Promise<SinceResult> {
  const cols = ['event_id', 'workflow_id', 'run_id', 'step', 'kind', 'actor', 'payload', 'occurred_at', 'prev_hash', 'hash'] as const;
  const first = await db
    .selectFrom('audit_events')
    .select([sql<string>`seq::text`.as('seq'), ...cols])
    .where('audit_events.seq', '=', anchor.seq)
    .executeTakeFirst();
  if (!first) return { ok: false, checked: 0, capped: false, lastSeq: anchor.seq, firstBad: { seq: anchor.seq, reason: 'the checkpointed row is gone' } };
  if (first.hash !== anchor.headHash || hashOf(first) !== first.hash) {
    return {
      ok: false,
      checked: 0,
      capped: false,
      lastSeq: anchor.seq,
      firstBad: { seq: anchor.seq, reason: 'the checkpointed row no longer hashes to what was signed' },
    };
  }
  let prevHash = first.hash;
  let lastSeq = anchor.seq;
  let checked = 0;
  while (checked < maxRows) {
    const want = Math.min(batch, maxRows - checked);
    const page = await db
      .selectFrom('audit_events')
      .select([sql<string>`seq::text`.as('seq'), ...cols])
      .where('audit_events.seq', '>', lastSeq)
      .orderBy('audit_events.seq')
      .limit(want)
      .execute();
    for (const r of page) {
      if (r.prev_hash !== prevHash)
        return { ok: false, checked, capped: false, lastSeq, firstBad: { seq: r.seq, reason: 'it does not link to the row before it' } };
      if (hashOf(r) !== r.hash) return { ok: false, checked, capped: false, lastSeq, firstBad: { seq: r.seq, reason: 'its content does not match its hash' } };
      prevHash = r.hash;
      lastSeq = r.seq;
      checked += 1;
    }
    if (page.length < want) return { ok: true, checked, capped: false, lastSeq };
  }
  const more = await db.selectFrom('audit_events').select('event_id').where('audit_events.seq', '>', lastSeq).limit(1).executeTakeFirst();
  return { ok: true, checked, capped: !!more, lastSeq };
}

import type { S3Client } from '@aws-sdk/client-s3';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { AuditEventsTable, Database } from '../db/schema.ts';
import { sha256Hex } from './canonical.ts';
import { GENESIS_HASH, canonicalEvent } from './chain.ts';
import { CANONICAL_AGREES, CANONICAL_AGREES_DEF } from '../db/migrations/0022_audit_canonical_text.ts';
import { type ObjectCheck, mapLimit, referencedObjects } from './objects.ts';

export interface VerifyResult {
  ok: boolean;
  rows: number;
  lastSeq?: string;
  headHash?: string;
  /**
   * Who held each row's columns to its stored hashed text: `server` (the CHECK constraint of
   * migration 0022, in force) or `client` (rebuilt here: `full`, or the constraint was not in force).
   */
  textCheck?: 'server' | 'client';
  /** Why the client rebuilt every text though `full` was not asked (the constraint not in force). */
  fellBack?: string;
  /** The first row that does not verify, and why. */
  firstBad?: { seq: string; eventId: string; reason: string };
  /** Signed checkpoints the chain was held against (when given): each checkpointed seq's hash and count. */
  anchored?: { checked: number; matched: number; rewritten: CheckpointMismatch[]; unreached: AnchorPoint[] };
}

/** What a signed checkpoint says the chain was at one seq. */
export interface AnchorPoint {
  seq: string;
  headHash: string;
  eventCount: number;
}

export interface CheckpointMismatch extends AnchorPoint {
  /** What the database holds there now. */
  found: { hash?: string; count: number };
  reason: string;
}

type ChainRow = Omit<Selectable<AuditEventsTable>, 'seq'> & { seq: string };

/** A row as the fast path reads it: the stored hashed text; the columns only where there is none. */
interface StreamRow {
  seq: string;
  event_id: string;
  hash: string;
  canonical: string | null;
  workflow_id: string | null;
  run_id: string | null;
  step: string | null;
  kind: string | null;
  actor: string | null;
  payload: Record<string, unknown> | null;
  occurred_at: string | null;
  prev_hash: string | null;
}

/**
 * Whether the server holds every row's columns to its hashed text: the CHECK constraint of migration
 * 0022, validated (a constraint added NOT VALID says nothing about the rows before it), and the same
 * definition (read back with only pg_catalog on the search path, so a function or operator from any
 * other schema would be printed qualified and differ).
 */
export async function canonicalConstraintInForce(db: Kysely<Database>): Promise<{ ok: true } | { ok: false; why: string }> {
  return db.transaction().execute(async (tx) => {
    const rel = (await sql<{ oid: number | null }>`SELECT pg_catalog.to_regclass('audit_events')::oid AS oid`.execute(tx)).rows[0]?.oid;
    await sql`SET LOCAL search_path = pg_catalog`.execute(tx);
    const c = (
      await sql<{ convalidated: boolean; def: string }>`
        SELECT convalidated, pg_get_constraintdef(oid) AS def FROM pg_catalog.pg_constraint
        WHERE conrelid = ${rel ?? 0} AND conname = ${CANONICAL_AGREES} AND contype = 'c'`.execute(tx)
    ).rows[0];
    if (!c) return { ok: false, why: `the constraint ${CANONICAL_AGREES} is missing` };
    if (!c.convalidated) return { ok: false, why: `the constraint ${CANONICAL_AGREES} is not validated` };
    if (c.def !== CANONICAL_AGREES_DEF) return { ok: false, why: `the constraint ${CANONICAL_AGREES} is not the one migration 0022 defines` };
    return { ok: true };
  });
}

const PREV_HASH_KEY = '"prevHash":"';

/**
 * The prevHash a canonical event text was hashed with. The outer object's keys are in canonical order
 * and only prevHash, runId, step and workflowId (string values, where a quote is always escaped)
 * follow the payload, so the last unescaped `"prevHash":"` is the outer one.
 */
export function prevHashInText(text: string): string | undefined {
  const at = text.lastIndexOf(PREV_HASH_KEY);
  if (at < 0) return undefined;
  const from = at + PREV_HASH_KEY.length;
  return text.charCodeAt(from + 64) === 34 /* " */ ? text.slice(from, from + 64) : undefined;
}

/**
 * Recomputes the chain from the first row: each row's hash over its canonical content, and its link
 * to the row before. An edited row fails its own hash; a deleted row breaks the next row's link.
 * (Gaps in seq alone prove nothing: a rolled-back insert leaves one. The hash link does.)
 *
 * Rows appended since migration 0022 carry the exact text their hash covers (`canonical`): the
 * verifier hashes that text as streamed and reads its prevHash from it (no JSON work in JavaScript).
 * That the columns say what the text says is the server's CHECK constraint (migration 0022), taken
 * only while it is in force as defined. Older rows, and every row when the constraint is not in
 * force or with `full`, are checked from their columns in JavaScript: the canonical text rebuilt
 * and, where a stored text exists, required to be byte for byte the same. `full` is for an examiner
 * who will not take the server's word for the columns (docs/design.md).
 *
 * Streams in keyset pages (bounded memory), fetching the next page while this one is hashed. With
 * `anchors` (signed checkpoints, verified by the caller), each checkpointed seq's hash and event count
 * must be what was signed: a chain recomputed from genesis is internally consistent, but not that.
 * Checkpoints past the last row are returned as `unreached` (the tail was cut off).
 */
export async function verifyAuditChain(
  db: Kysely<Database>,
  { batch = 10_000, anchors = [], full = false }: { batch?: number; anchors?: readonly AnchorPoint[]; full?: boolean } = {},
): Promise<VerifyResult> {
  if (!full) {
    const constraint = await canonicalConstraintInForce(db);
    if (!constraint.ok) return { ...(await verifyAuditChain(db, { batch, anchors, full: true })), textCheck: 'client', fellBack: constraint.why };
  }
  const points = [...anchors].sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
  const rewritten: CheckpointMismatch[] = [];
  let matched = 0;
  let next = 0;
  let nextSeq = points.length ? BigInt(points[0]!.seq) : -1n;
  const anchored = () =>
    anchors.length
      ? {
          anchored: {
            checked: next,
            matched,
            rewritten,
            unreached: points.slice(next).map(({ seq, headHash, eventCount }) => ({ seq, headHash, eventCount })),
          },
        }
      : {};

  let prevHash = GENESIS_HASH;
  let prevSeq = 0n;
  let rows = 0;
  let lastSeq: string | undefined;
  // Every column, for the rows checked in JavaScript.
  const fetchFull = (after: bigint) =>
    db
      .selectFrom('audit_events')
      .select([
        sql<string>`seq::text`.as('seq'),
        'event_id',
        'workflow_id',
        'run_id',
        'step',
        'kind',
        'actor',
        'payload',
        'occurred_at',
        'prev_hash',
        'hash',
        'canonical',
      ])
      .where('audit_events.seq', '>', String(after))
      // The table's bigint, not the text alias of the same name (which would sort '10' before '9').
      .orderBy('audit_events.seq')
      .limit(batch)
      .execute() as Promise<ChainRow[]>;
  // The text; the columns only where there is none (rows older than migration 0022).
  const fetchFast = async (after: bigint): Promise<StreamRow[]> => {
    const r = await sql<StreamRow>`
      SELECT seq::text AS seq, event_id, hash, canonical,
        CASE WHEN canonical IS NULL THEN workflow_id END AS workflow_id, CASE WHEN canonical IS NULL THEN run_id END AS run_id,
        CASE WHEN canonical IS NULL THEN step END AS step, CASE WHEN canonical IS NULL THEN kind END AS kind,
        CASE WHEN canonical IS NULL THEN actor END AS actor, CASE WHEN canonical IS NULL THEN payload END AS payload,
        CASE WHEN canonical IS NULL THEN occurred_at END AS occurred_at, CASE WHEN canonical IS NULL THEN prev_hash END AS prev_hash
      FROM audit_events WHERE audit_events.seq > ${String(after)} ORDER BY audit_events.seq LIMIT ${batch}`.execute(db);
    return r.rows;
  };
  const fetch = (after: bigint): Promise<Array<StreamRow | ChainRow>> => (full ? fetchFull(after) : fetchFast(after));
  let pending: Promise<Array<StreamRow | ChainRow>> | undefined = fetch(0n);
  while (pending) {
    const page: Array<StreamRow | ChainRow> = await pending;
    // Pipelined: the server reads the next page while this one is hashed.
    pending = page.length === batch ? fetch(BigInt(page[page.length - 1]!.seq)) : undefined;
    for (const r of page) {
      const seq = BigInt(r.seq);
      const bad = (reason: string): VerifyResult => {
        pending?.catch(() => undefined);
        return {
          ok: false,
          rows,
          lastSeq,
          headHash: prevHash,
          textCheck: full ? 'client' : 'server',
          firstBad: { seq: r.seq, eventId: r.event_id, reason },
          ...anchored(),
        };
      };
      const linkBroken = `its prev_hash does not match the hash of the row before it (seq ${prevSeq}): a row before it was deleted, inserted or changed`;
      if (!full && r.canonical != null) {
        // The fast path: what is hashed is the stored text, and the link is read from that text.
        if (prevHashInText(r.canonical) !== prevHash) return bad(linkBroken);
        if (sha256Hex(r.canonical) !== r.hash) return bad('its hashed text does not match its hash: the row was edited');
      } else {
        const c = r as ChainRow;
        if (c.prev_hash !== prevHash) return bad(linkBroken);
        const text = canonicalEvent(c);
        if (sha256Hex(text) !== c.hash) return bad('its content does not match its hash: the row was edited');
        if (c.canonical != null && c.canonical !== text) return bad('its stored hashed text is not the canonical text of its columns: the row was edited');
      }
      prevHash = r.hash;
      prevSeq = seq;
      lastSeq = r.seq;
      rows += 1;
      // A checkpointed seq passed without its row: gone from a chain that still links, so recomputed.
      while (nextSeq >= 0n && nextSeq <= seq) {
        const p = points[next]!;
        if (nextSeq < seq) {
          rewritten.push({ ...p, found: { count: rows - 1 }, reason: `the row at checkpointed seq ${p.seq} is gone, yet the chain links: it was recomputed` });
        } else if (r.hash !== p.headHash || rows !== p.eventCount) {
          rewritten.push({
            ...p,
            found: { hash: r.hash, count: rows },
            reason: `signed head ${p.headHash.slice(0, 16)}… over ${p.eventCount} events; the database has ${r.hash.slice(0, 16)}… over ${rows}: the chain was recomputed`,
          });
        } else matched += 1;
        next += 1;
        nextSeq = next < points.length ? BigInt(points[next]!.seq) : -1n;
      }
    }
  }
  return { ok: true, rows, lastSeq, headHash: prevHash, textCheck: full ? 'client' : 'server', ...anchored() };
}

// The registry check streams in its own module; re-exported here for the callers that import it from verify.ts.
export { type ProjectionMismatch, type ProjectionResult, verifyProjection } from './verify-projection.ts';

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

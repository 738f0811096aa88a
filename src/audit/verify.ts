import type { S3Client } from '@aws-sdk/client-s3';
import { hash } from 'node:crypto';
import { type Kysely, type Selectable, sql } from 'kysely';
import type pg from 'pg';
import { pgPoolOf } from '../db/connect.ts';
import type { AuditEventsTable, Database } from '../db/schema.ts';
import { CopyBinaryReader, CopyFormatError } from './copy-binary.ts';
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
/** What canonicalEvent writes after the outer prevHash's value: these three string members, then `}`. */
const TAIL_KEYS = [',"runId":"', ',"step":"', ',"workflowId":"'] as const;

/**
 * The prevHash a canonical event text was hashed with. The outer object's keys are in canonical order
 * and only runId, step and workflowId (string values, where a quote is always escaped) follow its
 * prevHash, so the last `"prevHash":"` is the outer one — in a text that is canonical. A stored text
 * need only be equal to the columns as JSON (the CHECK constraint), so one with its keys reordered
 * could carry a decoy after the outer key (`"payload":{"prevHash":…}` last). So the bytes after the
 * value found must be exactly what canonicalEvent writes there: `,"runId":"…","step":"…","workflowId":"…"}`,
 * ending the text. That tail holds one brace outside strings, the one closing the object that holds
 * the key; as the text is JSON, that is the outer object, and no later top-level prevHash follows
 * (PostgreSQL's jsonb keeps the last of duplicate keys: the one the constraint held to prev_hash).
 * Anything else is no link (the row is reported as not linking).
 */
export function prevHashInText(text: string): string | undefined {
  const at = text.lastIndexOf(PREV_HASH_KEY);
  if (at < 0) return undefined;
  const from = at + PREV_HASH_KEY.length;
  if (text.charCodeAt(from + 64) !== 34 /* " */) return undefined;
  let p = from + 65;
  for (const key of TAIL_KEYS) {
    if (!text.startsWith(key, p)) return undefined;
    // The string's closing quote: the first quote not escaped (a backslash escapes the character after it).
    p += key.length;
    for (;;) {
      if (p >= text.length) return undefined;
      const c = text.charCodeAt(p++);
      if (c === 34 /* " */) break;
      if (c === 92 /* \ */) p += 1;
    }
  }
  return p === text.length - 1 && text.charCodeAt(p) === 125 /* } */ ? text.slice(from, from + 64) : undefined;
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
 * The rows with a text stream as bytes (`copy`, the default, where the kysely instance is createDb's):
 * one `COPY (SELECT seq, hash, canonical …) TO STDOUT (FORMAT binary)`, each text hashed as the bytes
 * that arrive, its link found in them (prevHashAt), nothing decoded into strings. A row without a
 * text, `full`, or `copy: false` read keyset pages (bounded memory), the next page fetched while
 * this one is hashed; after a full page of rows with texts the COPY takes over again. With
 * `anchors` (signed checkpoints, verified by the caller), each checkpointed seq's hash and event count
 * must be what was signed: a chain recomputed from genesis is internally consistent, but not that.
 * Checkpoints past the last row are returned as `unreached` (the tail was cut off).
 */
export async function verifyAuditChain(
  db: Kysely<Database>,
  { batch = 10_000, anchors = [], full = false, copy = true }: { batch?: number; anchors?: readonly AnchorPoint[]; full?: boolean; copy?: boolean } = {},
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
  const textCheck = full ? 'client' : 'server';
  const lastSeq = () => (rows ? String(prevSeq) : undefined);
  const failed = (seq: string, eventId: string, reason: string): VerifyResult => ({
    ok: false,
    rows,
    lastSeq: lastSeq(),
    headHash: prevHash,
    textCheck,
    firstBad: { seq, eventId, reason },
    ...anchored(),
  });
  const linkBroken = () => `its prev_hash does not match the hash of the row before it (seq ${prevSeq}): a row before it was deleted, inserted or changed`;
  /** After row `seq` (hash `hash`) verified: the checkpoints it reaches or passes. */
  const passAnchors = (seq: bigint, hash: string) => {
    while (nextSeq >= 0n && nextSeq <= seq) {
      const p = points[next]!;
      // A checkpointed seq passed without its row: gone from a chain that still links, so recomputed.
      if (nextSeq < seq) {
        rewritten.push({ ...p, found: { count: rows - 1 }, reason: `the row at checkpointed seq ${p.seq} is gone, yet the chain links: it was recomputed` });
      } else if (hash !== p.headHash || rows !== p.eventCount) {
        rewritten.push({
          ...p,
          found: { hash, count: rows },
          reason: `signed head ${p.headHash.slice(0, 16)}… over ${p.eventCount} events; the database has ${hash.slice(0, 16)}… over ${rows}: the chain was recomputed`,
        });
      } else matched += 1;
      next += 1;
      nextSeq = next < points.length ? BigInt(points[next]!.seq) : -1n;
    }
  };

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

  // The fast path streams the rows as bytes (COPY binary) where the pool is at hand; the paged
  // queries read the rows without a text (and every row with `full`).
  const pool = full || !copy ? undefined : pgPoolOf(db);
  let copying = pool !== undefined;
  for (;;) {
    if (copying) {
      const outcome = await copyPass(pool!, prevSeq, {
        prevHash,
        onRow: (seq, hash) => {
          prevSeq = seq;
          rows += 1;
          if (nextSeq >= 0n && nextSeq <= seq) passAnchors(seq, hash());
        },
      });
      prevHash = outcome.prevHash;
      if (outcome.stop === 'end') break;
      if (outcome.stop === 'bad') {
        const id = await sql<{ event_id: string }>`SELECT event_id FROM audit_events WHERE seq = ${String(outcome.seq)}`.execute(db);
        const reason = outcome.reason === 'link' ? linkBroken() : 'its hashed text does not match its hash: the row was edited';
        return failed(String(outcome.seq), id.rows[0]?.event_id ?? '', reason);
      }
      // A row without its text: the paged queries take over from it, until a page has none.
      copying = false;
    }
    let pending: Promise<Array<StreamRow | ChainRow>> | undefined = fetch(prevSeq);
    while (pending) {
      const page: Array<StreamRow | ChainRow> = await pending;
      const more = page.length === batch;
      copying = more && pool !== undefined && page.every((r) => r.canonical != null);
      // Pipelined: the server reads the next page while this one is hashed.
      pending = more && !copying ? fetch(BigInt(page[page.length - 1]!.seq)) : undefined;
      for (const r of page) {
        const bad = (reason: string): VerifyResult => {
          pending?.catch(() => undefined);
          return failed(r.seq, r.event_id, reason);
        };
        if (!full && r.canonical != null) {
          // The fast path: what is hashed is the stored text, and the link is read from that text
          // (once it is known to be the text hashed: a text edited is named as such, not as a broken link).
          if (sha256Hex(r.canonical) !== r.hash) return bad('its hashed text does not match its hash: the row was edited');
          if (prevHashInText(r.canonical) !== prevHash) return bad(linkBroken());
        } else {
          const c = r as ChainRow;
          if (c.prev_hash !== prevHash) return bad(linkBroken());
          const text = canonicalEvent(c);
          if (sha256Hex(text) !== c.hash) return bad('its content does not match its hash: the row was edited');
          if (c.canonical != null && c.canonical !== text) return bad('its stored hashed text is not the canonical text of its columns: the row was edited');
        }
        const seq = BigInt(r.seq);
        prevHash = r.hash;
        prevSeq = seq;
        rows += 1;
        passAnchors(seq, r.hash);
      }
    }
    if (!copying) break;
  }
  return { ok: true, rows, lastSeq: lastSeq(), headHash: prevHash, textCheck, ...anchored() };
}

const PREV_HASH_KEY_BYTES = Buffer.from(PREV_HASH_KEY, 'latin1');
const TAIL_KEY_BYTES = TAIL_KEYS.map((k) => Buffer.from(k, 'latin1'));
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Whether `buf[at, at + 64)` holds the 64 characters of `hex` (ASCII: one byte each). */
function bytesAre(hex: string, buf: Buffer, at: number): boolean {
  for (let i = 0; i < 64; i++) if (buf[at + i] !== hex.charCodeAt(i)) return false;
  return true;
}

/** Whether `buf` holds `key` at `at` (byte by byte: a native compare costs more than these few bytes). */
function bytesAt(buf: Buffer, at: number, key: Buffer, end: number): boolean {
  if (end - at < key.length) return false;
  for (let i = 0; i < key.length; i++) if (buf[at + i] !== key[i]) return false;
  return true;
}

/**
 * The byte form of prevHashInText, with the same rules: the offset in `buf` of the 64 bytes after
 * the last `"prevHash":"` in the text at `[from, end)`, when a quote and then exactly canonicalEvent's
 * tail follow them; -1 otherwise. Every byte searched for is ASCII, and no byte of a multi-byte UTF-8
 * character is, so this finds what the string form finds.
 */
export function prevHashAt(buf: Buffer, from: number, end: number): number {
  if (end - from < PREV_HASH_KEY_BYTES.length) return -1;
  const k = buf.lastIndexOf(PREV_HASH_KEY_BYTES, end - PREV_HASH_KEY_BYTES.length);
  if (k < from) return -1;
  const at = k + PREV_HASH_KEY_BYTES.length;
  if (at + 64 >= end || buf[at + 64] !== QUOTE) return -1;
  let p = at + 65;
  for (const key of TAIL_KEY_BYTES) {
    if (!bytesAt(buf, p, key, end)) return -1;
    // The string's closing quote: the first quote not escaped (a backslash escapes the byte after it).
    p += key.length;
    for (;;) {
      if (p >= end) return -1;
      const b = buf[p++];
      if (b === QUOTE) break;
      if (b === BACKSLASH) p += 1;
    }
  }
  return p === end - 1 && buf[p] === 0x7d /* } */ ? at : -1;
}

type CopyOutcome = { prevHash: string } & ({ stop: 'end' } | { stop: 'untexted' } | { stop: 'bad'; seq: bigint; reason: 'link' | 'hash' });

/**
 * One COPY of `seq, hash, canonical` after `after`, in seq order, checked as it streams: each text
 * hashed as the bytes it arrives as, its link read from those bytes. Stops at the end (the trailer
 * read: a stream cut short throws), at a row without its text (the caller's paged queries take it),
 * or at the first row that does not verify. `onRow` is told of each row that does.
 */
async function copyPass(
  pool: pg.Pool,
  after: bigint,
  { prevHash, onRow }: { prevHash: string; onRow: (seq: bigint, hash: () => string) => void },
): Promise<CopyOutcome> {
  // Loaded here, not with the module: `trace` shares this module's chunk and never copies.
  const { to: copyTo } = await import('pg-copy-streams');
  const prev = Buffer.from(prevHash, 'latin1');
  if (prev.length !== 64) throw new Error('the chain head is not 64 characters');
  let stop: CopyOutcome | undefined;
  const reader = new CopyBinaryReader(3, (buf, at) => {
    if (at[1] !== 8) throw new CopyFormatError('seq is not an int8');
    const seq = buf.readBigInt64BE(at[0]!);
    const h = at[2]!;
    const c = at[4]!;
    const cLen = at[5]!;
    if (cLen < 0) {
      stop = { stop: 'untexted', prevHash: prev.toString('latin1') };
      return false;
    }
    // The hash first, as the paged path does. The one-shot digest as hex: node's crypto.hash with
    // 'buffer' output, or createHash, costs up to twice as much per call (docs/benchmarks.md).
    if (at[3] !== 64 || !bytesAre(hash('sha256', buf.subarray(c, c + cLen), 'hex'), buf, h)) {
      stop = { stop: 'bad', seq, reason: 'hash', prevHash: prev.toString('latin1') };
      return false;
    }
    const link = prevHashAt(buf, c, c + cLen);
    if (link < 0 || !bytesAt(buf, link, prev, link + 64)) {
      stop = { stop: 'bad', seq, reason: 'link', prevHash: prev.toString('latin1') };
      return false;
    }
    for (let i = 0; i < 64; i++) prev[i] = buf[h + i]!;
    onRow(seq, () => prev.toString('latin1'));
    return true;
  });
  const client = await pool.connect();
  let reusable = false;
  try {
    // `after` is a bigint: its decimal form is the whole literal (COPY takes no parameters).
    const stream = client.query(
      copyTo(`COPY (SELECT seq, hash, canonical FROM audit_events WHERE seq > ${after.toString()} ORDER BY seq) TO STDOUT (FORMAT binary)`),
    );
    try {
      for await (const chunk of stream) if (!reader.push(chunk as Buffer)) break;
    } finally {
      // Stopped early, the connection is still mid-COPY: it is closed below, and what it says then is not news.
      stream.on('error', () => undefined);
    }
    if (stop) return stop;
    reader.end();
    reusable = true;
    return { stop: 'end', prevHash: prev.toString('latin1') };
  } finally {
    client.release(reusable ? undefined : true);
  }
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

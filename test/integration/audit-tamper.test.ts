import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAuditEvent } from '../../src/audit/append.ts';
import { canonicalJson, sha256Hex } from '../../src/audit/canonical.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { createDb, migrateToLatest } from '../../src/db/connect.ts';
import type { Database } from '../../src/db/schema.ts';
import { privateDatabase } from './private-database.ts';
import { factoryCli } from './harness.ts';

let db: Kysely<Database>;
let dropDatabase: () => Promise<void>;
let cliEnv: Record<string, string>;
const seqs: string[] = [];

beforeAll(async () => {
  const priv = await privateDatabase('factory_tamper');
  dropDatabase = priv.drop;
  cliEnv = { DATABASE_URL: priv.url };
  db = createDb(priv.url, { poolSize: 1 });
  await migrateToLatest(db);
  for (let i = 1; i <= 5; i++) {
    const e = await appendAuditEvent(db, {
      workflowId: 'wf-tamper',
      runId: 'run-1',
      step: `step.${i}`,
      kind: 'test.event',
      actor: 'dana@hospital.example',
      payload: { i, approved: i % 2 === 0, digest: `sha256:${'c'.repeat(64)}` },
      occurredAt: new Date(Date.UTC(2026, 10, 27, 0, 0, i)).toISOString(),
    });
    seqs.push(e.seq);
  }
});
afterAll(async () => {
  await db?.destroy();
  await dropDatabase?.();
});

/** As a superuser, around the append-only triggers: what an insider with database access could do. */
async function asSuperuserAroundTriggers(statement: ReturnType<typeof sql>, table = 'audit_events') {
  await db.transaction().execute(async (tx) => {
    await sql`ALTER TABLE ${sql.id(table)} DISABLE TRIGGER USER`.execute(tx);
    await statement.execute(tx);
    await sql`ALTER TABLE ${sql.id(table)} ENABLE TRIGGER USER`.execute(tx);
  });
}

/** Migration 0022's constraint, as a test puts it back after dropping it. */
const agrees = `CHECK (canonical IS NULL OR canonical::pg_catalog.jsonb OPERATOR(pg_catalog.=) pg_catalog.jsonb_build_object('actor', actor, 'eventId', event_id, 'kind', kind, 'occurredAt', occurred_at, 'payload', payload, 'prevHash', prev_hash, 'runId', run_id, 'step', step, 'workflowId', workflow_id))`;

interface VerifyReport {
  ok: boolean;
  chain: { ok: boolean; rows: number; firstBad?: { seq: string; reason: string } };
  projection: { ok: boolean; checked: number; mismatches: Array<{ table: string; id: string; reason: string }> };
}

async function verifyAll() {
  const res = await factoryCli(['audit', 'verify', '--json'], cliEnv);
  return { code: res.code, full: JSON.parse(res.stdout) as VerifyReport };
}

async function verify() {
  const { code, full } = await verifyAll();
  return { code, report: full.chain };
}

describe('audit trail: append-only, hash-chained, tamper-evident', () => {
  it('verifies an intact chain, and appending the same event again adds nothing', async () => {
    const again = await appendAuditEvent(db, {
      workflowId: 'wf-tamper',
      runId: 'run-1',
      step: 'step.1',
      kind: 'test.event',
      actor: 'x',
      payload: {},
      occurredAt: 'later',
    });
    expect(again).toMatchObject({ duplicate: true, seq: seqs[0] });
    expect(await verify()).toEqual({ code: 0, report: expect.objectContaining({ ok: true, rows: 5 }) });
  });

  it('refuses UPDATE, DELETE and TRUNCATE through the triggers, and the writer role may not change rows at all', async () => {
    await expect(sql`UPDATE audit_events SET actor = 'mallory'`.execute(db)).rejects.toThrow(/append-only: UPDATE refused/);
    await expect(sql`DELETE FROM audit_events`.execute(db)).rejects.toThrow(/append-only: DELETE refused/);
    await expect(sql`TRUNCATE audit_events`.execute(db)).rejects.toThrow(/append-only: TRUNCATE refused/);
    await expect(
      db.transaction().execute(async (tx) => {
        await sql`SET LOCAL ROLE factory_audit_writer`.execute(tx);
        await sql`UPDATE audit_events SET actor = 'mallory'`.execute(tx);
      }),
    ).rejects.toThrow(/permission denied/);
  });

  it('detects a row edited around the triggers, and names it', async () => {
    // The server holds the columns to the stored hashed text (migration 0022): the insider drops that too.
    await asSuperuserAroundTriggers(sql`ALTER TABLE audit_events DROP CONSTRAINT audit_events_canonical_agrees`);
    await asSuperuserAroundTriggers(sql`UPDATE audit_events SET payload = jsonb_set(payload, '{approved}', 'true') WHERE seq = ${seqs[2]}`);
    const { code, report } = await verify();
    expect(code).toBe(7);
    expect(report.firstBad).toMatchObject({ seq: seqs[2], reason: expect.stringMatching(/edited/) });
    const human = await factoryCli(['audit', 'verify'], cliEnv);
    expect(human.stdout).toContain(`AUDIT CHAIN BROKEN at seq ${seqs[2]} (wf-tamper/run-1/step.3)`);
    // Put it back: the chain verifies again.
    await asSuperuserAroundTriggers(sql`UPDATE audit_events SET payload = jsonb_set(payload, '{approved}', 'false') WHERE seq = ${seqs[2]}`);
    await sql.raw(`ALTER TABLE audit_events ADD CONSTRAINT audit_events_canonical_agrees ${agrees}`).execute(db);
    expect((await verify()).code).toBe(0);
  });

  const digest = `sha256:${'d'.repeat(64)}`;
  const decisionId = 'wf-registry/run-1/decision-1';

  it('guards the registry: facts are append-only, a model version changes only its state, along the lifecycle', async () => {
    await sql`INSERT INTO dataset_versions (manifest_digest, name, raw_uri, raw_sha256, certified_uri, manifest_uri, rows_total, rows_accepted, rows_excluded, exclusions, workflow_id)
      VALUES (${digest}, 'wdbc', 's3://q/raw', ${digest}, 's3://c/data', 's3://e/manifest', 2, 2, 0, '[]', 'wf-registry')`.execute(db);
    const mv = await sql<{
      id: number;
    }>`INSERT INTO model_versions (model_name, version, state, risk_tier, artifact_digest, artifact_uri, dataset_manifest_digest, commit_sha, image_digest, requester, developer, metrics, environment, policy_digest, workflow_id)
      VALUES ('bc', 1, 'registered', 'high', ${digest}, 's3://a/model.onnx', ${digest}, 'abc1234', ${digest}, 'ci@hospital.example', 'omar@hospital.example', '{}', '{}', ${digest}, 'wf-registry') RETURNING id`.execute(
      db,
    );
    const id = mv.rows[0]!.id;
    const at = '2026-11-27T00:00:10.000Z';
    await appendAuditEvent(db, {
      workflowId: 'wf-registry',
      runId: 'run-1',
      step: 'model.registered',
      kind: 'model.registered',
      actor: 'factory',
      payload: { modelVersionId: id, version: 1, artifactDigest: digest },
      occurredAt: at,
    });
    await appendAuditEvent(db, {
      workflowId: 'wf-registry',
      runId: 'run-1',
      step: 'decision.1',
      kind: 'approval.approved',
      actor: 'dana@hospital.example',
      payload: { approver: 'dana@hospital.example', role: 'compliance', meaning: 'approval', modelDigest: digest },
      occurredAt: at,
    });
    await sql`INSERT INTO approvals (id, model_version_id, workflow_id, decision, approver, role, meaning, model_digest, accepted, policy_digest, decided_at)
      VALUES (${decisionId}, ${id}, 'wf-registry', 'approve', 'dana@hospital.example', 'compliance', 'approval', ${digest}, true, ${digest}, ${at})`.execute(
      db,
    );

    await expect(sql`UPDATE approvals SET approver = 'mallory@evil.example'`.execute(db)).rejects.toThrow(/approvals is append-only: UPDATE refused/);
    await expect(sql`DELETE FROM dataset_versions`.execute(db)).rejects.toThrow(/dataset_versions is append-only: DELETE refused/);
    await expect(sql`UPDATE model_versions SET commit_sha = 'fffffff'`.execute(db)).rejects.toThrow(/only the state of a version may change/);
    await expect(sql`UPDATE model_versions SET state = 'deployed'`.execute(db)).rejects.toThrow(/registered → deployed is not a lifecycle transition/);
    await sql`UPDATE model_versions SET state = 'validated'`.execute(db);

    const { code, full } = await verifyAll();
    expect(code).toBe(0);
    expect(full.projection).toMatchObject({ ok: true, checked: 2 });
  });

  it('detects a registry row changed around its triggers (what trace would show), and names it', async () => {
    await asSuperuserAroundTriggers(sql`UPDATE approvals SET approver = 'mallory@evil.example' WHERE id = ${decisionId}`, 'approvals');
    const { code, full } = await verifyAll();
    expect(code).toBe(7);
    expect(full.chain.ok).toBe(true);
    expect(full.projection.mismatches).toEqual([
      { table: 'approvals', id: decisionId, reason: 'approver is "mallory@evil.example", the audit trail says "dana@hospital.example"' },
    ]);
    await asSuperuserAroundTriggers(sql`UPDATE approvals SET approver = 'dana@hospital.example' WHERE id = ${decisionId}`, 'approvals');
    expect((await verifyAll()).code).toBe(0);
  });

  it('catches the stored hashed text (migration 0022) changed, the columns changed, and both changed alike, with or without a new hash', async () => {
    const at = seqs[1]!; // payload {i: 2, approved: true, …}
    const original = (await sql<{ canonical: string; hash: string }>`SELECT canonical, hash FROM audit_events WHERE seq = ${at}`.execute(db)).rows[0]!;
    expect(original.canonical).toContain('"approved":true');
    const dropConstraint = sql`ALTER TABLE audit_events DROP CONSTRAINT audit_events_canonical_agrees`;
    const restore = async () => {
      await asSuperuserAroundTriggers(
        sql`UPDATE audit_events SET canonical = ${original.canonical}, hash = ${original.hash}, payload = jsonb_set(payload, '{approved}', 'true') WHERE seq = ${at}`,
      );
      await sql`ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS audit_events_canonical_agrees`.execute(db);
      await sql.raw(`ALTER TABLE audit_events ADD CONSTRAINT audit_events_canonical_agrees ${agrees}`).execute(db);
    };
    const verifyWith = async (...flags: string[]) => {
      const res = await factoryCli(['audit', 'verify', '--json', ...flags], cliEnv);
      return { code: res.code, report: (JSON.parse(res.stdout) as { chain: VerifyReport['chain'] & { textCheck?: string; fellBack?: string } }).chain };
    };
    const expectBroken = async (seq: string, fast: RegExp, full: RegExp) => {
      const a = await verifyWith();
      expect(a.code).toBe(7);
      expect(a.report.firstBad).toMatchObject({ seq, reason: expect.stringMatching(fast) });
      const b = await verifyWith('--full');
      expect(b.code).toBe(7);
      expect(b.report.firstBad).toMatchObject({ seq, reason: expect.stringMatching(full) });
      return a.report;
    };
    expect(await verifyWith()).toMatchObject({ code: 0, report: { ok: true, textCheck: 'server' } });

    // The server refuses columns that disagree with the text, and a text that is not JSON, even around the triggers.
    await expect(asSuperuserAroundTriggers(sql`UPDATE audit_events SET payload = jsonb_set(payload, '{approved}', 'false') WHERE seq = ${at}`)).rejects.toThrow(
      /audit_events_canonical_agrees/,
    );
    await expect(
      asSuperuserAroundTriggers(sql`UPDATE audit_events SET canonical = replace(canonical, '"approved":true', '"approved":false') WHERE seq = ${at}`),
    ).rejects.toThrow(/audit_events_canonical_agrees/);
    await expect(asSuperuserAroundTriggers(sql`UPDATE audit_events SET canonical = 'not json' WHERE seq = ${at}`)).rejects.toThrow(/json/i);

    // The text changed and still equal as JSON (a space): it no longer hashes to the row's hash.
    await asSuperuserAroundTriggers(sql`UPDATE audit_events SET canonical = canonical || ' ' WHERE seq = ${at}`);
    await expectBroken(at, /hashed text does not match its hash/, /stored hashed text is not the canonical text of its columns/);
    await restore();

    // Both alike, the hash left: the text no longer hashes to it.
    await asSuperuserAroundTriggers(
      sql`UPDATE audit_events SET payload = jsonb_set(payload, '{approved}', 'false'), canonical = replace(canonical, '"approved":true', '"approved":false') WHERE seq = ${at}`,
    );
    await expectBroken(at, /hashed text does not match its hash/, /content does not match its hash/);

    // Both alike and hashed again: the row holds, the next one no longer links to it.
    await asSuperuserAroundTriggers(sql`UPDATE audit_events SET hash = encode(sha256(convert_to(canonical, 'UTF8')), 'hex') WHERE seq = ${at}`);
    await expectBroken(seqs[2]!, /prev_hash does not match/, /prev_hash does not match/);
    await restore();

    // The constraint dropped, then the columns alone or the text alone changed: verify no longer takes
    // the server's word, rebuilds every text itself, and names the row.
    await asSuperuserAroundTriggers(dropConstraint);
    await asSuperuserAroundTriggers(sql`UPDATE audit_events SET payload = jsonb_set(payload, '{approved}', 'false') WHERE seq = ${at}`);
    const dropped = await expectBroken(at, /content does not match its hash/, /content does not match its hash/);
    expect(dropped).toMatchObject({ textCheck: 'client', fellBack: expect.stringMatching(/missing/) });
    await restore();
    await asSuperuserAroundTriggers(dropConstraint);
    await asSuperuserAroundTriggers(sql`UPDATE audit_events SET canonical = replace(canonical, '"approved":true', '"approved":false') WHERE seq = ${at}`);
    await expectBroken(at, /stored hashed text is not the canonical text of its columns/, /stored hashed text is not the canonical text of its columns/);
    // Put back NOT VALID over the disagreeing row (a validated one cannot be added): not taken either.
    await sql.raw(`ALTER TABLE audit_events ADD CONSTRAINT audit_events_canonical_agrees ${agrees} NOT VALID`).execute(db);
    expect((await expectBroken(at, /stored hashed text is not/, /stored hashed text is not/)).fellBack).toMatch(/not validated/);
    await restore();
    // A weaker constraint of the same name is not taken for it.
    await asSuperuserAroundTriggers(dropConstraint);
    await sql`ALTER TABLE audit_events ADD CONSTRAINT audit_events_canonical_agrees CHECK (canonical IS NULL OR length(canonical) > 0)`.execute(db);
    expect(await verifyWith()).toMatchObject({ code: 0, report: { ok: true, textCheck: 'client', fellBack: expect.stringMatching(/not the one/) } });
    await restore();

    // No text at all (a row appended before migration 0022): checked from its columns, as before.
    await asSuperuserAroundTriggers(sql`UPDATE audit_events SET canonical = NULL WHERE seq = ${at}`);
    expect(await verifyWith()).toMatchObject({ code: 0, report: { ok: true, textCheck: 'server' } });
    // The COPY stops at the row without a text, pages read on from it, and after a full page with
    // every text the COPY takes over again (pages of 1 and 2 force each switch), on one connection.
    const paged = await verifyAuditChain(db, { copy: false });
    for (const batch of [1, 2, 3]) expect(await verifyAuditChain(db, { batch })).toEqual(paged);
    expect(await verifyWith('--full')).toMatchObject({ code: 0, report: { ok: true, textCheck: 'client' } });
    await asSuperuserAroundTriggers(sql`UPDATE audit_events SET payload = jsonb_set(payload, '{approved}', 'false') WHERE seq = ${at}`);
    await expectBroken(at, /content does not match its hash/, /content does not match its hash/);
    await restore();
    expect(await verifyWith()).toMatchObject({ code: 0, report: { ok: true, textCheck: 'server' } });
  });

  it('reads the link of the outer object only: a reordered text with a decoy prevHash in its payload, last, is caught', async () => {
    // A text equal as JSON to its columns (so the constraint admits it) but not canonical: the payload
    // moved after the outer prevHash, carrying the right link as a decoy while the outer prevHash (and
    // the prev_hash column, which trace reads) points nowhere. Hashed again: the head row needs no
    // later row to agree. Reading the last `"prevHash":"` alone would verify it.
    const rows = await sql<{ seq: string; canonical: string; hash: string; prev_hash: string; payload: string }>`
      SELECT seq::text AS seq, canonical, hash, prev_hash, payload::text AS payload FROM audit_events ORDER BY seq DESC LIMIT 2`.execute(db);
    const [head, before] = rows.rows as [(typeof rows.rows)[0], (typeof rows.rows)[0]];
    expect(head.prev_hash).toBe(before.hash);
    const fake = 'f'.repeat(64);
    const o = JSON.parse(head.canonical) as Record<string, string> & { payload: Record<string, unknown> };
    const payload = { ...o.payload, prevHash: before.hash };
    const q = JSON.stringify;
    const text = `{"actor":${q(o.actor)},"eventId":${q(o.eventId)},"kind":${q(o.kind)},"occurredAt":${q(o.occurredAt)},"prevHash":${q(fake)},"runId":${q(o.runId)},"step":${q(o.step)},"workflowId":${q(o.workflowId)},"payload":${canonicalJson(payload)}}`;
    expect(text.lastIndexOf(`"prevHash":"${before.hash}"`)).toBeGreaterThan(text.indexOf(`"prevHash":"${fake}"`));
    await asSuperuserAroundTriggers(
      sql`UPDATE audit_events SET canonical = ${text}, payload = ${JSON.stringify(payload)}::jsonb, prev_hash = ${fake}, hash = ${sha256Hex(text)} WHERE seq = ${head.seq}`,
    );
    for (const flags of [[], ['--full']]) {
      const res = await factoryCli(['audit', 'verify', '--json', ...flags], cliEnv);
      expect(res.code).toBe(7);
      expect((JSON.parse(res.stdout) as VerifyReport).chain.firstBad).toMatchObject({
        seq: head.seq,
        reason: expect.stringMatching(/prev_hash does not match/),
      });
    }
    await asSuperuserAroundTriggers(
      sql`UPDATE audit_events SET canonical = ${head.canonical}, payload = ${head.payload}::jsonb, prev_hash = ${head.prev_hash}, hash = ${head.hash} WHERE seq = ${head.seq}`,
    );
    expect((await verify()).code).toBe(0);
  });

  it('detects a deleted row: the next row no longer links to its predecessor', async () => {
    await asSuperuserAroundTriggers(sql`DELETE FROM audit_events WHERE seq = ${seqs[3]}`);
    const { code, report } = await verify();
    expect(code).toBe(7);
    expect(report.firstBad).toMatchObject({ seq: seqs[4], reason: expect.stringMatching(/prev_hash does not match/) });
  });
});

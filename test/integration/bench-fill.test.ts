import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit } from '../../activities/audit.ts';
import { activityDeps, closeActivityDeps } from '../../activities/deps.ts';
import { recordDecision, recordDecisions, recordDeployment, recordLifecycleEnd, registerModel, setModelState } from '../../activities/registry.ts';
import { type Op, bulkFill, bulkWrite, instantiate, loadMix, withVersion } from '../../bench/fill-lib.ts';
import { verifyAuditChain, verifyProjection } from '../../src/audit/verify.ts';
import { createDb, migrateToLatest } from '../../src/db/connect.ts';
import type { Database } from '../../src/db/schema.ts';
import { privateDatabase } from './private-database.ts';

/**
 * The bench's bulk fill (bench/fill-lib.ts) must write what a real lifecycle writes: the same
 * lifecycles are replayed once through the real activities (registerModel, recordDecision(s),
 * appendAudit, …) into one database and once through the bulk path into another, and every row of
 * every registry table and of the audit chain (hashes included) must be identical.
 */
describe('bench fill: the bulk path writes the rows and hashes the activities write', () => {
  const savedUrl = process.env.DATABASE_URL;
  const dbs: Array<{ db: Kysely<Database>; drop: () => Promise<void> }> = [];
  let real: Kysely<Database>;
  let bulk: Kysely<Database>;

  beforeAll(async () => {
    for (const prefix of ['factory_bench_real', 'factory_bench_bulk']) {
      const p = await privateDatabase(prefix);
      const db = createDb(p.url, { poolSize: 2 });
      await migrateToLatest(db);
      dbs.push({ db, drop: p.drop });
      if (prefix === 'factory_bench_real') process.env.DATABASE_URL = p.url; // activityDeps() reads it on first use
    }
    [real, bulk] = [dbs[0]!.db, dbs[1]!.db];
  });

  afterAll(async () => {
    await closeActivityDeps();
    process.env.DATABASE_URL = savedUrl;
    for (const d of dbs) {
      await d.db.destroy();
      await d.drop();
    }
  });

  /** One lifecycle's writes through the real activities, in its order (the dataset row as certifyDataset inserts it). */
  async function throughActivities(ops: Op[]): Promise<void> {
    let mv: { id: number; version: number } | undefined;
    const fix = <T>(v: T): T => (mv ? (withVersion(v, mv.id, mv.version) as T) : v);
    for (const o of ops) {
      switch (o.op) {
        case 'audit':
          await appendAudit(fix(o.event));
          break;
        case 'dataset':
          await activityDeps()
            .db.insertInto('dataset_versions')
            .values({ ...o.row, exclusions: JSON.stringify(o.row.exclusions) })
            .onConflict((oc) => oc.column('manifest_digest').doNothing())
            .execute();
          break;
        case 'register':
          mv = await registerModel(o.input);
          break;
        case 'state':
          await setModelState({ id: mv!.id, to: o.to });
          break;
        case 'decisions':
          if (o.batch.every((d) => d.event)) await recordDecisions(fix(o.batch.map((d) => ({ record: d.record, event: d.event! }))));
          else for (const d of o.batch) await recordDecision(fix(d.record));
          break;
        case 'deployment':
          await recordDeployment(fix(o.input));
          break;
        case 'end':
          await recordLifecycleEnd(fix({ ...o.input, ...(mv ? { modelVersionId: mv.id } : {}) }));
          break;
      }
    }
  }

  const dump = async (db: Kysely<Database>) => ({
    datasets: (await sql<Record<string, unknown>>`SELECT * FROM dataset_versions ORDER BY manifest_digest`.execute(db)).rows.map(
      ({ created_at: _, ...r }) => r,
    ),
    versions: (await sql<Record<string, unknown>>`SELECT * FROM model_versions ORDER BY id`.execute(db)).rows.map(
      ({ created_at: _c, updated_at: _u, ...r }) => r,
    ),
    approvals: (await sql`SELECT * FROM approvals ORDER BY id`.execute(db)).rows,
    deployments: (await sql`SELECT * FROM deployments ORDER BY id`.execute(db)).rows,
    audit: (await sql`SELECT * FROM audit_events ORDER BY seq`.execute(db)).rows,
  });

  it('every lifecycle of the mix (refusal storms included, versions of one model numbered in turn) gives identical rows', async () => {
    const mix = loadMix();
    const lifecycles = mix.map(({ template }, i) =>
      instantiate(template, {
        index: i,
        seed: 'identity',
        modelName: `identity-m${i % 3}`,
        dataset: Math.floor(i / 2),
        shiftMs: i * 60_000,
        extraRefusals: i % 3 === 0 ? 25 : 0,
      }),
    );
    for (const ops of lifecycles) await throughActivities(ops);
    const written = await bulkWrite(bulk, lifecycles);

    const [a, b] = [await dump(real), await dump(bulk)];
    expect(b.audit.length).toBe(written.events);
    expect(a.audit.length).toBeGreaterThan(150); // nine lifecycles and three storms of 25
    expect(a.versions.length).toBe(mix.length);
    expect(a.approvals.length).toBeGreaterThan(75);
    expect(a.deployments.length).toBeGreaterThan(2);
    expect(b).toEqual(a);
    expect((await verifyAuditChain(bulk)).ok).toBe(true);
    expect(await verifyProjection(bulk)).toMatchObject({ ok: true, mismatches: [] });
  });

  it('a fill continues a chain the activities started: it verifies, the registry agrees with it, and it reaches its targets', async () => {
    const before = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM audit_events`.execute(real)).rows[0]!.n);
    const res = await bulkFill(real, { events: 3_000, versions: 40, seed: 'cont', batch: 16 });
    expect(res.versions).toBe(40);
    expect(res.events).toBeGreaterThan(2_700);
    expect(res.events).toBeLessThan(3_300);
    expect(res.stormLifecycles).toBeGreaterThan(0);
    const chain = await verifyAuditChain(real);
    expect(chain).toMatchObject({ ok: true, rows: before + res.events });
    expect(await verifyProjection(real)).toMatchObject({ ok: true, mismatches: [] });
    // A real append after the fill links to the fill's head.
    await appendAudit({
      workflowId: 'after-fill',
      runId: 'r1',
      step: 'probe',
      kind: 'probe.recorded',
      actor: 'test',
      payload: {},
      occurredAt: new Date().toISOString(),
    });
    expect((await verifyAuditChain(real)).ok).toBe(true);
  });

  it('the registry check pages through thousands of rows in small batches and finds every row changed around the triggers', async () => {
    const all = await verifyProjection(real);
    expect(all).toMatchObject({ ok: true, mismatchCount: 0 });
    // Page sizes that split refusal storms and every table mid-way give the same count.
    expect(await verifyProjection(real, { batch: 7 })).toEqual(all);
    const ids = (await sql<{ id: string; accepted: boolean }>`SELECT id, accepted FROM approvals ORDER BY md5(id) LIMIT 40`.execute(real)).rows;
    const refused = ids.find((r) => !r.accepted)!;
    const accepted = ids.find((r) => r.accepted)!;
    const deployment = (await sql<{ id: string }>`SELECT id FROM deployments ORDER BY id DESC LIMIT 1`.execute(real)).rows[0]!;
    await sql`SET session_replication_role = replica`.execute(real);
    try {
      await sql`UPDATE approvals SET refusal_reason = NULL WHERE id = ${refused.id}`.execute(real);
      await sql`UPDATE approvals SET accepted = false WHERE id = ${accepted.id}`.execute(real);
      await sql`UPDATE deployments SET triton_version = triton_version + 1 WHERE id = ${deployment.id}`.execute(real);
      const bad = await verifyProjection(real, { batch: 5 });
      expect(bad.ok).toBe(false);
      expect(bad.mismatchCount).toBe(3);
      expect(bad.mismatches.map((m) => [m.table, m.id])).toEqual(
        expect.arrayContaining([
          ['approvals', refused.id],
          ['approvals', accepted.id],
          ['deployments', deployment.id],
        ]),
      );
      expect(bad.mismatches.find((m) => m.id === refused.id)!.reason).toMatch(/^refusal_reason is null, the audit trail says "/);
      expect(bad.mismatches.find((m) => m.id === accepted.id)!.reason).toMatch(/accepted is false, the audit trail says approval.approved/);
    } finally {
      await sql`RESET session_replication_role`.execute(real);
    }
  });
});

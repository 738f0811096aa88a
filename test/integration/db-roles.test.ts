import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAuditEvent } from '../../src/audit/append.ts';
import { verifyAuditChain } from '../../src/audit/verify.ts';
import { loadEnv } from '../../src/config/env.ts';
import { createDb, databaseUrlFor, ensureDatabase, migrateToLatest } from '../../src/db/connect.ts';
import { MODEL_STATE_TRANSITIONS, type ModelState } from '../../src/domain/model-state.ts';
import { env } from '../helpers.ts';

/**
 * Least privilege on a real PostgreSQL 15 (the server in DATABASE_URL, else the one on 127.0.0.1:5432):
 * a private database, migrated by its owner; the workers' and the CLI's roles tried as an insider would.
 */
const server = env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const name = `factory_roles_${randomBytes(4).toString('hex')}`;
const ownerUrl = Object.assign(new URL(server), { pathname: `/${name}` }).toString();
const roleEnv = loadEnv({ ...process.env, DATABASE_URL: ownerUrl, FACTORY_APP_DATABASE_URL: '', FACTORY_READER_DATABASE_URL: '' });

async function as(role: 'worker' | 'reader', statement: string): Promise<{ ok: true } | { ok: false; code: string; message: string }> {
  const c = new pg.Client({ connectionString: databaseUrlFor(roleEnv, role) });
  await c.connect();
  try {
    await c.query(statement);
    return { ok: true };
  } catch (err) {
    return { ok: false, code: (err as { code: string }).code, message: (err as Error).message };
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  await ensureDatabase(ownerUrl);
  const owner = createDb(ownerUrl, { poolSize: 1 });
  await migrateToLatest(owner);
  await owner.destroy();
});
afterAll(async () => {
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

describe('database roles on PostgreSQL 15', () => {
  it('runs on a real server, with the workers and the CLI as roles without powers', async () => {
    const c = new pg.Client({ connectionString: ownerUrl });
    await c.connect();
    const version = await c.query<{ server_version_num: string }>('SHOW server_version_num');
    const roles = await c.query<{ rolname: string; rolsuper: boolean; rolcreaterole: boolean; rolbypassrls: boolean; rolreplication: boolean }>(
      `SELECT rolname, rolsuper, rolcreaterole, rolbypassrls, rolreplication FROM pg_roles WHERE rolname IN ('factory_worker', 'factory_reader') ORDER BY rolname`,
    );
    await c.end();
    expect(Number(version.rows[0]!.server_version_num)).toBeGreaterThanOrEqual(150000);
    expect(roles.rows).toEqual([
      { rolname: 'factory_reader', rolsuper: false, rolcreaterole: false, rolbypassrls: false, rolreplication: false },
      { rolname: 'factory_worker', rolsuper: false, rolcreaterole: false, rolbypassrls: false, rolreplication: false },
    ]);
    expect(new URL(databaseUrlFor(roleEnv, 'worker')).username).toBe('factory_worker');
    expect(new URL(databaseUrlFor(roleEnv, 'reader')).username).toBe('factory_reader');
    // Production names them, with their passwords; PGlite (no DATABASE_URL) has one user for all.
    const named = loadEnv({
      DATABASE_URL: ownerUrl,
      FACTORY_APP_DATABASE_URL: 'postgres://w:pw@db:5432/f',
      FACTORY_READER_DATABASE_URL: 'postgres://r:pw@db:5432/f',
    });
    expect([databaseUrlFor(named, 'worker'), databaseUrlFor(named, 'reader'), databaseUrlFor(named, 'owner')]).toEqual([
      'postgres://w:pw@db:5432/f',
      'postgres://r:pw@db:5432/f',
      ownerUrl,
    ]);
    const embedded = loadEnv({ FACTORY_PGLITE_PORT: '5999' });
    expect(new Set((['worker', 'reader', 'owner'] as const).map((r) => databaseUrlFor(embedded, r)))).toEqual(
      new Set(['postgres://postgres@127.0.0.1:5999/postgres']),
    );
  });

  it('the worker does its job: appends to the chain (as factory_audit_writer), registers a dataset, moves a state', async () => {
    const worker = createDb(databaseUrlFor(roleEnv, 'worker'), { poolSize: 1 });
    try {
      for (let i = 1; i <= 3; i++) {
        await appendAuditEvent(worker, {
          workflowId: 'wf-roles',
          runId: 'run-1',
          step: `step.${i}`,
          kind: 'test.event',
          actor: 'ci@hospital.example',
          payload: { i },
          occurredAt: new Date(Date.UTC(2026, 10, 27, 0, 0, i)).toISOString(),
        });
      }
      expect(await verifyAuditChain(worker)).toMatchObject({ ok: true, rows: 3 });
    } finally {
      await worker.destroy();
    }
    const digest = `sha256:${'d'.repeat(64)}`;
    expect(
      await as(
        'worker',
        `INSERT INTO dataset_versions (manifest_digest, name, raw_uri, raw_sha256, certified_uri, manifest_uri, rows_total, rows_accepted, rows_excluded, exclusions, workflow_id)
         VALUES ('${digest}', 'd', 's3://r', 'x', 's3://c', 's3://m', 1, 1, 0, '[]', 'wf-roles')`,
      ),
    ).toEqual({ ok: true });
    expect(
      await as(
        'worker',
        `INSERT INTO model_versions (model_name, version, state, risk_tier, artifact_digest, artifact_uri, dataset_manifest_digest, commit_sha, image_digest, requester, developer, metrics, environment, policy_digest, workflow_id)
         VALUES ('m', 1, 'registered', 'low', 'sha256:a', 's3://a', '${digest}', 'c', 'i', 'r', 'd', '{}', '{}', 'p', 'wf-roles')`,
      ),
    ).toEqual({ ok: true });
    expect(await as('worker', `UPDATE model_versions SET state = 'validated', updated_at = now() WHERE model_name = 'm'`)).toEqual({ ok: true });
    // Only the state moves: the facts of a version are not the worker's to change.
    expect(await as('worker', `UPDATE model_versions SET artifact_digest = 'sha256:b' WHERE model_name = 'm'`)).toMatchObject({
      ok: false,
      message: 'permission denied for table model_versions',
    });
  });

  const refused = (message: RegExp | string) => ({ ok: false, code: '42501', message: expect.stringMatching(message) });

  it.each([
    ['ALTER TABLE', 'ALTER TABLE audit_events ADD COLUMN note text', /must be owner of table audit_events/],
    ['ALTER TABLE … DISABLE TRIGGER ALL', 'ALTER TABLE audit_events DISABLE TRIGGER ALL', /must be owner of table audit_events/],
    ['ALTER TABLE … DISABLE TRIGGER <name>', 'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete', /must be owner of table audit_events/],
    ['SET session_replication_role = replica', 'SET session_replication_role = replica', /permission denied to set parameter "session_replication_role"/],
    ['DROP TRIGGER', 'DROP TRIGGER audit_events_no_update_delete ON audit_events', /must be owner of (table|relation) audit_events/],
    ['UPDATE audit_events', `UPDATE audit_events SET actor = 'mallory'`, /^permission denied for table audit_events$/],
    ['DELETE FROM audit_events', 'DELETE FROM audit_events', /^permission denied for table audit_events$/],
    ['TRUNCATE audit_events', 'TRUNCATE audit_events', /^permission denied for table audit_events$/],
    ['DROP TABLE audit_events', 'DROP TABLE audit_events', /must be owner of table audit_events/],
    ['SET ROLE to the owner', 'SET ROLE postgres', /permission denied to set role "postgres"/],
    ['CREATE TABLE (a shadow table)', 'CREATE TABLE public.shadow (x int)', /permission denied for schema public/],
  ])('the workers role is refused %s, by privilege (not by a trigger it could disable)', async (_what, statement, message) => {
    expect(await as('worker', statement)).toEqual(refused(message));
  });

  it('under an open legal hold a deployed version may be rolled back and forward, not retired; after the release it may', async () => {
    const digest = `sha256:${'b'.repeat(64)}`;
    const run = (statement: string) => as('worker', statement);
    expect(
      await run(
        `INSERT INTO dataset_versions (manifest_digest, name, raw_uri, raw_sha256, certified_uri, manifest_uri, rows_total, rows_accepted, rows_excluded, exclusions, workflow_id)
         VALUES ('${digest}', 'dh', 's3://r', 'x', 's3://c', 's3://m', 1, 1, 0, '[]', 'wf-hold')`,
      ),
    ).toEqual({ ok: true });
    expect(
      await run(
        `INSERT INTO model_versions (model_name, version, state, risk_tier, artifact_digest, artifact_uri, dataset_manifest_digest, commit_sha, image_digest, requester, developer, metrics, environment, policy_digest, workflow_id)
         VALUES ('held', 1, 'registered', 'low', 'sha256:a', 's3://a', '${digest}', 'c', 'i', 'r', 'd', '{}', '{}', 'p', 'wf-hold')`,
      ),
    ).toEqual({ ok: true });
    for (const state of ['validated', 'approved', 'deployed'])
      expect(await run(`UPDATE model_versions SET state = '${state}' WHERE model_name = 'held'`)).toEqual({ ok: true });
    expect(
      await run(
        `INSERT INTO legal_holds (case_id, scope_kind, scope_name, placed_by, reason, workflow_id) VALUES ('CASE-1', 'model', 'held', 'dana@x', 'litigation', 'wf-h')`,
      ),
    ).toEqual({ ok: true });
    // A rollback and a roll-forward keep serving safe and delete nothing: allowed under the hold (migration 0018).
    expect(await run(`UPDATE model_versions SET state = 'rolled-back' WHERE model_name = 'held'`)).toEqual({ ok: true });
    expect(await run(`UPDATE model_versions SET state = 'deployed' WHERE model_name = 'held'`)).toEqual({ ok: true });
    // Retirement starts the retention clock: refused while the case is open.
    expect(await run(`UPDATE model_versions SET state = 'retired' WHERE model_name = 'held'`)).toMatchObject({
      ok: false,
      code: '42501',
      message: expect.stringMatching(/frozen by legal hold CASE-1/),
    });
    expect(await run(`INSERT INTO legal_hold_releases (case_id, released_by, reason, workflow_id) VALUES ('CASE-1', 'max@x', 'closed', 'wf-r')`)).toEqual({
      ok: true,
    });
    expect(await run(`UPDATE model_versions SET state = 'retired' WHERE model_name = 'held'`)).toEqual({ ok: true });
  });

  it('the CLI role reads and writes nothing', async () => {
    expect(await as('reader', 'SELECT count(*) FROM audit_events')).toEqual({ ok: true });
    expect(
      await as(
        'reader',
        `INSERT INTO audit_events (event_id, workflow_id, run_id, step, kind, actor, payload, occurred_at, prev_hash, hash) VALUES ('x','w','r','s','k','a','{}','t','p','h')`,
      ),
    ).toEqual(refused(/^permission denied for table audit_events$/));
    expect(await as('reader', `UPDATE model_versions SET state = 'deployed'`)).toEqual(refused(/^permission denied for table model_versions$/));
    expect(await as('reader', 'SET session_replication_role = replica')).toEqual(refused(/permission denied to set parameter/));
    expect(await as('reader', 'SET ROLE factory_audit_writer')).toEqual(refused(/permission denied to set role/));
  });
});

describe('the embedded PGlite (dev default without DATABASE_URL): single-user, nothing enforced', () => {
  let pglite: PGlite;
  let socket: PGLiteSocketServer;
  let url: string;
  beforeAll(async () => {
    pglite = await PGlite.create();
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    socket = new PGLiteSocketServer({ db: pglite, host: '127.0.0.1', port, maxConnections: 2 });
    await socket.start();
    url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const owner = createDb(url, { poolSize: 1 });
    await migrateToLatest(owner);
    await owner.destroy();
  });
  afterAll(async () => {
    await socket?.stop();
    await pglite?.close();
  });

  it('creates the roles, but a connection as factory_worker is the superuser, so it may disable the triggers', async () => {
    const asWorker = Object.assign(new URL(url), { username: 'factory_worker' }).toString();
    const c = new pg.Client({ connectionString: asWorker });
    await c.connect();
    try {
      expect((await c.query('SELECT session_user, current_user')).rows).toEqual([{ session_user: 'postgres', current_user: 'postgres' }]);
      expect(
        (await c.query(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname IN ('factory_worker', 'factory_reader', 'factory_app', 'factory_read')`)).rows,
      ).toEqual([{ n: 4 }]);
      // Privileges are checked after SET ROLE, but the session can RESET it: nothing is enforced.
      await c.query('SET ROLE factory_worker');
      await expect(c.query('ALTER TABLE audit_events DISABLE TRIGGER ALL')).rejects.toThrow(/must be owner/);
      await c.query('RESET ROLE');
      await c.query('SET session_replication_role = replica');
      await c.query('ALTER TABLE audit_events DISABLE TRIGGER ALL');
      await c.query('ALTER TABLE audit_events ENABLE TRIGGER ALL');
    } finally {
      await c.end();
    }
  });
});

describe("the registry's guard and the state machine in src/domain/model-state.ts", () => {
  it('allow exactly the same transitions: every pair of states tried as the workers role', async () => {
    // The guard is SQL (migrations 0011, 0018), the state machine TypeScript: this keeps them from drifting.
    const states = Object.keys(MODEL_STATE_TRANSITIONS) as ModelState[];
    const digest = `sha256:${'e'.repeat(64)}`;
    const owner = new pg.Client({ connectionString: ownerUrl });
    await owner.connect();
    try {
      await owner.query(
        `INSERT INTO dataset_versions (manifest_digest, name, raw_uri, raw_sha256, certified_uri, manifest_uri, rows_total, rows_accepted, rows_excluded, exclusions, workflow_id)
         VALUES ($1, 'sm', 's3://r', 'x', 's3://c', 's3://m', 1, 1, 0, '[]', 'wf-sm') ON CONFLICT DO NOTHING`,
        [digest],
      );
      // Each state's row is written directly (the guard would make a new row start at registered).
      await owner.query('SET session_replication_role = replica');
      for (const state of states) {
        await owner.query(
          `INSERT INTO model_versions (model_name, version, state, risk_tier, artifact_digest, artifact_uri, dataset_manifest_digest, commit_sha, image_digest, requester, developer, metrics, environment, policy_digest, workflow_id)
           VALUES ($1, 1, $2, 'low', 'sha256:a', 's3://a', $3, 'c', 'i', 'r', 'd', '{}', '{}', 'p', $4)`,
          [`sm-${state}`, state, digest, `wf-sm-${state}`],
        );
      }
    } finally {
      await owner.end();
    }
    const allowed: string[] = [];
    for (const from of states) {
      for (const to of states) {
        if (to === from) continue;
        // Tried and undone: each pair starts from the row as written.
        const r = await as('worker', `BEGIN; UPDATE model_versions SET state = '${to}' WHERE model_name = 'sm-${from}'; ROLLBACK`);
        if (r.ok) allowed.push(`${from} → ${to}`);
        else expect(r.code, `${from} → ${to}: ${r.message}`).toBe('42501');
      }
    }
    const expected = states.flatMap((from) => MODEL_STATE_TRANSITIONS[from].map((to) => `${from} → ${to}`));
    expect(allowed.sort()).toEqual(expected.sort());
  });
});

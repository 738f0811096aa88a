import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Kysely, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAuditEvent } from '../../src/audit/append.ts';
import { sha256Hex } from '../../src/audit/canonical.ts';
import { canonicalEvent } from '../../src/audit/chain.ts';
import { CHECKPOINT_PAYLOAD_TYPE, checkpointKey, checkpointPrefix, writeAuditCheckpoint } from '../../src/audit/checkpoint.ts';
import { venvPaths } from '../../src/config/venv.ts';
import { createDb, ensureDatabase, migrateToLatest } from '../../src/db/connect.ts';
import type { Database } from '../../src/db/schema.ts';
import { checkpointNow, checkpointScheduleId, ensureCheckpointSchedule } from '../../src/lifecycle/checkpoints.ts';
import { signEnvelope } from '../../src/signing/dsse.ts';
import { factoryKeyFromPem, generateFactoryKeyPem, loadFactoryKey } from '../../src/signing/factory-key.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import { env } from '../helpers.ts';
import { exec, factoryCli, lifecycleSuite } from './harness.ts';

/**
 * The audit chain anchored outside the database: signed checkpoints in the evidence bucket (the
 * stack's S3 server), each attack done by a superuser of a real PostgreSQL 15 on a private database
 * (its name scopes its checkpoints), and `factory audit verify` naming what it finds.
 */
const server = env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const s3 = createS3(env);
const evidence = bucket(env, 'evidence');
const key = loadFactoryKey(env);
const dropped: string[] = [];

interface Scenario {
  name: string;
  url: string;
  db: Kysely<Database>;
  cliEnv: NodeJS.ProcessEnv;
}

function newName(): string {
  const name = `factory_anchor_${randomBytes(4).toString('hex')}`;
  dropped.push(name);
  return name;
}

/** Twelve events by default: seq 10 and beyond catch an ordering by text ('10' < '9'). */
async function scenario(events = 12, name = newName()): Promise<Scenario> {
  const url = Object.assign(new URL(server), { pathname: `/${name}` }).toString();
  await ensureDatabase(url);
  const db = createDb(url, { poolSize: 1 });
  await migrateToLatest(db);
  const sc = { name, url, db, cliEnv: { DATABASE_URL: url, FACTORY_APP_DATABASE_URL: '', FACTORY_READER_DATABASE_URL: '' } };
  await append(sc, events);
  return sc;
}

let counter = 0;
async function append(sc: Scenario, n: number) {
  for (let i = 0; i < n; i++) {
    counter += 1;
    await appendAuditEvent(sc.db, {
      workflowId: `wf-${sc.name}`,
      runId: 'run-1',
      step: `step.${counter}`,
      kind: 'test.event',
      actor: 'dana@hospital.example',
      payload: { i: counter, approved: counter % 2 === 0 },
      occurredAt: new Date(Date.UTC(2026, 10, 27, 0, 0, counter % 60)).toISOString(),
    });
  }
}

const checkpoint = (sc: Scenario, reason = 'test', signer = key) =>
  writeAuditCheckpoint({ db: sc.db, s3, bucket: evidence, chain: sc.name, key: signer }, reason);

/** As the superuser, around the append-only triggers: what an insider with the database's keys could do. */
async function aroundTriggers(sc: Scenario, fn: (tx: Kysely<Database>) => Promise<void>) {
  await sc.db.transaction().execute(async (tx) => {
    await sql`ALTER TABLE audit_events DISABLE TRIGGER USER`.execute(tx);
    await fn(tx);
    await sql`ALTER TABLE audit_events ENABLE TRIGGER USER`.execute(tx);
  });
}

interface Report {
  ok: boolean;
  findings: Array<{ kind: string; seq?: string; key?: string; message: string }>;
  chain: { ok: boolean; rows: number; anchored?: { matched: number } };
  checkpoints?: { count: number; newest?: { seq: string; keyId: string } };
}

async function verify(sc: Scenario, extra: NodeJS.ProcessEnv = {}) {
  const json = await factoryCli(['audit', 'verify', '--json'], { ...sc.cliEnv, ...extra });
  const human = await factoryCli(['audit', 'verify'], { ...sc.cliEnv, ...extra });
  expect(human.code).toBe(json.code);
  return { code: json.code, report: JSON.parse(json.stdout) as Report, human: human.stdout };
}

async function seqs(sc: Scenario): Promise<string[]> {
  return (await sql<{ seq: string }>`SELECT seq::text AS seq FROM audit_events ORDER BY audit_events.seq`.execute(sc.db)).rows.map((r) => r.seq);
}

afterAll(async () => {
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  for (const name of dropped) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
  s3.destroy();
});

describe('checkpoints through Temporal: on demand, on a schedule, under a compliance lock', () => {
  const name = newName();
  const url = Object.assign(new URL(server), { pathname: `/${name}` }).toString();
  // The control worker on the private database: it connects as factory_worker (derived from DATABASE_URL).
  const suite = lifecycleSuite({ workerEnv: { DATABASE_URL: url, FACTORY_APP_DATABASE_URL: '' }, startWorkers: false });
  let sc: Scenario;
  beforeAll(async () => {
    sc = await scenario(9, name);
    await suite.workers.start('control');
  }, 330_000);
  afterAll(async () => {
    await sc?.db.destroy();
  });

  it('writes a signed checkpoint of the head, none while the head stands still, and the schedule writes the next', async () => {
    const all = await seqs(sc);
    const first = await checkpointNow(suite.client, { reason: 'test on demand', taskQueuePrefix: suite.workers.prefix });
    expect(first).toMatchObject({ written: true, seq: all.at(-1), eventCount: 9 });
    expect(await checkpointNow(suite.client, { reason: 'again', taskQueuePrefix: suite.workers.prefix })).toMatchObject({
      written: false,
      why: 'unchanged',
      seq: all.at(-1),
    });

    // Locked in COMPLIANCE mode for seven years.
    const head0 = await s3.send(new HeadObjectCommand({ Bucket: evidence, Key: checkpointKey(sc.name, all.at(-1)!) }));
    expect(head0.ObjectLockMode).toBe('COMPLIANCE');
    expect(head0.ObjectLockRetainUntilDate!.getTime()).toBeGreaterThan(Date.now() + 2_550 * 86_400_000);

    // Events flow; the schedule (triggered now rather than waited for) anchors the new head.
    await append(sc, 3);
    const head = (await seqs(sc)).at(-1)!;
    await ensureCheckpointSchedule(suite.client, { everyMinutes: 5, taskQueuePrefix: suite.workers.prefix });
    const schedule = suite.client.schedule.getHandle(checkpointScheduleId(suite.workers.prefix));
    try {
      expect((await schedule.describe()).spec.intervals?.[0]?.every).toBe(5 * 60_000);
      await schedule.trigger();
      const deadline = Date.now() + 60_000;
      let keys: string[] = [];
      while (Date.now() < deadline) {
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: evidence, Prefix: checkpointPrefix(sc.name) }));
        keys = (listed.Contents ?? []).map((o) => o.Key!);
        if (keys.includes(checkpointKey(sc.name, head))) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      // Newest first: the key orders checkpoints by descending seq.
      expect(keys).toEqual([checkpointKey(sc.name, head), checkpointKey(sc.name, all.at(-1)!)]);
    } finally {
      await schedule.delete();
    }

    const { code, report, human } = await verify(sc);
    expect(code).toBe(0);
    expect(report).toMatchObject({
      ok: true,
      findings: [],
      chain: { ok: true, rows: 12, anchored: { matched: 2 } },
      checkpoints: { count: 2, newest: { seq: head, keyId: key.keyId } },
    });
    expect(human).toMatch(/anchored: 2 signed checkpoint\(s\)/);
  }, 180_000);

  it('an outside verifier (Python securesystemslib) verifies the envelope with the factory public key, and refuses a changed one', async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: evidence, Prefix: checkpointPrefix(sc.name), MaxKeys: 1 }));
    const { GetObjectCommand } = await import('@aws-sdk/client-s3');
    const got = await s3.send(new GetObjectCommand({ Bucket: evidence, Key: listed.Contents![0]!.Key! }));
    const envelope = JSON.parse(await got.Body!.transformToString()) as { payload: string; payloadType: string };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anchor-'));
    const good = path.join(dir, 'good.json');
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(good, JSON.stringify(envelope));
    const payload = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as { eventCount: number };
    fs.writeFileSync(bad, JSON.stringify({ ...envelope, payload: Buffer.from(JSON.stringify({ ...payload, eventCount: 1 })).toString('base64') }));
    const script = `
import json, sys
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
key = SSlibKey(sys.argv[2], "ed25519", "ed25519", {"public": sys.argv[3]})
env = Envelope.from_dict(json.load(open(sys.argv[1])))
assert env.payload_type == "${CHECKPOINT_PAYLOAD_TYPE}"
try:
    env.verify([key], 1)
except Exception as e:
    print("REFUSED", type(e).__name__); sys.exit(1)
print("VERIFIED", json.loads(env.payload)["seq"])
`;
    const python = venvPaths(env).python;
    const ok = await exec(python, ['-c', script, good, key.keyId, key.publicKeyHex]);
    expect(ok.stdout).toMatch(/^VERIFIED \d+/);
    await expect(exec(python, ['-c', script, bad, key.keyId, key.publicKeyHex])).rejects.toMatchObject({ stdout: expect.stringMatching(/REFUSED/) });
  }, 60_000);
});

describe('audit verify against the checkpoints: each attack by a superuser is detected and named', () => {
  const open: Scenario[] = [];
  afterAll(async () => {
    for (const sc of open) await sc.db.destroy();
  });
  const fresh = async () => {
    const sc = await scenario();
    open.push(sc);
    expect(await checkpoint(sc)).toMatchObject({ written: true });
    return sc;
  };

  it('tail truncation: the newest rows deleted; the chain still links, but ends before the signed head (exit 8)', async () => {
    const sc = await fresh();
    const all = await seqs(sc);
    await aroundTriggers(sc, async (tx) => void (await sql`DELETE FROM audit_events WHERE seq > ${all[3]}`.execute(tx)));
    const { code, report, human } = await verify(sc);
    expect(code).toBe(8);
    expect(report.chain.ok).toBe(true);
    expect(report.findings.map((f) => f.kind)).toEqual(['tail-truncated']);
    expect(report.findings[0]!.message).toMatch(new RegExp(`ends at seq ${all[3]} \\(4 events\\).*seq ${all[11]} over 12 events`));
    expect(human).toMatch(/^TAIL TRUNCATED at seq \d+/m);
    // The writer never signs over a cut-off chain.
    expect(await checkpoint(sc, 'after the cut')).toMatchObject({ written: false, why: 'refused' });
    // Everything deleted: still named.
    await aroundTriggers(sc, async (tx) => void (await sql`DELETE FROM audit_events`.execute(tx)));
    const wiped = await verify(sc);
    expect([wiped.code, wiped.report.findings.map((f) => f.kind)]).toEqual([8, ['tail-truncated']]);
  }, 120_000);

  it('an edited row and a deleted row break the chain (exit 7), named at the row', async () => {
    const edited = await fresh();
    const e = await seqs(edited);
    // The payload and its stored hashed text alike (migration 0022's constraint holds them together), no new hash.
    await aroundTriggers(edited, async (tx) => {
      const r = await tx.selectFrom('audit_events').selectAll().where('seq', '=', e[2]!).executeTakeFirstOrThrow();
      const payload = { i: 0, approved: true };
      await tx
        .updateTable('audit_events')
        .set({ payload: JSON.stringify(payload), canonical: canonicalEvent({ ...r, payload }) })
        .where('seq', '=', e[2]!)
        .execute();
    });
    const r1 = await verify(edited);
    expect(r1.code).toBe(7);
    expect(r1.report.findings).toEqual([{ kind: 'chain-broken', seq: e[2], message: expect.stringMatching(/edited/) }]);
    expect(r1.human).toMatch(new RegExp(`^AUDIT CHAIN BROKEN at seq ${e[2]}`, 'm'));

    const deleted = await fresh();
    const d = await seqs(deleted);
    await aroundTriggers(deleted, async (tx) => void (await sql`DELETE FROM audit_events WHERE seq = ${d[2]}`.execute(tx)));
    const r2 = await verify(deleted);
    expect(r2.code).toBe(7);
    expect(r2.report.findings).toEqual([{ kind: 'chain-broken', seq: d[3], message: expect.stringMatching(/deleted/) }]);
  }, 120_000);

  it('a full recomputation: a row edited and every hash after it recomputed; the chain links, but not to what was signed (exit 9)', async () => {
    const sc = await fresh();
    const all = await seqs(sc);
    await aroundTriggers(sc, async (tx) => {
      const rows = await tx.selectFrom('audit_events').selectAll().orderBy('seq').execute();
      let prev = '0'.repeat(64);
      for (const r of rows) {
        // Each row's stored hashed text rewritten with it (migration 0022's constraint holds them together).
        const actor = r.seq === all[1] ? 'mallory@hospital.example' : r.actor;
        const canonical = canonicalEvent({ ...r, actor, prev_hash: prev });
        const hash = sha256Hex(canonical);
        await tx.updateTable('audit_events').set({ actor, prev_hash: prev, hash, canonical }).where('seq', '=', r.seq).execute();
        prev = hash;
      }
    });
    const { code, report, human } = await verify(sc);
    expect(code).toBe(9);
    expect(report.chain.ok).toBe(true);
    expect(report.findings).toEqual([{ kind: 'chain-rewritten', seq: all[11], message: expect.stringMatching(/recomputed/) }]);
    expect(human).toMatch(new RegExp(`^CHAIN REWRITTEN at seq ${all[11]}`, 'm'));
    // Without the checkpoints the rewrite passes: what the anchor is for.
    const blind = await factoryCli(['audit', 'verify', '--no-checkpoints', '--json'], sc.cliEnv);
    expect(blind.code).toBe(0);
  }, 120_000);

  it('a checkpoint signed by a key not trusted is named (exit 10); trusted after a rotation, it verifies', async () => {
    const sc = await fresh();
    await append(sc, 2);
    const old = factoryKeyFromPem(generateFactoryKeyPem(), 'rotated-out');
    expect(await checkpoint(sc, 'signed by the old key', old)).toMatchObject({ written: true });
    const r1 = await verify(sc);
    expect(r1.code).toBe(10);
    expect(r1.report.findings).toEqual([
      { kind: 'checkpoint-invalid', key: expect.stringContaining(checkpointPrefix(sc.name)), message: expect.stringMatching(/trusted/) },
    ]);
    const trusted = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'trust-')), 'trusted');
    fs.writeFileSync(trusted, `# rotated out\n${old.sshPublicKey}\n`);
    const r2 = await verify(sc, { FACTORY_TRUSTED_KEYS_FILE: trusted });
    expect([r2.code, r2.report.findings, r2.report.checkpoints?.count]).toEqual([0, [], 2]);

    // A forged object (a valid envelope of another chain's checkpoint, moved here) is named too.
    const forged = signEnvelope(old, CHECKPOINT_PAYLOAD_TYPE, JSON.stringify({ nonsense: true }));
    await s3.send(new PutObjectCommand({ Bucket: evidence, Key: checkpointKey(sc.name, 999_999n), Body: JSON.stringify(forged) }));
    const r3 = await verify(sc, { FACTORY_TRUSTED_KEYS_FILE: trusted });
    expect(r3.code).toBe(10);
    expect(r3.report.findings).toEqual([{ kind: 'checkpoint-invalid', key: checkpointKey(sc.name, 999_999n), message: 'signed, but not an audit checkpoint' }]);
  }, 120_000);
});

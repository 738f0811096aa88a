/**
 * The issue-8 benchmark, one command:
 *
 *   npm run bench:audit -- [--database postgres://…/factory_bench_anchor] [--checkpoints 40] [--json]
 *
 * On a database filled by `npm run bench:fill` (1 M audit events), e.g. a copy of one
 * (`CREATE DATABASE factory_bench_anchor TEMPLATE factory_bench_1m`): step 3 appends to it.
 *   1. `verifyAuditChain` (what `factory audit verify` runs: the stored hashed text, migration 0022,
 *      streamed by COPY binary and hashed as bytes), the same with `copy: false` (keyset pages decoded
 *      into strings: the verifier before the COPY), and with `full` (`audit verify --full`: the text
 *      rebuilt from the columns) in events/s, and the same run's raw SHA-256 over exactly the
 *      canonical bytes it hashes (one digest per event, the faster of node:crypto's createHash and
 *      one-shot hash), so the ratios are measured on one machine under one load. The issue-8
 *      verifier (5 000-row pages of `selectAll`, the plain canonical JSON, no prefetch) runs too.
 *   2. Signature verification per approval: the DSSE/Ed25519 verification a checkpoint or
 *      provenance envelope costs, and `ssh-keygen -Y verify` (the outside tool) per signature.
 *   3. Checkpoint write latency (p50/p95) in the steady state: one event appended (as a lifecycle
 *      would), then the full write (advisory lock, newest-checkpoint lookup and read, head and the
 *      count since it, sign, PUT under a COMPLIANCE lock to the stack's S3); the first checkpoint
 *      of the chain (a full count over 1 M rows) is reported apart.
 *   The raw pass runs first: it reads every row once, so the timed passes find a warm cache.
 */
import { execFileSync } from 'node:child_process';
import { createHash, hash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Kysely, sql } from 'kysely';
import { appendAuditEvent } from '../src/audit/append.ts';
import { canonicalEvent } from '../src/audit/chain.ts';
import { canonicalJsonReference, sha256Hex } from '../src/audit/canonical.ts';
import { writeAuditCheckpoint } from '../src/audit/checkpoint.ts';
import { GENESIS_HASH } from '../src/audit/chain.ts';
import { verifyAuditChain } from '../src/audit/verify.ts';
import { loadEnv } from '../src/config/env.ts';
import { createDb } from '../src/db/connect.ts';
import type { Database } from '../src/db/schema.ts';
import { signEnvelope, verifyEnvelope } from '../src/signing/dsse.ts';
import { factoryKeyFromPem, generateFactoryKeyPem } from '../src/signing/factory-key.ts';
import { bucket, createS3, ensureBuckets } from '../src/storage/s3.ts';
import { figure } from './summary.ts';

const { values } = parseArgs({
  options: {
    database: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/factory_bench_anchor' },
    checkpoints: { type: 'string', default: '40' },
    signatures: { type: 'string', default: '2000' },
    json: { type: 'boolean', default: false },
  },
});
const env = loadEnv();
const db = createDb(values.database!, { poolSize: 2 });
const say = (line: string) => !values.json && console.log(line);
const secs = (ms: number) => (ms / 1000).toFixed(1);

const count = Number((await sql<{ n: string }>`SELECT count(*)::text AS n FROM audit_events`.execute(db)).rows[0]!.n);
if (count < 1000) {
  console.error(`${values.database} holds ${count} audit events: fill it first (npm run bench:fill -- --database … --fresh)`);
  process.exit(2);
}
say(
  `database ${new URL(values.database!).pathname.slice(1)}: ${count} audit events; load average at start ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);

// ---- 1. verify vs raw SHA-256 over the same canonical bytes -------------------------------------

/** The canonical bytes of every event, page by page; only the digests are timed. */
async function rawSha256(): Promise<{ ms: number; createMs: number; oneShotMs: number; canonicalMs: number; fetchMs: number; bytes: number; rows: number }> {
  let after = '0';
  let createMs = 0;
  let oneShotMs = 0;
  let canonicalMs = 0;
  let fetchMs = 0;
  let bytes = 0;
  let rows = 0;
  for (;;) {
    const f0 = performance.now();
    const page = await db
      .selectFrom('audit_events')
      .select([sql<string>`seq::text`.as('seq'), 'event_id', 'workflow_id', 'run_id', 'step', 'kind', 'actor', 'payload', 'occurred_at', 'prev_hash'])
      .where('audit_events.seq', '>', after)
      .orderBy('audit_events.seq')
      .limit(10_000)
      .execute();
    fetchMs += performance.now() - f0;
    if (!page.length) break;
    const c0 = performance.now();
    const buffers = page.map((r) => Buffer.from(canonicalEvent(r)));
    canonicalMs += performance.now() - c0;
    // Both of node:crypto's ways to take one digest; the faster is the reference (verify uses the one-shot).
    let t0 = performance.now();
    for (const b of buffers) createHash('sha256').update(b).digest('hex');
    createMs += performance.now() - t0;
    t0 = performance.now();
    for (const b of buffers) hash('sha256', b, 'hex');
    oneShotMs += performance.now() - t0;
    for (const b of buffers) bytes += b.length;
    rows += page.length;
    after = page[page.length - 1]!.seq;
  }
  return { ms: Math.min(createMs, oneShotMs), createMs, oneShotMs, canonicalMs, fetchMs, bytes, rows };
}
const raw = await rawSha256();

let t = performance.now();
const verified = await verifyAuditChain(db);
const verifyMs = performance.now() - t;
if (!verified.ok) throw new Error(`the chain does not verify: ${JSON.stringify(verified.firstBad)}`);
// The same path as it was before the rows streamed as bytes: keyset pages of `seq, hash, canonical` decoded by pg into strings.
t = performance.now();
const verifiedPaged = await verifyAuditChain(db, { copy: false });
const pagedMs = performance.now() - t;
if (!verifiedPaged.ok || verifiedPaged.headHash !== verified.headHash || verifiedPaged.rows !== verified.rows) {
  throw new Error(`the paged verifier disagrees: ${JSON.stringify(verifiedPaged)} vs ${JSON.stringify(verified)}`);
}
const withText = Number((await sql<{ n: string }>`SELECT count(canonical)::text AS n FROM audit_events`.execute(db)).rows[0]!.n);

// `audit verify --full`: every row's canonical text rebuilt from its columns here (the path before migration 0022).
t = performance.now();
const verifiedFull = await verifyAuditChain(db, { full: true });
const fullMs = performance.now() - t;
if (!verifiedFull.ok) throw new Error(`the chain does not verify with full: ${JSON.stringify(verifiedFull.firstBad)}`);

/** The verifier as it was before (kept here, not in src/): selectAll pages of 5 000, the plain canonical JSON, no prefetch. */
async function verifyBefore(d: Kysely<Database>): Promise<number> {
  let prevHash = GENESIS_HASH;
  let prevSeq = 0n;
  let rows = 0;
  for (;;) {
    const page = await d.selectFrom('audit_events').selectAll().where('seq', '>', String(prevSeq)).orderBy('seq').limit(5_000).execute();
    for (const r of page) {
      if (r.prev_hash !== prevHash) throw new Error('broken');
      const h = sha256Hex(
        canonicalJsonReference({
          eventId: r.event_id,
          workflowId: r.workflow_id,
          runId: r.run_id,
          step: r.step,
          kind: r.kind,
          actor: r.actor,
          payload: r.payload,
          occurredAt: r.occurred_at,
          prevHash: r.prev_hash,
        }),
      );
      if (h !== r.hash) throw new Error('edited');
      prevHash = r.hash;
      prevSeq = BigInt(r.seq);
      rows += 1;
    }
    if (page.length < 5_000) break;
  }
  return rows;
}
t = performance.now();
await verifyBefore(db);
const beforeMs = performance.now() - t;

const verifyRate = count / (verifyMs / 1000);
const rawRate = raw.rows / (raw.ms / 1000);
const beforeRate = count / (beforeMs / 1000);
const fullRate = count / (fullMs / 1000);
const pagedRate = count / (pagedMs / 1000);
say(
  `audit verify (verifyAuditChain; ${withText} of ${count} events carry their hashed text; COPY binary, hashed as bytes): ${count} events in ${secs(verifyMs)} s = ${Math.round(verifyRate)} events/s (before, keyset pages decoded into strings: ${Math.round(pagedRate)} events/s, ${secs(pagedMs)} s; --full, canonical text rebuilt here: ${Math.round(fullRate)} events/s, ${secs(fullMs)} s; the issue-8 verifier: ${Math.round(beforeRate)} events/s, ${secs(beforeMs)} s)`,
);
say(
  `breakdown per event (the raw pass): fetch and parse ${((raw.fetchMs * 1000) / raw.rows).toFixed(1)} µs, canonical JSON ${((raw.canonicalMs * 1000) / raw.rows).toFixed(1)} µs, SHA-256 ${((raw.ms * 1000) / raw.rows).toFixed(1)} µs`,
);
say(
  `raw SHA-256 over the same canonical bytes (${(raw.bytes / 2 ** 20).toFixed(0)} MiB, one digest per event, the faster of createHash ${Math.round(raw.rows / (raw.createMs / 1000))}/s and crypto.hash ${Math.round(raw.rows / (raw.oneShotMs / 1000))}/s): ${Math.round(rawRate)} events/s; verify / raw = ${(verifyRate / rawRate).toFixed(2)}× (before: ${(pagedRate / rawRate).toFixed(2)}×; --full / raw = ${(fullRate / rawRate).toFixed(2)}×)`,
);

// ---- 2. signature verification per approval ---------------------------------------------------
const key = factoryKeyFromPem(generateFactoryKeyPem(), 'bench');
const statement = JSON.stringify({
  workflowId: 'lifecycle-bc-0123',
  model: 'bc',
  version: 3,
  digest: `sha256:${'a'.repeat(64)}`,
  role: 'qa',
  meaning: 'approved',
  at: new Date().toISOString(),
});
const envelope = signEnvelope(key, 'application/vnd.ai-factory.approval+json', statement);
const n = Number(values.signatures);
t = performance.now();
for (let i = 0; i < n; i++) if (!verifyEnvelope(envelope, [key.publicKey], 'application/vnd.ai-factory.approval+json').ok) throw new Error('did not verify');
const dsseUs = ((performance.now() - t) * 1000) / n;
// The outside tool: ssh-keygen -Y verify over an SSHSIG signature by an Ed25519 key (a process per call).
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sig-'));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'id')]);
fs.writeFileSync(path.join(dir, 'msg'), statement);
execFileSync('ssh-keygen', ['-Y', 'sign', '-f', path.join(dir, 'id'), '-n', 'factory-approval', path.join(dir, 'msg')], { stdio: 'ignore' });
fs.writeFileSync(path.join(dir, 'allowed'), `qa@hospital.example ${fs.readFileSync(path.join(dir, 'id.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
const sshRuns = 30;
t = performance.now();
for (let i = 0; i < sshRuns; i++) {
  execFileSync(
    'ssh-keygen',
    ['-Y', 'verify', '-f', path.join(dir, 'allowed'), '-I', 'qa@hospital.example', '-n', 'factory-approval', '-s', path.join(dir, 'msg.sig')],
    { input: statement, stdio: ['pipe', 'ignore', 'ignore'] },
  );
}
const sshMs = (performance.now() - t) / sshRuns;
fs.rmSync(dir, { recursive: true, force: true });
say(`signature verification per approval: DSSE Ed25519 (node:crypto) ${dsseUs.toFixed(1)} µs; ssh-keygen -Y verify (a process each) ${sshMs.toFixed(1)} ms`);

// ---- 3. checkpoint write latency --------------------------------------------------------------
const s3 = createS3(env);
await ensureBuckets(s3, env);
const chain = `bench-${Date.now()}`;
const write = () => writeAuditCheckpoint({ db, s3, bucket: bucket(env, 'evidence'), chain, key }, 'bench');
let t1 = performance.now();
if (!(await write()).written) throw new Error('first checkpoint not written');
const firstMs = performance.now() - t1;
const latencies: number[] = [];
for (let i = 0; i < Number(values.checkpoints); i++) {
  await appendAuditEvent(db, {
    workflowId: `${chain}-events`,
    runId: 'bench',
    step: `event.${i}`,
    kind: 'bench.event',
    actor: 'bench',
    payload: { i },
    occurredAt: new Date().toISOString(),
  });
  t1 = performance.now();
  const res = await write();
  latencies.push(performance.now() - t1);
  if (!res.written) throw new Error(`checkpoint not written: ${res.why}`);
}
s3.destroy();
const sorted = [...latencies].sort((a, b) => a - b);
const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
say(
  `checkpoint write (lock, head + count over ${count} rows, lookup, sign, PUT with COMPLIANCE lock): p50 ${pct(50).toFixed(1)} ms, p95 ${pct(95).toFixed(1)} ms over ${latencies.length}`,
);
say(
  `machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);

figure('audit verify (verifyAuditChain)', verifyRate, 'events/s');
figure('raw SHA-256 over the same canonical bytes', rawRate, 'events/s');
figure('audit verify / raw SHA-256', verifyRate / rawRate, '×', '≥ 0.5', verifyRate / rawRate >= 0.5);
figure('checkpoint write p95', pct(95), 'ms');

if (values.json) {
  console.log(
    JSON.stringify({
      events: count,
      verify: {
        ms: Math.round(verifyMs),
        eventsPerSecond: Math.round(verifyRate),
        eventsWithText: withText,
        fullEventsPerSecond: Math.round(fullRate),
        pagedEventsPerSecond: Math.round(pagedRate),
        beforeEventsPerSecond: Math.round(beforeRate),
      },
      rawSha256: {
        ms: Math.round(raw.ms),
        bytes: raw.bytes,
        eventsPerSecond: Math.round(rawRate),
        createHashEventsPerSecond: Math.round(raw.rows / (raw.createMs / 1000)),
        oneShotEventsPerSecond: Math.round(raw.rows / (raw.oneShotMs / 1000)),
      },
      ratio: verifyRate / rawRate,
      pagedRatio: pagedRate / rawRate,
      fullRatio: fullRate / rawRate,
      signature: { dsseEd25519Us: dsseUs, sshKeygenVerifyMs: sshMs },
      checkpointWriteMs: { p50: pct(50), p95: pct(95), n: latencies.length, first: firstMs },
      rawBreakdownUs: { fetch: (raw.fetchMs * 1000) / raw.rows, canonical: (raw.canonicalMs * 1000) / raw.rows, sha256: (raw.ms * 1000) / raw.rows },
      loadAverage: os.loadavg(),
    }),
  );
}
await db.destroy();

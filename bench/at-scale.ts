/**
 * Reads at a million audit events: `traceModel` (library) p50/p99, `factory trace` as a process p50,
 * and the registry check (`verifyProjection`: time, rows/s, peak RSS of a process doing only that;
 * `factory audit verify` as a process: wall time and peak RSS), against a baseline in the same run.
 *
 *   npm run bench:scale -- --database postgres://postgres@127.0.0.1:5432/factory_bench_1m [--baseline <git ref>]
 *     [--samples 200] [--cli-runs 10] [--appends 200] [--json]
 *
 * Fill the database first (`npm run bench:fill`). With --baseline, the same measurements run first
 * with that commit's code (a temporary git worktree) and without the registry lookup indexes of
 * migration 0009 (dropped for the baseline, made again after it), then with this checkout's code and
 * indexes; ratios are printed beside the goals. Only a `factory_bench*` database is accepted: the
 * baseline drops indexes.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type Kysely, sql } from 'kysely';
import { appendAuditEvent } from '../src/audit/append.ts';
import { loadEnv, projectRoot } from '../src/config/env.ts';
import { createDb, databaseUrl, migrateToLatest } from '../src/db/connect.ts';
import type { Database } from '../src/db/schema.ts';
import { up as indexesUp, down as indexesDown } from '../src/db/migrations/0009_registry_lookup_indexes.ts';
import { figure } from './summary.ts';

const { values } = parseArgs({
  options: {
    database: { type: 'string' },
    baseline: { type: 'string' },
    samples: { type: 'string', default: '200' },
    'cli-runs': { type: 'string', default: '10' },
    appends: { type: 'string', default: '200' },
    json: { type: 'boolean', default: false },
  },
});
const SAMPLES = Number(values.samples);
const CLI_RUNS = Number(values['cli-runs']);
const APPENDS = Number(values.appends);
const url = values.database ?? databaseUrl(loadEnv());
const dbName = decodeURIComponent(new URL(url).pathname.slice(1));
if (!dbName.startsWith('factory_bench')) {
  console.error(`bench:scale drops and makes indexes: refused for ${dbName} (fill a factory_bench* database with npm run bench:fill)`);
  process.exit(2);
}
const say = (s: string) => (values.json ? undefined : console.log(s));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const mib = (kib: number) => Math.round(kib / 1024);

/** A child process's wall time and peak RSS (GNU time's %M, KiB). */
async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; peakKiB: number; code: number; stdout: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/time', ['-f', '@@peak %M', cmd, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      const peak = /@@peak (\d+)/.exec(err);
      resolve({ ms: performance.now() - t0, peakKiB: peak ? Number(peak[1]) : NaN, code: code ?? -1, stdout: out });
    });
  });
}

interface Phase {
  label: string;
  traceLib: { p50: number; p99: number; max: number };
  traceCli: { p50: number; max: number };
  projection: { ms: number; rows: number; rowsPerSec: number; peakMiB: number; ok: boolean };
  auditVerifyCli: { ms: number; peakMiB: number; code: number };
}

async function measure(db: Kysely<Database>, root: string, label: string, refs: string[]): Promise<Phase> {
  const childEnv = { ...process.env, DATABASE_URL: url, FACTORY_READER_DATABASE_URL: '', FACTORY_LOG_LEVEL: 'warn' };
  // The library call, as `trace` makes it, with the code under test.
  const { traceModel } = (await import(path.join(root, 'src/trace/trace.ts'))) as typeof import('../src/trace/trace.ts');
  for (const r of refs.slice(0, 10)) await traceModel(db, r); // warm the pool and the cache
  const lib: number[] = [];
  for (const r of refs) {
    const t0 = performance.now();
    await traceModel(db, r);
    lib.push(performance.now() - t0);
  }
  say(`  [${label}] traceModel ×${refs.length}: p50 ${pct(lib, 50).toFixed(2)} ms, p99 ${pct(lib, 99).toFixed(2)} ms`);
  const cli: number[] = [];
  const bin = path.join(root, 'bin/factory.mjs');
  await timed(process.execPath, [bin, 'trace', refs[0]!, '--json'], childEnv); // builds the bundle when stale
  for (let i = 0; i < CLI_RUNS; i++) {
    const r = await timed(process.execPath, [bin, 'trace', refs[i % refs.length]!, '--json'], childEnv);
    if (r.code !== 0) throw new Error(`factory trace exited ${r.code}`);
    cli.push(r.ms);
  }
  say(`  [${label}] factory trace ×${CLI_RUNS}: p50 ${pct(cli, 50).toFixed(0)} ms`);
  // The registry check alone, in a process of its own (so its peak is its own).
  const script = `
    const { createDb } = await import(${JSON.stringify(path.join(root, 'src/db/connect.ts'))});
    const { verifyProjection } = await import(${JSON.stringify(path.join(root, 'src/audit/verify.ts'))});
    const db = createDb(process.env.DATABASE_URL, { poolSize: 2 });
    const t0 = performance.now();
    const r = await verifyProjection(db);
    const ms = performance.now() - t0;
    await db.destroy();
    console.log(JSON.stringify({ ms, rows: r.checked, ok: r.ok }));`;
  const proj = await timed(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    ...childEnv,
    NODE_PATH: path.join(projectRoot, 'node_modules'),
  });
  if (proj.code !== 0) throw new Error(`verifyProjection process exited ${proj.code}`);
  const pr = JSON.parse(proj.stdout.trim().split('\n').at(-1)!) as { ms: number; rows: number; ok: boolean };
  say(`  [${label}] verifyProjection: ${pr.rows} rows in ${(pr.ms / 1000).toFixed(2)} s, peak RSS ${mib(proj.peakKiB)} MiB, ok=${pr.ok}`);
  const av = await timed(process.execPath, [bin, 'audit', 'verify', '--json'], childEnv);
  say(`  [${label}] factory audit verify: ${(av.ms / 1000).toFixed(1)} s, peak RSS ${mib(av.peakKiB)} MiB, exit ${av.code}`);
  return {
    label,
    traceLib: { p50: pct(lib, 50), p99: pct(lib, 99), max: Math.max(...lib) },
    traceCli: { p50: pct(cli, 50), max: Math.max(...cli) },
    projection: { ms: pr.ms, rows: pr.rows, rowsPerSec: pr.rows / (pr.ms / 1000), peakMiB: mib(proj.peakKiB), ok: pr.ok },
    auditVerifyCli: { ms: av.ms, peakMiB: mib(av.peakKiB), code: av.code },
  };
}

const db = createDb(url, { poolSize: 4 });
await migrateToLatest(db);
const counts = (
  await sql<{ events: string; versions: string; approvals: string }>`
  SELECT (SELECT count(*) FROM audit_events)::text AS events, (SELECT count(*) FROM model_versions)::text AS versions,
    (SELECT count(*) FROM approvals)::text AS approvals`.execute(db)
).rows[0]!;
// Versions to trace: a fixed random sample (refusal-storm versions included in their proportion).
const refs = (
  await sql<{ ref: string }>`SELECT model_name || '@' || version AS ref FROM model_versions ORDER BY md5(id::text) LIMIT ${SAMPLES}`.execute(db)
).rows.map((r) => r.ref);
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, load ${os
  .loadavg()
  .map((l) => l.toFixed(1))
  .join(' ')}; shared with other stacks`;
say(`database ${dbName}: ${counts.events} audit events, ${counts.versions} model versions, ${counts.approvals} decisions`);
say(`machine: ${machine}`);

// The floor under any CLI figure on this machine now: starting Node and exiting.
const floor: number[] = [];
for (let i = 0; i < CLI_RUNS; i++) floor.push((await timed(process.execPath, ['-e', '0'], process.env)).ms);
say(`node -e 0 ×${CLI_RUNS} (the floor under any CLI figure): p50 ${pct(floor, 50).toFixed(0)} ms`);

const phases: Phase[] = [];
if (values.baseline) {
  const ref = values.baseline;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-baseline-'));
  execFileSync('git', ['-C', projectRoot, 'worktree', 'add', '--detach', dir, ref], { stdio: 'ignore' });
  try {
    fs.symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'));
    if (fs.existsSync(path.join(projectRoot, '.venv'))) fs.symlinkSync(fs.realpathSync(path.join(projectRoot, '.venv')), path.join(dir, '.venv'));
    await indexesDown(db as unknown as Kysely<unknown>);
    await sql`ANALYZE approvals, deployments`.execute(db);
    say(`baseline: ${ref} (${execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD']).toString().trim()}), without migration 0009's indexes`);
    phases.push(await measure(db, dir, 'baseline', refs));
  } finally {
    await indexesUp(db as unknown as Kysely<unknown>);
    await sql`ANALYZE approvals, deployments`.execute(db);
    execFileSync('git', ['-C', projectRoot, 'worktree', 'remove', '--force', dir], { stdio: 'ignore' });
  }
}
say('this checkout, with its indexes');
phases.push(await measure(db, projectRoot, 'now', refs));
// The chain's append rate at this size: one event at a time through the real append path (the
// capacity model's chainAppendsPerSecond). Each is a real event of kind bench.appended.
const appendMs: number[] = [];
const runTag = `bench-append-${Date.now()}`;
for (let i = 0; i < APPENDS; i++) {
  const t0 = performance.now();
  await appendAuditEvent(db, {
    workflowId: runTag,
    runId: 'r1',
    step: `append.${i}`,
    kind: 'bench.appended',
    actor: 'bench',
    payload: { i },
    occurredAt: new Date().toISOString(),
  });
  appendMs.push(performance.now() - t0);
}
const appendsPerSecond = APPENDS / (appendMs.reduce((s, x) => s + x, 0) / 1000);
say(
  `appendAuditEvent ×${APPENDS} at this size: p50 ${pct(appendMs, 50).toFixed(2)} ms, p99 ${pct(appendMs, 99).toFixed(2)} ms, ${Math.round(appendsPerSecond)} appends/s one at a time`,
);
await db.destroy();

const now = phases.at(-1)!;
const base = phases.length > 1 ? phases[0] : undefined;
const ratio = (b: number | undefined, n: number, better: string) =>
  b === undefined ? '' : `  (baseline ${b.toFixed(b < 100 ? 2 : 0)}, ${(b / n).toFixed(1)}× ${better})`;
const goals = [
  { what: 'traceModel p99 at 1 M events', value: now.traceLib.p99, unit: 'ms', goal: 10, ok: now.traceLib.p99 < 10, base: base?.traceLib.p99 },
  { what: 'factory trace as a process, p50', value: now.traceCli.p50, unit: 'ms', goal: 300, ok: now.traceCli.p50 < 300, base: base?.traceCli.p50 },
  {
    what: 'verifyProjection peak RSS (process)',
    value: now.projection.peakMiB,
    unit: 'MiB',
    goal: 256,
    ok: now.projection.peakMiB < 256,
    base: base?.projection.peakMiB,
  },
];
figure('traceModel p50 at 1 M events', now.traceLib.p50, 'ms');
for (const g of goals) figure(g.what, g.value, g.unit, `< ${g.goal} ${g.unit}`, g.ok);
if (values.json)
  console.log(
    JSON.stringify(
      { database: dbName, counts, machine, phases, goals, appends: { p50: pct(appendMs, 50), p99: pct(appendMs, 99), perSecond: appendsPerSecond } },
      null,
      2,
    ),
  );
else {
  console.log('\nfigure                                   value        goal');
  for (const g of goals) {
    console.log(
      `${g.what.padEnd(40)} ${`${g.value.toFixed(g.unit === 'ms' && g.value < 100 ? 2 : 0)} ${g.unit}`.padEnd(12)} < ${g.goal} ${g.unit} ${g.ok ? 'OK' : 'MISSED'}${ratio(g.base, g.value, g.unit === 'ms' ? 'faster' : 'less')}`,
    );
  }
  console.log(`  (node -e 0 alone: p50 ${pct(floor, 50).toFixed(0)} ms on this machine now)`);
  console.log(
    `verifyProjection                         ${Math.round(now.projection.rowsPerSec)} rows/s, ${(now.projection.ms / 1000).toFixed(2)} s${base ? `  (baseline ${(base.projection.ms / 1000).toFixed(2)} s)` : ''}`,
  );
  console.log(
    `factory audit verify (chain + registry)  ${(now.auditVerifyCli.ms / 1000).toFixed(1)} s, peak ${now.auditVerifyCli.peakMiB} MiB${base ? `  (baseline ${(base.auditVerifyCli.ms / 1000).toFixed(1)} s, ${base.auditVerifyCli.peakMiB} MiB)` : ''}`,
  );
}

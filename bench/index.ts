/**
 * `npm run bench` runs the lifecycle benchmark (bench/lifecycle.ts) with the options given, as it
 * always has. `npm run bench -- --all` runs issue 12's benchmarks and the others already benched,
 * each in its own process against one dev stack (started once here; each bench's own `stackUp`
 * then finds it running), and ends with one table: every figure beside its goal, OK or MISSED.
 *
 *   npm run bench -- --all [--quick] [--fill] [--database URL] [--baseline <git ref>] [--only a,b] [--summary-out FILE]
 *
 * The 1 M-event database (`--database`, default postgres://…/factory_bench_1m on DATABASE_URL's
 * server) is filled once by the separate command `npm run bench:fill -- --database URL --fresh`
 * (≈ 5 minutes); without it the two steps at 1 M events are skipped and the command is printed,
 * unless `--fill` asks this run to fill it first. `--quick`: smaller runs of every step (plumbing,
 * not figures; it accepts a smaller filled database). `--only`: the steps named (scale, audit,
 * governed, approval, demo, gateway, rollback, ingest). `--baseline`: bench:scale measures that
 * commit too, without migration 0009's indexes.
 *
 * Each bench writes its headline figures as JSON lines `{figure, value, unit, goal, met}` to the file
 * FACTORY_BENCH_SUMMARY names (bench/summary.ts); `--summary-out` keeps that file (default: a
 * temporary one).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadEnv } from '../src/config/env.ts';
import { databaseUrl } from '../src/db/connect.ts';
import { stackUp } from '../src/dev/stack.ts';
import { createLogger } from '../src/log.ts';
import { type Figure, readFigures } from './summary.ts';

const STEPS = ['scale', 'audit', 'governed', 'approval', 'demo', 'gateway', 'rollback', 'ingest'] as const;

if (!process.argv.includes('--all')) {
  await import('./lifecycle.ts');
} else {
  const { values } = parseArgs({
    options: {
      all: { type: 'boolean' },
      quick: { type: 'boolean', default: false },
      fill: { type: 'boolean', default: false },
      database: { type: 'string' },
      baseline: { type: 'string' },
      only: { type: 'string' },
      'summary-out': { type: 'string' },
    },
  });
  const only = new Set(values.only ? values.only.split(',') : STEPS);
  for (const s of only) if (!(STEPS as readonly string[]).includes(s)) throw new Error(`--only: one or more of ${STEPS.join(', ')}`);
  const env = loadEnv();
  const owner = new URL(databaseUrl(env));
  owner.pathname = '/factory_bench_1m';
  const url = values.database ?? owner.toString();
  const q = values.quick;
  const here = import.meta.dirname;
  const summaryFile = values['summary-out'] ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-all-')), 'summary.jsonl');
  fs.writeFileSync(summaryFile, '');
  const load = () =>
    os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ');
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`;
  const t00 = performance.now();
  console.log(`machine: ${machine}\nload average at start: ${load()}\nfigures: ${summaryFile}`);

  /** Events in the 1 M database, and its size per million events (figure of issue 12 item 2). */
  const atScale = async (): Promise<{ events: number; bytes: number }> => {
    const c = new pg.Client({ connectionString: url });
    try {
      await c.connect();
      const r = await c.query('SELECT count(*) AS n, pg_database_size(current_database()) AS b FROM audit_events');
      return { events: Number(r.rows[0].n), bytes: Number(r.rows[0].b) };
    } catch {
      return { events: 0, bytes: 0 };
    } finally {
      await c.end().catch(() => undefined);
    }
  };

  // One dev stack for every step: started (or found) here once. The gateway bench measures the
  // gateway's own cost, so the stack's per-caller rate limit (6,000/min by default) must not cap it:
  // a gateway already running with a lower limit makes that bench stop and say so.
  process.env.FACTORY_GATEWAY_RATE_LIMIT ??= '100000000';
  await stackUp({ env, log: createLogger('bench', 'warn') }, { onProgress: (m) => process.stderr.write(`[stack] ${m}\n`) });

  const done: string[] = [];
  const missing: Figure[] = [];
  let failed = 0;
  const run = (name: string, args: string[]) => {
    console.log(`\n=== ${name}: node --import tsx bench/${args.join(' ')}   (load ${load()})`);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, args[0]!), ...args.slice(1)], {
      stdio: 'inherit',
      env: { ...process.env, FACTORY_BENCH_SUMMARY: summaryFile },
    });
    if (r.status !== 0) {
      failed += 1;
      missing.push({ figure: `${name}: the step failed, its figures are missing`, value: NaN, unit: '', goal: `exit ${r.status ?? r.signal}`, met: false });
    }
    done.push(`${name.padEnd(40)} exit ${r.status ?? r.signal}  ${((performance.now() - t0) / 60_000).toFixed(1)} min`);
    return r.status === 0;
  };

  const minEvents = q ? 1 : 1_000_000;
  let scale = await atScale();
  if ((only.has('scale') || only.has('audit')) && scale.events < minEvents && values.fill) {
    run('fill 1 M events', ['fill.ts', '--database', url, '--fresh']);
    scale = await atScale();
  }
  const fillCommand = `npm run bench:fill -- --database ${url} --fresh`;
  if (scale.events >= minEvents) {
    const eventsLabel = scale.events >= 1_000_000 ? `${(scale.events / 1e6).toFixed(2)} M` : String(scale.events);
    const perMillion = (scale.bytes / 2 ** 20) * (1e6 / scale.events);
    fs.appendFileSync(
      summaryFile,
      `${JSON.stringify({ figure: `database size per million events (at ${eventsLabel} events)`, value: Math.round(perMillion), unit: 'MiB', goal: '', met: null })}\n`,
    );
    if (only.has('scale')) {
      run('at 1 M events: trace', [
        'at-scale.ts',
        '--database',
        url,
        ...(q ? ['--samples', '50', '--cli-runs', '3', '--appends', '20'] : []),
        ...(values.baseline ? ['--baseline', values.baseline] : []),
      ]);
    }
    // Appends its checkpoints' events to the same database; the chain stays whole.
    if (only.has('audit'))
      run('at 1 M events: audit verify', ['audit-verify.ts', '--database', url, '--checkpoints', q ? '5' : '20', '--signatures', q ? '50' : '500']);
  } else if (only.has('scale') || only.has('audit')) {
    console.log(`\n=== at 1 M events: skipped, ${url} holds ${scale.events} audit events. Fill it once (≈ 5 min): ${fillCommand}`);
    for (const f of ['traceModel p99 at 1 M events', 'factory trace as a process, p50', 'audit verify / raw SHA-256', 'database size per million events'])
      missing.push({ figure: f, value: NaN, unit: '', goal: `run ${fillCommand}`, met: false });
  }
  if (only.has('governed')) {
    run('governed vs bare; many at once', [
      'governed.ts',
      '--epochs',
      q ? '5' : '20',
      ...(q
        ? ['--runs', '1', '--concurrency', '1,2', '--many', '4', '--many-epochs', '5']
        : ['--runs', '2', '--concurrency', '1,8', '--many', '50', '--many-epochs', '5']),
    ]);
  }
  if (only.has('approval')) run('approval latency', ['approval.ts', ...(q ? ['--lifecycles', '4', '--decisions', '20', '--storm', '100'] : [])]);
  // The gateway bench measures the demo's deployed model through the dev stack's gateway.
  if (only.has('demo') || only.has('gateway')) run('demo (a model served by the gateway)', ['../bin/factory.mjs', 'demo']);
  if (only.has('gateway'))
    run('gateway vs Triton; trace from a request', ['gateway.ts', ...(q ? ['--seconds', '3', '--requests', '20000', '--trace-samples', '50'] : [])]);
  if (only.has('rollback')) run('rollback RTO', ['rollback.ts', '--epochs', '5', '--rollbacks', q ? '4' : '20']);
  // 200 MiB: the hashing ratio is per byte; 1,000 MiB takes ≈ 10 minutes alone (npm run bench:large -- --mb 1000 --skip-evaluate).
  if (only.has('ingest')) run('ingest and certify vs sha256sum', ['large-dataset.ts', '--mb', q ? '20' : '200', '--skip-evaluate']);

  const totalMin = (performance.now() - t00) / 60_000;
  const figures = [...readFigures(summaryFile), ...missing];
  figures.push({ figure: `npm run bench -- --all${q ? ' --quick' : ''}, wall time`, value: totalMin, unit: 'min', goal: '< 20 min', met: totalMin < 20 });
  console.log(`\n=== steps\n${done.join('\n')}`);
  console.log(`\n=== figures (${machine})`);
  const fmt = (v: number) => (!Number.isFinite(v) ? '—' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  console.log(`${'figure'.padEnd(72)} ${'value'.padStart(10)} ${'unit'.padEnd(12)} ${'goal'.padEnd(12)} verdict`);
  for (const f of figures) {
    const verdict = f.met === null ? '' : f.met ? 'OK' : 'MISSED';
    console.log(
      `${f.figure.slice(0, 72).padEnd(72)} ${fmt(f.value).padStart(10)} ${f.unit.slice(0, 12).padEnd(12)} ${f.goal.slice(0, 40).padEnd(12)} ${verdict}`,
    );
  }
  const goals = figures.filter((f) => f.met !== null);
  console.log(`\n${goals.filter((f) => f.met).length} of ${goals.length} goals met; ${failed} step(s) failed; load average at end: ${load()}`);
  process.exitCode = failed ? 1 : 0;
}

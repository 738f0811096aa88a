/**
 * `npm run bench` runs the lifecycle benchmark (bench/lifecycle.ts) with the options given, as it
 * always has. `npm run bench -- --all` runs every benchmark in turn, each in its own process, and
 * prints each one's figures beside its goals (they print them themselves); a summary of exit codes
 * and times ends it. The 1 M-event database is filled first when it holds fewer than a million
 * events (`--database`, default postgres://…/factory_bench_1m on DATABASE_URL's server).
 *
 *   npm run bench -- --all [--quick] [--database URL] [--baseline <git ref>]
 *
 * --quick: smaller runs (trace samples, lifecycles, decisions, rollbacks, a 100 MB ingest) for a shorter pass;
 * --baseline: bench:scale measures that commit's code too, without migration 0009's indexes.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadEnv } from '../src/config/env.ts';
import { databaseUrl } from '../src/db/connect.ts';

if (!process.argv.includes('--all')) {
  await import('./lifecycle.ts');
} else {
  const { values } = parseArgs({
    options: { all: { type: 'boolean' }, quick: { type: 'boolean', default: false }, database: { type: 'string' }, baseline: { type: 'string' } },
  });
  const owner = new URL(databaseUrl(loadEnv()));
  owner.pathname = '/factory_bench_1m';
  const url = values.database ?? owner.toString();
  const q = values.quick;
  const here = import.meta.dirname;
  const events = async () => {
    const c = new pg.Client({ connectionString: url });
    try {
      await c.connect();
      return Number((await c.query('SELECT count(*) AS n FROM audit_events')).rows[0].n);
    } catch {
      return 0;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const steps: Array<[string, string[]]> = [];
  if ((await events()) < 1_000_000) steps.push(['fill 1 M events', ['fill.ts', '--database', url, '--fresh']]);
  steps.push(
    [
      'at 1 M events',
      [
        'at-scale.ts',
        '--database',
        url,
        ...(q ? ['--samples', '100', '--cli-runs', '5', '--appends', '100'] : []),
        ...(values.baseline ? ['--baseline', values.baseline] : []),
      ],
    ],
    ['governed vs bare, many at once', ['governed.ts', '--epochs', '20', ...(q ? ['--runs', '2', '--concurrency', '1,4', '--many', '10'] : [])]],
    ['approval latency', ['approval.ts', ...(q ? ['--lifecycles', '10', '--decisions', '50', '--storm', '200'] : [])]],
    ['lifecycle and trace, empty registry', ['lifecycle.ts', '--n', q ? '2' : '3']],
    // The gateway bench measures the demo's deployed model through the dev stack's gateway.
    ['demo (a model served by the gateway)', ['../bin/factory.mjs', 'demo']],
    ['gateway vs Triton, trace from a request', ['gateway.ts', ...(q ? ['--seconds', '5', '--requests', '100000', '--trace-samples', '100'] : [])]],
    ['rollback RTO', ['rollback.ts', ...(q ? ['--rollbacks', '6', '--epochs', '20'] : ['--epochs', '20'])]],
    ['ingest and certify vs sha256sum', ['large-dataset.ts', '--mb', q ? '100' : '1000', '--skip-evaluate']],
  );
  const done: string[] = [];
  let failed = 0;
  for (const [name, args] of steps) {
    console.log(`\n=== ${name}: node --import tsx bench/${args.join(' ')}`);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, args[0]!), ...args.slice(1)], { stdio: 'inherit' });
    if (r.status !== 0) failed += 1;
    done.push(`${name.padEnd(36)} exit ${r.status ?? r.signal}  ${((performance.now() - t0) / 60_000).toFixed(1)} min`);
  }
  console.log(`\n=== summary\n${done.join('\n')}`);
  process.exitCode = failed ? 1 : 0;
}

import type { Command } from 'commander';
import type { Kpi, KpiReport } from '../domain/kpi.ts';
import { CliError, EXIT, createOutput } from './output.ts';

function figure(k: Kpi): string {
  if (k.value === null) return '—';
  if (k.unit === 'ratio') return `${(k.value * 100).toFixed(1)}%`;
  if (k.unit === 'ms') return `${Math.round(k.value)} ms`;
  return String(k.value);
}

function goalText(k: Kpi): string {
  if (!k.goal) return '';
  const g = k.unit === 'ratio' ? `${(k.goal.value * 100).toFixed(0)}%` : k.unit === 'ms' ? `${k.goal.value} ms` : String(k.goal.value);
  return `${k.goal.op} ${g}`;
}

/** The human table of `factory kpi`: one line per KPI, its counts and goal, then what it broke down into. */
export function renderKpis(r: KpiReport): string {
  const rows = Object.values(r.kpis).map((k) => ({
    k,
    cells: [
      k.title,
      figure(k),
      k.denominator === null ? '' : k.numerator === null ? `n=${k.denominator}` : `${k.numerator}/${k.denominator}`,
      goalText(k),
      k.met === null ? '' : k.met ? 'met' : 'MISSED',
    ],
  }));
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((x) => x.cells[i]!.length)));
  const lines = [`KPIs from ${r.since} to ${r.asOf} (policy ${r.policyDigest.slice(0, 19)}…)`];
  for (const { k, cells } of rows) {
    lines.push(
      cells
        .map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c))
        .join('  ')
        .trimEnd(),
    );
    const detail = Object.entries(k.detail)
      .filter(([, v]) => v !== null && v !== 0)
      .map(([name, v]) => `${name}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : v}`)
      .join(' ');
    if (detail) lines.push(`  ${detail}`);
    if (k.note) lines.push(`  note: ${k.note}`);
  }
  return lines.join('\n');
}

export function registerKpi(program: Command): void {
  program
    .command('kpi')
    .description(
      'the KPI table from recorded facts: lineage completeness, certified artifact rate in production, signed artifact coverage, audit log completeness (registry vs Temporal history), approval SLA adherence, rollback time, inference p95, policy violations',
    )
    .option('--since <when>', 'start of the window: an ISO date (2026-11-01) or date-time, or 30d / 12h before now', '30d')
    .option('--model <name>', "only this model's facts")
    .option('--no-history', 'skip the audit log completeness cross-check against Temporal histories (that KPI is then null)')
    .option('--json', 'print JSON')
    .action(async (opts: { since: string; model?: string; history: boolean; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const { parseSince, KpiInputError } = await import('../kpi/window.ts');
      const now = new Date();
      let since: Date;
      try {
        since = parseSince(opts.since, now);
      } catch (err) {
        if (err instanceof KpiInputError) throw new CliError(err.message, EXIT.usage);
        throw err;
      }
      if (opts.model !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(opts.model))
        throw new CliError('--model: a model name (letters, digits, _ . -, at most 128)', EXIT.usage);
      const scope = { since, now, ...(opts.model ? { model: opts.model } : {}) };
      const [{ withDb }, { computeKpis }, { loadPolicyPack, policyPackPath }] = await Promise.all([
        import('./context.ts'),
        import('../kpi/kpis.ts'),
        import('../policy/pack.ts'),
      ]);
      const policy = loadPolicyPack(policyPackPath());
      const report = await withDb(async (db, env) => {
        if (!opts.history) return computeKpis(db, { ...scope, policy });
        // Histories as `audit verify --history` reads them: exported objects, else live (none when Temporal is down).
        const [{ createS3 }, { connectClient }] = await Promise.all([import('../storage/s3.ts'), import('../temporal.ts')]);
        const s3 = createS3(env);
        const client = await connectClient(env).catch(() => undefined);
        try {
          return await computeKpis(db, { ...scope, policy, histories: { s3, client } });
        } finally {
          s3.destroy();
          await client?.connection.close();
        }
      });
      out.result(report, renderKpis);
    });
}

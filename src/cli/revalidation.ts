import type { Command } from 'commander';
import type { RevalidationSweepReport } from '../domain/revalidation.ts';
import type { RevalidationReviewRow } from '../inventory/revalidation.ts';
import { CliError, EXIT, createOutput } from './output.ts';

const MODEL_NAME = /^[a-z][a-z0-9_-]{1,62}$/;

function renderSweep(r: RevalidationSweepReport): string {
  return [
    `revalidation sweep ${r.at}: ${r.due} version(s) due, ${r.opened.length} review(s) opened, ${r.existing.length} already open or decided${r.truncated ? ' (more than one run opens: the next goes on)' : ''}`,
    ...r.opened.map((id) => `  opened ${id}  (decide: factory approve ${id} --as <validator> --role validator)`),
    ...r.existing.map((id) => `  exists ${id}`),
  ].join('\n');
}

function renderReviews(rows: RevalidationReviewRow[]): string {
  if (rows.length === 0) return 'no revalidation reviews';
  const day = (iso: string | null) => (iso ? iso.slice(0, 19).replace('T', ' ') : '—');
  return rows
    .map(
      (r) =>
        `${r.model}@${r.version}  ${r.outcome.toUpperCase()}  tier=${r.riskTier}  due ${day(r.dueAt)}  opened ${day(r.openedAt)}` +
        (r.outcome === 'open' ? `  deadline ${day(r.deadline)}  waiting for ${r.requiredRoles.join(', ')}` : `  decided ${day(r.decidedAt)}`) +
        `\n  ${r.workflowId}` +
        (r.decidedBy.length ? `\n  by ${r.decidedBy.map((d) => `${d.approver} (${d.role})`).join(', ')}` : '') +
        (r.reason ? `\n  ${r.reason}` : ''),
    )
    .join('\n');
}

export function registerRevalidation(program: Command): void {
  const revalidation = program
    .command('revalidation')
    .description('periodic revalidation (SR 11-7): a scheduled sweep opens a review when a version’s validation falls due; a validator decides it');
  revalidation
    .command('schedule')
    .description('run the revalidation sweep (workflow revalidationSweep) on a Temporal Schedule `revalidation-sweep` (created, or updated when it exists)')
    .option('--every <interval>', 'how often: minutes, hours or days, e.g. 1d, 12h, 30m (1m to 366d)', '1d')
    .option('--json', 'print JSON: {scheduleId, created, every}')
    .action(async (opts: { every: string; json?: boolean }) => {
      const { revalidationEveryOk } = await import('../domain/revalidation.ts');
      if (!revalidationEveryOk(opts.every))
        throw new CliError(`--every must be minutes, hours or days from 1m to 366d, e.g. 1d (got ${JSON.stringify(opts.every.slice(0, 40))})`, EXIT.usage);
      const [{ withTemporal }, { scheduleRevalidation }] = await Promise.all([import('./context.ts'), import('../lifecycle/revalidation.ts')]);
      const res = await withTemporal((client, env) => scheduleRevalidation(client, { every: opts.every, taskQueuePrefix: env.FACTORY_TASK_QUEUE_PREFIX }));
      createOutput(!!opts.json).result(
        { ...res, every: opts.every },
        (r) =>
          `${r.created ? 'created' : 'updated'} schedule ${r.scheduleId}: the revalidation sweep every ${r.every} (see it: temporal schedule describe --schedule-id ${r.scheduleId})`,
      );
    });
  revalidation
    .command('run')
    .description('sweep now as the schedule does: open a review for each version due (one per version and due date)')
    .option('--model <name>', 'only this model')
    .option('--json', 'print JSON: {at, due, opened: [workflowId], existing: [workflowId], truncated}')
    .action(async (opts: { model?: string; json?: boolean }) => {
      if (opts.model !== undefined && !MODEL_NAME.test(opts.model))
        throw new CliError('--model: lowercase letters, digits, - and _, starting with a letter', EXIT.usage);
      const [{ withTemporal }, { sweepRevalidationsNow }] = await Promise.all([import('./context.ts'), import('../lifecycle/revalidation.ts')]);
      const report = await withTemporal((client, env) =>
        sweepRevalidationsNow(client, opts.model ? { modelName: opts.model } : {}, env.FACTORY_TASK_QUEUE_PREFIX),
      );
      createOutput(!!opts.json).result(report, renderSweep);
    });
  revalidation
    .command('status [model@version]')
    .description('revalidation reviews, newest first: open (waiting for a validator), revalidated, failed or timed-out')
    .option('--model <name>', 'only this model')
    .option('--limit <n>', 'at most this many (1 to 1000)', '100')
    .option(
      '--json',
      'print JSON: {reviews: [{workflowId, model, version, riskTier, dueAt, lastValidatedAt, requiredRoles, deadline, openedAt, outcome, decidedAt, decidedBy, reason}]}',
    )
    .action(async (ref: string | undefined, opts: { model?: string; limit: string; json?: boolean }) => {
      const { parseVersionRef } = await import('../domain/retirement.ts');
      let filter: { model?: string; version?: number } = {};
      if (ref) {
        const parsed = parseVersionRef(ref);
        if (!parsed) throw new CliError(`expected <model>@<version>, e.g. wdbc@3 (got ${JSON.stringify(ref.slice(0, 80))})`, EXIT.usage);
        filter = { model: parsed.modelName, version: parsed.version };
      } else if (opts.model !== undefined) {
        if (!MODEL_NAME.test(opts.model)) throw new CliError('--model: lowercase letters, digits, - and _, starting with a letter', EXIT.usage);
        filter = { model: opts.model };
      }
      const limit = Number(opts.limit);
      if (!/^[1-9]\d{0,3}$/.test(opts.limit) || limit > 1000) throw new CliError('--limit: a whole number from 1 to 1000', EXIT.usage);
      const [{ withDb }, { revalidationReviews }] = await Promise.all([import('./context.ts'), import('../inventory/revalidation.ts')]);
      const reviews = await withDb((db) => revalidationReviews(db, { ...filter, limit }));
      createOutput(!!opts.json).result({ reviews }, (r) => renderReviews(r.reviews));
    });
}

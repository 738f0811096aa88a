import type { Command } from 'commander';
import type { LegalHoldInput, LegalHoldResult, RetentionReport } from '../domain/governance.ts';
import { legalHoldInputSchema } from '../domain/governance.ts';
import { withTemporal } from './context.ts';
import { CliError, EXIT, createOutput } from './output.ts';

/** Refusal types of a hold action (the workflow's ApplicationFailure type): exit 4, with what to do next. */
const NEXT: Record<string, string> = {
  SamePrincipal: 'ask a different principal holding the compliance or legal role to release it (--as)',
  NotAuthorised: 'act as a principal of the policy pack holding the compliance or legal role (--as)',
  NoSuchHold: 'list the cases with `SELECT case_id FROM legal_holds` as factory_reader, or check the case id',
  HoldConflict: 'use a new case id for another model or dataset, or for a case already released',
  NothingToHold: 'check the model or dataset name: `npx factory trace <model>@<version>` lists its records',
  HoldTooLarge: 'hold the case’s datasets and models one by one',
};

async function runHold(input: unknown, json: boolean): Promise<void> {
  const parsed = legalHoldInputSchema.safeParse(input);
  if (!parsed.success) throw new CliError(parsed.error.issues.map((i) => `--${i.path.join('.') || 'input'}: ${i.message}`).join('; '), EXIT.usage);
  const out = createOutput(json);
  const result = await withTemporal(async (client, env) => {
    const { holdAction } = await import('../lifecycle/governance.ts');
    const { WorkflowFailedError } = await import('@temporalio/client');
    const { rootCause } = await import('../lifecycle/client.ts');
    try {
      return await holdAction(client, parsed.data as LegalHoldInput, env.FACTORY_TASK_QUEUE_PREFIX);
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const cause = rootCause(err);
      const next = NEXT[cause.type];
      if (next) {
        if (json) out.result({ caseId: parsed.data.caseId, action: parsed.data.action, refused: true, type: cause.type, reason: cause.message }, () => '');
        throw new CliError(`${cause.type}: ${cause.message}`, EXIT.refused, next);
      }
      throw new CliError(`${cause.type}: ${cause.message}`, EXIT.failure);
    }
  });
  out.result(result, (r: LegalHoldResult) =>
    r.action === 'place'
      ? `legal hold ${r.caseId} ${r.existing ? 'already placed' : 'placed'} by ${r.by} on ${'model' in r.scope ? `model ${r.scope.model}` : `dataset ${r.scope.dataset}`}: ${r.objects} object version(s) under S3 legal hold`
      : `legal hold ${r.caseId} ${r.existing ? 'already released' : 'released'} by ${r.by}: lifted from ${r.objects} object version(s)${r.stillHeld ? `, ${r.stillHeld} still held by another case` : ''}`,
  );
}

function renderReport(r: RetentionReport): string {
  const head = `retention ${r.mode === 'delete' ? 'sweep' : 'report'} ${r.at}${r.keyPrefix ? ` (keys under ${r.keyPrefix})` : ''}: ${r.scanned} object version(s) scanned${r.truncated ? ' (stopped at the cap: the next sweep goes on)' : ''}, ${r.deleted} deleted`;
  const rows = r.groups.map(
    (g) =>
      `  ${g.recordType.padEnd(12)} ${g.classification.padEnd(10)} ${String(g.objects).padStart(7)} objects ${String(g.due).padStart(6)} due ${String(g.held).padStart(6)} held (${g.heldPastRetention} past retention) ${String(g.deleted).padStart(6)} deleted`,
  );
  return [head, '  record type  class      ', ...rows].join('\n');
}

async function runSweep(mode: 'report' | 'delete', keyPrefix: string | undefined, json: boolean): Promise<void> {
  const { retentionSweepInputSchema } = await import('../domain/governance.ts');
  const parsed = retentionSweepInputSchema.safeParse({ mode, ...(keyPrefix ? { keyPrefix } : {}) });
  if (!parsed.success) throw new CliError(`--prefix: ${parsed.error.issues[0]?.message ?? 'invalid'}`, EXIT.usage);
  const report = await withTemporal(async (client, env) => {
    const { sweepNow } = await import('../lifecycle/governance.ts');
    return sweepNow(client, parsed.data, env.FACTORY_TASK_QUEUE_PREFIX);
  });
  createOutput(json).result(report, renderReport);
}

export function registerGovernance(program: Command): void {
  const hold = program.command('hold').description('legal holds: every object of a model or dataset under S3 legal hold, its registry rows frozen');
  hold
    .command('place')
    .description('place a legal hold (workflow legalHold); exit 0 placed, 4 refused, 2 usage')
    .requiredOption('--case <id>', 'the case id (docket, matter number)')
    .option('--model <name>', 'hold every version of this model and the data it was trained on')
    .option('--dataset <name>', 'hold every version of this dataset')
    .requiredOption('--as <principal>', 'who places it: a principal of the policy pack with the compliance or legal role')
    .requiredOption('--reason <text>', 'why (at most 1000 characters)')
    .option('--json', 'print JSON: {caseId, action, by, scope, objects, existing}')
    .action(async (o: { case: string; model?: string; dataset?: string; as: string; reason: string; json?: boolean }) => {
      if (!!o.model === !!o.dataset) throw new CliError('name exactly one of --model and --dataset', EXIT.usage);
      await runHold({ action: 'place', caseId: o.case, scope: o.model ? { model: o.model } : { dataset: o.dataset }, by: o.as, reason: o.reason }, !!o.json);
    });
  hold
    .command('release')
    .description('release a legal hold: only a principal other than the one who placed it; exit 0 released, 4 refused, 2 usage')
    .requiredOption('--case <id>', 'the case id')
    .requiredOption('--as <principal>', 'who releases it: a different principal with the compliance or legal role')
    .requiredOption('--reason <text>', 'why (at most 1000 characters)')
    .option('--json', 'print JSON: {caseId, action, by, scope, objects, stillHeld, existing}')
    .action(async (o: { case: string; as: string; reason: string; json?: boolean }) => {
      await runHold({ action: 'release', caseId: o.case, by: o.as, reason: o.reason }, !!o.json);
    });

  const retention = program.command('retention').description('the retention job: what is due by record type and classification, and the sweep that deletes it');
  retention
    .command('report')
    .description('report what is due (retain-until passed, no legal hold), held and kept; deletes nothing')
    .option('--prefix <key>', 'only objects whose key starts with this')
    .option(
      '--json',
      'print JSON: {sweepId, mode, at, scanned, truncated, groups: [{recordType, classification, objects, bytes, due, held, heldPastRetention, deleted}], deleted, tombstones}',
    )
    .action(async (o: { prefix?: string; json?: boolean }) => runSweep('report', o.prefix, !!o.json));
  retention
    .command('run')
    .description('sweep now as the schedule does: delete what is due, leaving a tombstone for each')
    .option('--prefix <key>', 'only objects whose key starts with this')
    .option('--json', 'print JSON (as report)')
    .action(async (o: { prefix?: string; json?: boolean }) => runSweep('delete', o.prefix, !!o.json));
}

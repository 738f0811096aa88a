import type { Command } from 'commander';
import type { LegalHoldInput, LegalHoldResult, RetentionReport } from '../domain/governance.ts';
import { legalHoldInputSchema } from '../domain/governance.ts';
import os from 'node:os';
import path from 'node:path';
import { withDb, withTemporal } from './context.ts';
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

export function registerDatasetRead(program: Command): void {
  const dataset = program.command('dataset').description('certified datasets outside a lifecycle');
  dataset
    .command('read <name>')
    .description(
      'copy a certified dataset into a new file (mode 0600); the read (who, why, which version, its classification) is recorded first in the audit trail',
    )
    .requiredOption('--purpose <text>', 'why you read it (recorded; 3 to 500 characters, no control characters)')
    .requiredOption('--out <file>', 'a new file to write (an existing one is refused)')
    .option('--version <manifestDigest>', 'the version (its manifest digest); default: the newest')
    .option('--as <who>', 'who reads (recorded; default: this user@host)')
    .option('--json', 'print JSON: {read: {eventId, reader, purpose, at}, dataset, manifestDigest, classification, object, out, bytes, sha256}')
    .action(async (name: string, o: { purpose: string; out: string; version?: string; as?: string; json?: boolean }) => {
      const { READ_PURPOSE, DatasetReadRefused, readCertifiedDataset } = await import('../datasets/read-log.ts');
      if (!READ_PURPOSE.test(o.purpose)) throw new CliError('--purpose must be 3 to 500 characters without control characters', EXIT.usage);
      const reader = o.as ?? `${os.userInfo().username}@${os.hostname()}`;
      if (!READ_PURPOSE.test(reader) || reader.length > 200) throw new CliError('--as must be 3 to 200 characters without control characters', EXIT.usage);
      if (!/^[\w.-]{1,128}$/.test(name)) throw new CliError('<name>: letters, digits, ., _ and - (at most 128)', EXIT.usage);
      if (o.version && !/^sha256:[0-9a-f]{64}$/.test(o.version)) throw new CliError('--version: a manifest digest sha256:<64 hex>', EXIT.usage);
      const { createS3 } = await import('../storage/s3.ts');
      const result = await withDb(async (db, env) => {
        const s3 = createS3(env);
        try {
          return await readCertifiedDataset(db, s3, {
            name,
            reader,
            purpose: o.purpose,
            out: path.resolve(o.out),
            ...(o.version ? { manifestDigest: o.version } : {}),
          });
        } catch (err) {
          if (err instanceof DatasetReadRefused) {
            const code = err.kind === 'not-found' ? EXIT.notFound : err.kind === 'integrity' ? EXIT.tampered : EXIT.usage;
            throw new CliError(err.message, code, err.kind === 'not-found' ? 'list the datasets with `npx factory trace <model>@<version>`' : undefined);
          }
          throw err;
        } finally {
          s3.destroy();
        }
      }, 'worker');
      createOutput(!!o.json).result(
        result,
        (r) =>
          `read recorded: ${r.read.eventId} by ${r.read.reader} at ${r.read.at} for "${r.read.purpose}"\n${r.dataset} (${r.classification}) ${r.manifestDigest}: ${r.bytes} bytes to ${r.out} (${r.sha256})`,
      );
    });
}

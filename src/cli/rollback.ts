import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Command } from 'commander';
import { type DrillOutcome, type RollbackOutcome, ROLLBACK_WORKFLOW, drillInputSchema, rollbackInputSchema, rollbackWorkflowId } from '../domain/rollback.ts';
import { failureMeaning } from '../domain/failure-types.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { withTemporal } from './context.ts';
import { strictInt } from './options.ts';
import { CliError, EXIT, createOutput } from './output.ts';

/** A unique, sortable tail for workflow ids: the time in base 36 and 4 random bytes. */
export function uniqueSuffix(): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

export function defaultActor(): string {
  return `${os.userInfo().username}@${os.hostname()}`;
}

function usageFromZod(issues: Array<{ path: PropertyKey[]; message: string }>): string {
  return issues.map((i) => `${i.path.map(String).join('.') || 'input'}: ${i.message}`).join('; ');
}

export function registerRollback(program: Command): void {
  program
    .command('rollback <model>')
    .description('serve the previous approved and deployed version again (verified), switch the gateway, mark the current one rolled-back, measure the RTO')
    .option(
      '--to <version>',
      'the version to serve again (it must have been deployed before and not be retired); default: the newest deployed version below the live one',
      strictInt(1),
    )
    .requiredOption('--reason <text>', 'why (recorded; 3 to 1000 characters, no control characters)')
    .option('--as <who>', 'who asks (recorded; default: this user@host)')
    .option('--json', 'print JSON')
    .action(async (model: string, opts: { to?: number; reason: string; as?: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const parsed = rollbackInputSchema.safeParse({
        modelName: model,
        ...(opts.to !== undefined ? { toVersion: opts.to } : {}),
        reason: opts.reason,
        requestedBy: opts.as ?? defaultActor(),
        trigger: 'manual',
      });
      if (!parsed.success) throw new CliError(`invalid rollback: ${usageFromZod(parsed.error.issues)}`, EXIT.usage);
      const { WorkflowFailedError } = await import('@temporalio/client');
      const { rootCause, renderCause } = await import('../lifecycle/client.ts');
      await withTemporal(async (client, env) => {
        const workflowId = rollbackWorkflowId(parsed.data.modelName, uniqueSuffix());
        out.progress(`rolling back ${parsed.data.modelName} (${workflowId})…`);
        const handle = await client.workflow.start(ROLLBACK_WORKFLOW, {
          workflowId,
          taskQueue: `${env.FACTORY_TASK_QUEUE_PREFIX}${TASK_QUEUES.control}`,
          args: [parsed.data],
        });
        let outcome: RollbackOutcome;
        try {
          outcome = (await handle.result()) as RollbackOutcome;
        } catch (err) {
          if (!(err instanceof WorkflowFailedError)) throw err;
          const cause = rootCause(err.cause ?? err);
          const refused = failureMeaning(cause.type) === 'refused';
          if (opts.json) {
            process.stdout.write(
              `${JSON.stringify({ outcome: refused ? 'refused' : 'failed', workflowId, modelName: parsed.data.modelName, failure: cause }, null, 2)}\n`,
            );
            throw new CliError(`rollback ${refused ? 'refused' : 'failed'}: ${renderCause(cause)}`, refused ? EXIT.refused : EXIT.failure);
          }
          throw new CliError(
            `rollback ${refused ? 'refused' : 'failed'}: ${renderCause(cause)}`,
            refused ? EXIT.refused : EXIT.failure,
            refused
              ? 'see `factory gateway routes` and `factory trace <model>@<version>` for what is served and deployed'
              : `inspect it: temporal workflow show -w ${workflowId}`,
          );
        }
        out.result({ outcome: 'rolled-back', workflowId, ...outcome }, (r) =>
          [
            `rolled back ${r.modelName}: v${r.fromVersion} → v${r.toVersion} (${r.artifactDigest})`,
            `  RTO ${(r.rtoMs / 1000).toFixed(2)} s (command → first correct inference, seen via ${r.verifiedVia}); switched at ${r.switchedAt}`,
            `  by ${r.requestedBy}: ${r.reason}`,
            `  v${r.fromVersion} is rolled-back in the registry; serve it again with: factory rollback ${r.modelName} --to ${r.fromVersion} --reason …`,
          ].join('\n'),
        );
      });
    });

  const drill = program.command('drill').description('rollback drills: a rollback and roll-forward rehearsed on a shadow deployment, never live traffic');
  drill
    .command('run <model>')
    .description(
      'run one drill now: load the live and previous versions as <model>--shadow, roll back and forward on its own gateway route, record RTO and verdict',
    )
    .option('--reason <text>', 'why (recorded; 3 to 1000 characters)', 'rollback drill')
    .option('--as <who>', 'who asks (recorded; default: this user@host)')
    .option('--json', 'print JSON')
    .action(async (model: string, opts: { reason: string; as?: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const parsed = drillInputSchema.safeParse({ modelName: model, requestedBy: opts.as ?? defaultActor(), reason: opts.reason });
      if (!parsed.success) throw new CliError(`invalid drill: ${usageFromZod(parsed.error.issues)}`, EXIT.usage);
      const { runDrill } = await import('../lifecycle/drills.ts');
      const outcome: DrillOutcome = await withTemporal(async (client, env) => {
        out.progress(`drilling a rollback of ${parsed.data.modelName} on ${parsed.data.modelName}--shadow…`);
        return runDrill(client, { input: parsed.data, unique: uniqueSuffix(), taskQueuePrefix: env.FACTORY_TASK_QUEUE_PREFIX });
      });
      out.result(outcome, (r) =>
        [
          `drill ${r.drillId}: ${r.verdict.toUpperCase()}`,
          `  ${r.shadowModel}: v${r.liveVersion ?? '?'} → v${r.previousVersion ?? '?'} → v${r.liveVersion ?? '?'}`,
          ...(r.rtoMs !== undefined
            ? [`  RTO ${(r.rtoMs / 1000).toFixed(2)} s (policy: ${r.policyRtoSeconds ?? '?'} s); roll forward ${((r.forwardMs ?? 0) / 1000).toFixed(2)} s`]
            : []),
          ...(r.reason ? [`  finding: ${r.reason}`] : []),
          ...(r.evidenceUri ? [`  evidence ${r.evidenceUri}`] : []),
        ].join('\n'),
      );
      if (outcome.verdict !== 'passed') process.exitCode = EXIT.failure;
    });
  drill
    .command('schedule <model>')
    .description('run a drill of <model> on a Temporal Schedule (created, or updated when it exists)')
    .requiredOption('--every <interval>', 'how often: hours or days, e.g. 30d, 12h (1h to 366d)')
    .option('--as <who>', "who schedules (recorded as the drills' requester; default: this user@host)")
    .option('--json', 'print JSON')
    .action(async (model: string, opts: { every: string; as?: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const { drillEveryHours, scheduleDrill } = await import('../lifecycle/drills.ts');
      if (drillEveryHours(opts.every) === undefined)
        throw new CliError(`--every must be hours or days from 1h to 366d, e.g. 30d (got ${JSON.stringify(opts.every.slice(0, 40))})`, EXIT.usage);
      const parsed = drillInputSchema.safeParse({ modelName: model, requestedBy: opts.as ?? defaultActor() });
      if (!parsed.success) throw new CliError(`invalid drill: ${usageFromZod(parsed.error.issues)}`, EXIT.usage);
      const res = await withTemporal((client, env) =>
        scheduleDrill(client, {
          modelName: parsed.data.modelName,
          every: opts.every,
          requestedBy: parsed.data.requestedBy,
          taskQueuePrefix: env.FACTORY_TASK_QUEUE_PREFIX,
        }),
      );
      out.result(
        { ...res, modelName: parsed.data.modelName, every: opts.every },
        (r) =>
          `${r.created ? 'created' : 'updated'} schedule ${r.scheduleId}: a rollback drill of ${r.modelName} every ${r.every} (see it: temporal schedule describe --schedule-id ${r.scheduleId})`,
      );
    });
}

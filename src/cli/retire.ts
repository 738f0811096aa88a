import type { Command } from 'commander';
import { MODEL_STATE_TRANSITIONS } from '../domain/model-state.ts';
import { type RetirementOutcome, parseVersionRef, retirementInputSchema } from '../domain/retirement.ts';
import { renderCause } from '../lifecycle/client.ts';
import { retirementResult, startRetirement } from '../lifecycle/retirement.ts';
import { withDb, withTemporal } from './context.ts';
import { CliError, EXIT, createOutput, exitForFailure } from './output.ts';

export function renderRetirement(o: RetirementOutcome): string {
  if (o.outcome === 'rejected') return `not retired ${o.modelName}@${o.version}: ${o.reason}`;
  const extended = o.retention.filter((r) => r.outcome === 'extended').length;
  return [
    `retired ${o.modelName}@${o.version} at ${o.retiredAt}`,
    `  gateway   ${o.routeRetired ? 'the model answers 410 Gone with the reason' : `requests naming version ${o.version} answer 410 Gone (the model's route serves another version)`}`,
    `  triton    ${o.unloaded ? 'unloaded' : 'was not serving it'}`,
    `  evidence  ${o.retention.length} object(s) locked from the retirement date (${extended} extended, ${o.retention.length - extended} already locked as long or missing)`,
    ...o.retention.map((r) => `    ${r.role.padEnd(10)} ${r.outcome.padEnd(8)} until ${r.retainUntil}  ${r.uri}`),
  ].join('\n');
}

export function registerRetire(program: Command): void {
  program
    .command('retire <model@version>')
    .description(
      'retire a model version (workflow modelRetirement): approved per its risk tier like its release, then the registry says retired, the gateway answers 410 with the reason, Triton unloads it and evidence retention runs from the retirement date (exit 0 started or retired, 4 refused, 5 rejected, 6 not found, 1 failed)',
    )
    .requiredOption('--reason <text>', `why (recorded and shown by the gateway; 3 to 1000 characters, no control characters)`)
    .requiredOption('--as <email>', 'who asks for the retirement (recorded; may not approve it)')
    .option('--wait', 'wait for the outcome (exit 0 retired, 5 rejected or timed out)')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts) => {
      const out = createOutput(!!opts.json);
      const target = parseVersionRef(ref);
      if (!target)
        throw new CliError(
          `"${ref}" does not name one model version`,
          EXIT.usage,
          'name it as model@version, e.g. `npx factory retire credit-risk@3 --reason …`',
        );
      const parsed = retirementInputSchema.safeParse({ ...target, reason: opts.reason, requestedBy: opts.as });
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const option = issue?.path[0] === 'requestedBy' ? '--as' : '--reason';
        throw new CliError(`invalid ${option}: ${issue?.message}`, EXIT.usage, `fix ${option}`);
      }
      const input = parsed.data;
      // The registry answers what is refused before anything starts (the workflow checks again).
      const mv = await withDb((db) =>
        db
          .selectFrom('model_versions')
          .select(['state', 'risk_tier'])
          .where('model_name', '=', input.modelName)
          .where('version', '=', input.version)
          .executeTakeFirst(),
      );
      if (!mv) throw new CliError(`no model version ${ref} in the registry`, EXIT.notFound, `see its versions: npx factory trace ${input.modelName}`);
      if (!MODEL_STATE_TRANSITIONS[mv.state].includes('retired')) {
        const reason =
          mv.state === 'retired'
            ? `${ref} is already retired`
            : `${ref} is ${mv.state}: only an approved, deployed or rolled-back version is retired (a version still in its lifecycle ends with it)`;
        if (out.json) out.result({ modelName: input.modelName, version: input.version, state: mv.state, refused: true, reason }, () => '');
        throw new CliError(reason, EXIT.refused, `see where it stands: npx factory trace ${ref}`);
      }
      const result = await withTemporal(async (client, env) => {
        const started = await startRetirement(client, input, { taskQueuePrefix: env.FACTORY_TASK_QUEUE_PREFIX });
        out.progress(
          `${started.existing ? 'found the running' : 'started'} retirement ${started.workflowId} (${mv.risk_tier} risk: approved as its tier requires)`,
        );
        if (!opts.wait) return { started };
        return { started, ...(await retirementResult(client, started.workflowId)) };
      });
      const base = { ...result.started, modelName: input.modelName, version: input.version };
      if ('failure' in result && result.failure) {
        const f = result.failure;
        if (out.json) out.result({ ...base, outcome: 'failed', failure: f }, () => '');
        const code = exitForFailure(f.type);
        throw new CliError(
          `retirement ${base.workflowId} ended without retiring: ${renderCause(f)}`,
          code,
          `inspect it: npx factory status ${base.workflowId}`,
        );
      }
      if ('outcome' in result && result.outcome) {
        const o = result.outcome;
        out.result({ ...base, ...o }, () => renderRetirement(o));
        if (o.outcome === 'rejected') process.exitCode = EXIT.rejected;
        return;
      }
      out.result(
        base,
        (b) =>
          `${b.existing ? 'already started' : 'started'}: ${b.workflowId}\n` +
          `it waits for approval as ${input.modelName}'s ${mv.risk_tier}-risk tier requires: npx factory status ${b.workflowId}\n` +
          `approve: npx factory approve ${b.workflowId} --as <approver> --role <role>`,
      );
    });
}

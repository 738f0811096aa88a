import type { Command } from 'commander';
import { type PromotionOutcome, promotionInputSchema } from '../domain/promotion.ts';
import { parseVersionRef } from '../domain/retirement.ts';
import { renderCause } from '../lifecycle/client.ts';
import { promotionResult, startPromotion } from '../lifecycle/promotion.ts';
import { withTemporal } from './context.ts';
import { CliError, EXIT, createOutput, exitForFailure } from './output.ts';

export function renderPromotion(o: PromotionOutcome): string {
  return [
    `promoted ${o.modelName}@${o.version} from ${o.fromSite} to ${o.toSite} for ${o.purpose} at ${o.promotedAt}`,
    `  artifact    ${o.artifact.digest}  ${o.artifact.to}`,
    `  provenance  ${o.provenance.digest}  ${o.provenance.to}  signed by ${o.provenance.keyId}  verified: yes`,
  ].join('\n');
}

const OPTION_OF: Record<string, string> = { toSite: '--to-site', purpose: '--purpose', requestedBy: '--as' };

export function registerPromote(program: Command): void {
  program
    .command('promote <model@version>')
    .description(
      "promote a version's artifact and signed provenance to another site (workflow artifactPromotion): provenance and artifact digest re-verified, copied under Object Lock, recorded with its purpose (exit 0 promoted, 4 refused, 6 not found, 7 provenance or artifact tampered, 1 failed)",
    )
    .requiredOption('--to-site <site>', "a site named in the policy pack's sites")
    .requiredOption('--purpose <purpose>', "why: one of the policy pack's transferPurposes (recorded)")
    .requiredOption('--as <email>', 'who asks for the promotion (recorded)')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts) => {
      const out = createOutput(!!opts.json);
      const target = parseVersionRef(ref);
      if (!target)
        throw new CliError(`"${ref}" does not name one model version`, EXIT.usage, 'name it as model@version, e.g. `npx factory promote credit-risk@3 …`');
      const parsed = promotionInputSchema.safeParse({ ...target, toSite: opts.toSite, purpose: opts.purpose, requestedBy: opts.as });
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const option = OPTION_OF[String(issue?.path[0])] ?? 'the arguments';
        throw new CliError(`invalid ${option}: ${issue?.message}`, EXIT.usage, `fix ${option}`);
      }
      const input = parsed.data;
      const result = await withTemporal(async (client, env) => {
        const started = await startPromotion(client, input, { taskQueuePrefix: env.FACTORY_TASK_QUEUE_PREFIX });
        out.progress(`${started.existing ? 'found the running' : 'started'} promotion ${started.workflowId}`);
        return { started, ...(await promotionResult(client, started.workflowId)) };
      });
      const base = { workflowId: result.started.workflowId, modelName: input.modelName, version: input.version, toSite: input.toSite, purpose: input.purpose };
      if ('failure' in result) {
        const f = result.failure;
        if (out.json) out.result({ ...base, outcome: 'refused', failure: f }, () => '');
        const code = exitForFailure(f.type);
        throw new CliError(
          `promotion ${base.workflowId} did not promote: ${renderCause(f)}`,
          code,
          `see the record: npx factory trace ${ref}; the workflow: npx factory status ${base.workflowId}`,
        );
      }
      out.result({ ...base, ...result.outcome }, () => renderPromotion(result.outcome));
    });
}

import type { Command } from 'commander';
import { policyPackPath } from '../policy/pack-path.ts';
import { principalNamesOf } from '../policy/principal-names.ts';
import { renderRequest, traceRequest } from '../trace/request.ts';
import { TraceNotFound, renderTrace, traceModel } from '../trace/trace.ts';
import { withDb } from './context.ts';
import { CliError, EXIT, createOutput } from './output.ts';

// `factory trace`: its own module (not audit.ts's), so that the command loads only what a trace
// needs, not the audit verifiers, the migrations or the S3 SDK (docs/benchmarks.md, "factory trace
// as a process").

/** Principal id → printed name from the pack in force; none (with a warning) when it is broken. */
async function principalNames(): Promise<Array<[string, string]>> {
  const file = policyPackPath();
  const found = await principalNamesOf(file);
  if ('names' in found) return found.names;
  process.stderr.write(`warning: policy pack ${file} unreadable (${found.problem}); approvers are shown by id only\n`);
  return [];
}

export function registerTrace(program: Command): void {
  program
    .command('trace [model]')
    .description('model[@version] back to raw data, exclusions, manifest, commit, image, environment, metrics, approvals, deployment')
    .option('--request <id>', 'start from a gateway request id (x-request-id): the request, the version that answered, its lineage')
    .option('--json', 'print JSON')
    .action(async (ref: string | undefined, opts) => {
      const out = createOutput(!!opts.json);
      // The pack only lends approvers' printed names: a broken one must not hide the trace.
      const names = new Map(await principalNames());
      if (opts.request !== undefined) {
        if (ref !== undefined) throw new CliError('name a model or --request, not both', EXIT.usage);
        try {
          const t = await withDb((db) => traceRequest(db, String(opts.request), names));
          out.result(t, (safe) => [renderRequest(safe), ...(safe.lineage ? [renderTrace(safe.lineage)] : ['(no model version answered)'])].join('\n'));
        } catch (err) {
          if (err instanceof TraceNotFound) throw new CliError(err.message, EXIT.notFound, 'use the x-request-id header the gateway returned');
          throw err;
        }
        return;
      }
      if (ref === undefined) throw new CliError('name a model (model[@version]) or --request <id>', EXIT.usage);
      // Loaded while the registry answers: the live checks (Triton readiness, a HEAD per object).
      const live = import('../trace/live.ts');
      try {
        const { t, env } = await withDb(async (db, env) => ({ t: await traceModel(db, ref, names), env }));
        const probed = await (await live).probeTrace(env, t);
        out.result(probed, (safe) => renderTrace(safe));
      } catch (err) {
        if (err instanceof TraceNotFound) throw new CliError(err.message, EXIT.notFound, 'list models with `npx factory trace <name>` or check the name');
        throw err;
      }
    });
}

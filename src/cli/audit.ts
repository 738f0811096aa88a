import type { Command } from 'commander';
import { verifyAuditChain } from '../audit/verify.ts';
import { loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import { TraceNotFound, renderTrace, traceModel } from '../trace/trace.ts';
import { withDb } from './context.ts';
import { CliError, EXIT, createOutput } from './output.ts';

export function registerAudit(program: Command): void {
  program
    .command('trace <model>')
    .description('model[@version] back to raw data, exclusions, manifest, commit, image, environment, metrics, approvals, deployment')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts) => {
      const out = createOutput(!!opts.json);
      const names = new Map(loadPolicyPack(policyPackPath()).pack.principals.map((p) => [p.id.toLowerCase(), p.name]));
      try {
        const t = await withDb((db) => traceModel(db, ref, names));
        out.result(t, () => renderTrace(t));
      } catch (err) {
        if (err instanceof TraceNotFound) throw new CliError(err.message, EXIT.notFound, 'list models with `npx factory trace <name>` or check the name');
        throw err;
      }
    });

  const audit = program.command('audit').description('the audit trail');
  audit
    .command('verify')
    .description('recompute the hash chain of audit_events; exit 7 and name the first bad row on tampering')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const out = createOutput(!!opts.json);
      const res = await withDb((db) => verifyAuditChain(db));
      out.result(res, () =>
        res.ok
          ? `audit chain intact: ${res.rows} events, head ${res.headHash}`
          : `AUDIT CHAIN BROKEN at seq ${res.firstBad!.seq} (${res.firstBad!.eventId}): ${res.firstBad!.reason}\n${res.rows} events verified before it`,
      );
      if (!res.ok) process.exitCode = EXIT.tampered;
    });
}

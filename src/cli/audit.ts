import type { Command } from 'commander';
import { verifyAuditChain, verifyProjection } from '../audit/verify.ts';
import { loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import { TraceNotFound, renderTrace, traceModel } from '../trace/trace.ts';
import { withDb } from './context.ts';
import { CliError, EXIT, createOutput } from './output.ts';

/** Principal id → printed name from the pack in force; none (with a warning) when it is broken. */
function principalNames(): Array<[string, string]> {
  try {
    return loadPolicyPack(policyPackPath()).pack.principals.map((p) => [p.id.toLowerCase(), p.name]);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? ((err as Error).message.split('\n\n')[0] ?? '').split('\n')[0];
    process.stderr.write(`warning: policy pack ${policyPackPath()} unreadable (${why}); approvers are shown by id only\n`);
    return [];
  }
}

export function registerAudit(program: Command): void {
  program
    .command('trace <model>')
    .description('model[@version] back to raw data, exclusions, manifest, commit, image, environment, metrics, approvals, deployment')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts) => {
      const out = createOutput(!!opts.json);
      // The pack only lends approvers' printed names: a broken one must not hide the trace.
      const names = new Map(principalNames());
      try {
        const t = await withDb((db) => traceModel(db, ref, names));
        out.result(t, (safe) => renderTrace(safe));
      } catch (err) {
        if (err instanceof TraceNotFound) throw new CliError(err.message, EXIT.notFound, 'list models with `npx factory trace <name>` or check the name');
        throw err;
      }
    });

  const audit = program.command('audit').description('the audit trail');
  audit
    .command('verify')
    .description('recompute the hash chain of audit_events, then check the registry against it; exit 7 naming what does not verify')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const out = createOutput(!!opts.json);
      const { chain, projection } = await withDb(async (db) => ({ chain: await verifyAuditChain(db), projection: await verifyProjection(db) }));
      const ok = chain.ok && projection.ok;
      out.result({ ok, chain, projection }, ({ chain, projection }) =>
        [
          chain.ok
            ? `audit chain intact: ${chain.rows} events, head ${chain.headHash}`
            : `AUDIT CHAIN BROKEN at seq ${chain.firstBad!.seq} (${chain.firstBad!.eventId}): ${chain.firstBad!.reason}\n${chain.rows} events verified before it`,
          projection.ok
            ? `registry matches the audit trail: ${projection.checked} rows checked`
            : `REGISTRY DIFFERS FROM THE AUDIT TRAIL in ${projection.mismatches.length} row(s):\n${projection.mismatches.map((m) => `  ${m.table} ${m.id}: ${m.reason}`).join('\n')}`,
        ].join('\n'),
      );
      if (!ok) process.exitCode = EXIT.tampered;
    });
}

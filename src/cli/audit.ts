import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import type { ObjectCheck } from '../audit/objects.ts';
import { type ObjectsResult, verifyAuditChain, verifyObjects, verifyProjection } from '../audit/verify.ts';
import type { Env } from '../config/env.ts';
import type { Database } from '../db/schema.ts';
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

async function checkObjects(db: Kysely<Database>, env: Env): Promise<ObjectsResult> {
  // Loaded only for --objects: the S3 SDK is most of this command's start-up time.
  const { createS3 } = await import('../storage/s3.ts');
  const s3 = createS3(env);
  try {
    return await verifyObjects(db, s3);
  } finally {
    s3.destroy();
  }
}

function renderObjects(o: ObjectsResult): string {
  const bad = o.problems.filter((p) => p.state !== 'unreadable');
  const what = (p: ObjectCheck) =>
    p.state === 'missing'
      ? 'MISSING'
      : p.state === 'different'
        ? `DIFFERENT (is ${p.actual}, recorded ${p.expected})`
        : `UNREADABLE (${p.reason ?? 'no answer'})`;
  return [
    bad.length
      ? `OBJECTS NOT AS RECORDED: ${bad.length} of ${o.checked}`
      : `objects intact: ${o.checked - o.unreadable} of ${o.checked} exist with their recorded sha256`,
    ...o.problems.map((p) => `  ${p.table} ${p.id} ${p.role} ${p.uri}: ${what(p)}`),
  ].join('\n');
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

  const audit = program.command('audit').description('the audit trail');
  audit
    .command('verify')
    .description('recompute the hash chain of audit_events, then check the registry against it; exit 7 naming what does not verify')
    .option('--json', 'print JSON')
    .option('--objects', 'also check that every object the registry references exists in object storage with its recorded sha256 (hashes each)')
    .action(async (opts) => {
      const out = createOutput(!!opts.json);
      const { chain, projection, objects } = await withDb(async (db, env) => ({
        chain: await verifyAuditChain(db),
        projection: await verifyProjection(db),
        objects: opts.objects ? await checkObjects(db, env) : undefined,
      }));
      const ok = chain.ok && projection.ok && (objects?.ok ?? true);
      out.result({ ok, chain, projection, ...(objects ? { objects } : {}) }, ({ chain, projection, objects }) =>
        [
          chain.ok
            ? `audit chain intact: ${chain.rows} events, head ${chain.headHash}`
            : `AUDIT CHAIN BROKEN at seq ${chain.firstBad!.seq} (${chain.firstBad!.eventId}): ${chain.firstBad!.reason}\n${chain.rows} events verified before it`,
          projection.ok
            ? `registry matches the audit trail: ${projection.checked} rows checked`
            : `REGISTRY DIFFERS FROM THE AUDIT TRAIL in ${projection.mismatchCount} row(s)${projection.mismatchCount > projection.mismatches.length ? ` (the first ${projection.mismatches.length} listed)` : ''}:\n${projection.mismatches.map((m) => `  ${m.table} ${m.id}: ${m.reason}`).join('\n')}`,
          ...(objects ? [renderObjects(objects)] : []),
        ].join('\n'),
      );
      if (!ok) process.exitCode = EXIT.tampered;
      // Nothing found wrong, but the store did not answer for some: not a verified trail either.
      else if (objects?.unreadable) process.exitCode = EXIT.unhealthy;
    });
}

import os from 'node:os';
import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import type { ObjectCheck } from '../audit/objects.ts';
import type { AnchoredVerify } from '../audit/anchor.ts';
import { type Finding, TAMPER_NAME, tamperExit } from '../audit/findings.ts';
import { type ObjectsResult, type VerifyResult, verifyAuditChain, verifyObjects, verifyProjection } from '../audit/verify.ts';
import { type SignaturesResult, verifyApprovalSignatures } from '../audit/signatures.ts';
import type { Env } from '../config/env.ts';
import type { Database } from '../db/schema.ts';
import { loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import type { PolicyPack } from '../policy/schema.ts';
import type { HistoryCheckResult } from '../history/verify.ts';
import { withDb, withTemporal } from './context.ts';
import { CliError, EXIT, createOutput } from './output.ts';

/** The packs at hand to check signers against, by digest: the pack in force (when it loads). */
function packsAtHand(): Map<string, PolicyPack> {
  try {
    const loaded = loadPolicyPack(policyPackPath());
    return new Map([[loaded.digest, loaded.pack]]);
  } catch {
    return new Map();
  }
}

function renderSignatures(s: SignaturesResult): string {
  return s.ok
    ? `approval signatures verified: ${s.checked} (${s.againstPack} also against the policy pack their decision recorded; the rest were recorded under a pack not at hand)`
    : `APPROVAL SIGNATURES THAT DO NOT VERIFY: ${s.problems.length}\n${s.problems.map((p) => `  approvals ${p.id} (${p.approver}): ${p.reason}`).join('\n')}`;
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

/** Histories from the exported objects, else live from Temporal (none when it cannot be reached: the exports are still checked). */
async function checkHistories(db: Kysely<Database>, env: Env, workflowId?: string): Promise<HistoryCheckResult> {
  const [{ createS3 }, { verifyHistories }, { connectClient }] = await Promise.all([
    import('../storage/s3.ts'),
    import('../history/verify.ts'),
    import('../temporal.ts'),
  ]);
  const s3 = createS3(env);
  const client = await connectClient(env).catch(() => undefined);
  try {
    return await verifyHistories(db, s3, client, { workflowId });
  } finally {
    s3.destroy();
    await client?.connection.close();
  }
}

function renderHistories(h: HistoryCheckResult): string {
  const bad = h.discrepancies.filter((d) => d.kind !== 'history-unavailable');
  const head = bad.length
    ? `PROJECTION DIFFERS FROM THE HISTORIES: ${bad.length} discrepanc${bad.length === 1 ? 'y' : 'ies'} in ${h.lifecycles} lifecycle(s)`
    : `projection matches the histories: ${h.lifecycles} lifecycle(s), ${h.exportedRuns} exported run(s) (digests verified), ${h.liveRuns} live run(s)`;
  return [head, ...h.discrepancies.map((d) => `  ${d.workflowId} ${d.table} ${d.id}: ${d.kind.toUpperCase()}: ${d.reason}`)].join('\n');
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('the audit trail');
  audit
    .command('verify')
    .description(
      'recompute the hash chain of audit_events and hold it against the signed checkpoints in the evidence bucket, then check the registry and re-verify every stored approval signature; ' +
        'exit 7 chain broken (row edited or deleted) or registry/objects differ or a signature does not verify, 8 tail truncated, 9 chain rewritten, 10 checkpoint invalid',
    )
    .option('--json', 'print JSON')
    .option('--objects', 'also check that every object the registry references exists in object storage with its recorded sha256 (hashes each)')
    .option('--no-checkpoints', 'do not read the signed checkpoints (the chain alone: blind to tail truncation and recomputation)')
    .option('--history', "also cross-check the registry against each lifecycle's Temporal history (exported objects by digest, else live)")
    .option('--workflow <id>', 'with --history: only this lifecycle')
    .option(
      '--full',
      "rebuild every event's canonical text from its columns here, instead of taking the database server's comparison of the columns with the stored hashed text (slower; for an examiner who does not trust the server)",
    )
    .action(async (opts: { json?: boolean; objects?: boolean; checkpoints: boolean; history?: boolean; workflow?: string; full?: boolean }) => {
      const out = createOutput(!!opts.json);
      const { chain, checkpoints, findings, anchorError, projection, signatures, objects, history } = await withDb(async (db, env) => {
        const full = !!opts.full;
        const anchored = opts.checkpoints ? await anchoredChain(db, env, full) : undefined;
        const chain = anchored && 'chain' in anchored ? anchored.chain : await verifyAuditChain(db, { full });
        return {
          chain,
          checkpoints: anchored && 'checkpoints' in anchored ? anchored.checkpoints : undefined,
          findings:
            anchored && 'findings' in anchored
              ? anchored.findings
              : chain.ok
                ? []
                : [{ kind: 'chain-broken' as const, seq: chain.firstBad!.seq, message: chain.firstBad!.reason }],
          anchorError: anchored && 'error' in anchored ? anchored.error : undefined,
          projection: await verifyProjection(db),
          signatures: await verifyApprovalSignatures(db, packsAtHand()),
          objects: opts.objects ? await checkObjects(db, env) : undefined,
          history: opts.history ? await checkHistories(db, env, opts.workflow) : undefined,
        };
      });
      const historyBad = history ? history.discrepancies.some((d) => d.kind !== 'history-unavailable') : false;
      const ok = findings.length === 0 && projection.ok && signatures.ok && (objects?.ok ?? true) && !historyBad;
      const result = {
        ok,
        findings,
        chain,
        ...(checkpoints ? { checkpoints } : {}),
        ...(anchorError ? { checkpointsUnreadable: anchorError } : {}),
        projection,
        signatures,
        ...(objects ? { objects } : {}),
        ...(history ? { history } : {}),
      };
      out.result(result, (r) =>
        [
          r.chain.ok
            ? `audit chain intact: ${r.chain.rows} events, head ${r.chain.headHash}`
            : `AUDIT CHAIN BROKEN at seq ${r.chain.firstBad!.seq} (${r.chain.firstBad!.eventId}): ${r.chain.firstBad!.reason}\n${r.chain.rows} events verified before it`,
          ...r.findings.filter((f) => f.kind !== 'chain-broken').map(renderFinding),
          ...(r.checkpoints ? [renderCheckpoints(r.checkpoints, r.chain)] : []),
          ...(r.checkpointsUnreadable ? [`checkpoints NOT CHECKED: ${r.checkpointsUnreadable}`] : []),
          r.projection.ok
            ? `registry matches the audit trail: ${r.projection.checked} rows checked`
            : `REGISTRY DIFFERS FROM THE AUDIT TRAIL in ${r.projection.mismatchCount} row(s)${r.projection.mismatchCount > r.projection.mismatches.length ? ` (the first ${r.projection.mismatches.length} listed)` : ''}:\n${r.projection.mismatches.map((m) => `  ${m.table} ${m.id}: ${m.reason}`).join('\n')}`,
          renderSignatures(r.signatures),
          ...(r.objects ? [renderObjects(r.objects)] : []),
          ...(r.history ? [renderHistories(r.history)] : []),
        ].join('\n'),
      );
      const tamper = tamperExit(findings);
      if (tamper) process.exitCode = tamper;
      else if (!ok) process.exitCode = EXIT.tampered;
      // Nothing found wrong, but the store (or Temporal) did not answer for some: not a verified trail either.
      else if (objects?.unreadable || anchorError || history?.unavailable) process.exitCode = EXIT.unhealthy;
    });
}

function renderFinding(f: Finding): string {
  return `${TAMPER_NAME[f.kind]}${f.seq ? ` at seq ${f.seq}` : ''}${f.key ? ` (${f.key})` : ''}: ${f.message}`;
}

function renderCheckpoints(c: AnchoredVerify['checkpoints'], chain: VerifyResult): string {
  if (!c.count) return `NOT ANCHORED: no signed checkpoint in ${c.location} yet (tail truncation and recomputation cannot be detected until one is written)`;
  const n = c.newest!;
  const held = chain.anchored ? `${chain.anchored.matched} of ${c.count} match the chain` : '';
  return `anchored: ${c.count} signed checkpoint(s) in ${c.location}, ${held}; newest seq ${n.seq} over ${n.eventCount} events at ${n.createdAt}, key ${n.keyId}`;
}

/** The chain held against the checkpoints; S3 and the keys loaded only here. An unreachable store or no key is reported, not thrown. */
async function anchoredChain(db: Kysely<Database>, env: Env, full: boolean): Promise<AnchoredVerify | { error: string }> {
  const [{ createS3, bucket }, { verifyAnchoredChain }, { loadTrustedKeys }, { auditChainName }] = await Promise.all([
    import('../storage/s3.ts'),
    import('../audit/anchor.ts'),
    import('../signing/trusted-keys.ts'),
    import('../db/connect.ts'),
  ]);
  let trusted;
  try {
    trusted = loadTrustedKeys(env);
  } catch (err) {
    return { error: `${(err as Error).message}` };
  }
  const s3 = createS3(env);
  try {
    return await verifyAnchoredChain(db, s3, bucket(env, 'evidence'), auditChainName(env), trusted, { full });
  } catch (err) {
    if ((err as { $metadata?: unknown }).$metadata !== undefined || (err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
      return { error: `the evidence bucket did not answer: ${(err as Error).message.slice(0, 300)}` };
    }
    throw err;
  } finally {
    s3.destroy();
  }
}

export function registerHistory(program: Command): void {
  const history = program.command('history').description("a lifecycle's Temporal history, kept as evidence");
  history
    .command('export <workflow-id>')
    .description(
      'export the full history of a closed lifecycle (every run of its chain) to the evidence bucket under Object Lock, record it and sign it into the audit chain, through its archiver on the workers (exit 0 exported or already; 4 still running; 6 not found)',
    )
    .option('--run <run-id>', 'the run that closed the lifecycle (default: the latest run)')
    .option('--json', 'print JSON')
    .action(async (workflowId: string, opts) => {
      const out = createOutput(!!opts.json);
      const { requestHistoryExport, HistoryExportRefused, rootCause, renderCause } = await import('../lifecycle/client.ts');
      const { WorkflowFailedError } = await import('@temporalio/client');
      const result = await withTemporal(async (client) => {
        try {
          return await requestHistoryExport(client, workflowId, { runId: opts.run as string | undefined, actor: `${os.userInfo().username}@${os.hostname()}` });
        } catch (err) {
          if (err instanceof HistoryExportRefused) throw new CliError(err.message, EXIT.refused, 'wait until it closes (factory status), then run this again');
          if (err instanceof WorkflowFailedError) {
            throw new CliError(
              `the history was not exported: ${err.cause ? renderCause(rootCause(err.cause)) : err.message}`,
              EXIT.failure,
              'see the archiver in the Web UI',
            );
          }
          throw err;
        }
      });
      out.result(result, (r) =>
        [
          `history of ${r.workflowId} (closed ${r.status}, run ${r.closedRunId}): ${r.runs.length} run(s), recorded as ${r.auditEventId}`,
          ...r.runs.map(
            (x) =>
              `  run ${x.runId} ${x.status}: ${x.events} events ${x.digest} ${x.uri} locked until ${x.retainUntil}${x.duplicate ? ' (already exported)' : ''}`,
          ),
        ].join('\n'),
      );
    });
}

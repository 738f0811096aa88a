import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError, EXIT, createOutput } from './output.ts';

/**
 * `factory evidence export|verify` and `factory inventory`. `verify` runs offline: it loads neither the
 * environment nor any client, only the archive (and the keys the examiner names).
 */
export function registerEvidence(program: Command): void {
  const evidence = program.command('evidence').description('evidence packs an examiner can take away and check offline');
  evidence
    .command('export <model@version>')
    .description(
      "export one model version's evidence pack (provenance, datasets, evaluation, approvals with signatures and keys, deployments, histories, audit events up to a signed checkpoint, the policy pack, a signed manifest) through the evidenceExport workflow; it is kept under Object Lock and the export recorded (exit 0 exported; 2 bad input; 3 not finished in --timeout (workers down?); 6 no such version; 1 failed)",
    )
    .requiredOption('--out <file>', 'where to write the pack (a .zip)')
    .option('--case <id>', 'the examination or request this export answers, recorded with the export')
    .option('--as <principal>', 'who exports (default: user@host)')
    .option('--timeout <seconds>', 'how long to wait for the export before giving up (it goes on; exit 3)', '600')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { out: string; case?: string; as?: string; timeout: string; json?: boolean }) => {
      if (!/^[1-9]\d{0,5}$/.test(opts.timeout)) throw new CliError(`--timeout ${opts.timeout}: a whole number of seconds (1-999999)`, EXIT.usage);
      const timeoutMs = Number(opts.timeout) * 1000;
      const out = createOutput(!!opts.json);
      const { parseModelRef } = await import('../trace/trace.ts');
      const { name, version } = parseModelRef(ref);
      if (version === undefined) throw new CliError(`name the version: ${name}@<version>`, EXIT.usage);
      const { evidenceExportInputSchema, evidenceExportWorkflowId, EVIDENCE_EXPORT_WORKFLOW } = await import('../domain/evidence.ts');
      const input = evidenceExportInputSchema.safeParse({
        model: name,
        version,
        case: opts.case ?? null,
        actor: opts.as ?? `${os.userInfo().username}@${os.hostname()}`,
      });
      if (!input.success) throw new CliError(`invalid request: ${input.error.issues[0]?.path.join('.')}: ${input.error.issues[0]?.message}`, EXIT.usage);
      const outFile = path.resolve(opts.out);
      if (!fs.existsSync(path.dirname(outFile))) throw new CliError(`no directory ${path.dirname(outFile)} for --out`, EXIT.usage);
      const { withDb, withTemporal } = await import('./context.ts');
      const found = await withDb((db) =>
        db.selectFrom('model_versions').select(['workflow_id']).where('model_name', '=', name).where('version', '=', version).executeTakeFirst(),
      );
      if (!found) throw new CliError(`no model version ${name}@${version} in the registry`, EXIT.notFound, 'list versions with `factory inventory`');
      out.progress(`exporting ${name}@${version} (lifecycle ${found.workflow_id}) …`);
      const { TASK_QUEUES } = await import('../domain/task-queues.ts');
      const { WorkflowFailedError } = await import('@temporalio/client');
      const summary = await withTemporal(async (client, env) => {
        const handle = await client.workflow.start(EVIDENCE_EXPORT_WORKFLOW, {
          workflowId: evidenceExportWorkflowId(name, version, randomUUID()),
          taskQueue: `${env.FACTORY_TASK_QUEUE_PREFIX ?? ''}${TASK_QUEUES.control}`,
          args: [input.data],
        });
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new CliError(
                  `the export ${handle.workflowId} did not finish within ${opts.timeout} s (it goes on)`,
                  EXIT.unhealthy,
                  'check the workers (npx factory dev status) and the evidenceExport workflow in the Web UI; the pack is at its result when it ends',
                ),
              ),
            timeoutMs,
          );
        });
        try {
          return (await Promise.race([handle.result(), late])) as import('../domain/evidence.ts').EvidenceExportSummary;
        } catch (err) {
          if (err instanceof WorkflowFailedError) {
            const { rootCause, renderCause } = await import('../lifecycle/client.ts');
            throw new CliError(
              `the pack was not exported: ${err.cause ? renderCause(rootCause(err.cause)) : err.message}`,
              EXIT.failure,
              'see the evidenceExport workflow in the Web UI',
            );
          }
          throw err;
        } finally {
          clearTimeout(timer);
        }
      });
      const [{ loadEnv }, { createS3 }, { getBytes, sha256Digest }, { parseS3Uri }] = await Promise.all([
        import('../config/env.ts'),
        import('../storage/s3.ts'),
        import('../storage/objects.ts'),
        import('../serving/s3-uri.ts'),
      ]);
      const s3 = createS3(loadEnv());
      try {
        const loc = parseS3Uri(summary.uri)!;
        const bytes = await getBytes(s3, loc.bucket, loc.key);
        if (sha256Digest(bytes) !== summary.digest)
          throw new CliError(`the stored pack ${summary.uri} is not the one exported (${summary.digest})`, EXIT.tampered);
        fs.writeFileSync(outFile, bytes);
      } finally {
        s3.destroy();
      }
      out.result({ ...summary, out: outFile }, (r) =>
        [
          `evidence pack for ${r.model}@${r.version} written to ${r.out}`,
          `  ${r.files} files, ${r.bytes} bytes, ${r.digest}, manifest signed by ${r.keyId}`,
          `  kept at ${r.uri} (Object Lock); audit chain up to the signed checkpoint at seq ${r.checkpointSeq}`,
          `  recorded as ${r.auditEventId} (by ${r.actor}${r.case ? `, case ${r.case}` : ''})`,
          `check it anywhere: npx factory evidence verify ${path.basename(r.out)}`,
        ].join('\n'),
      );
    });

  evidence
    .command('verify <pack>')
    .description(
      'verify an evidence pack offline (no stack, no database): the signed manifest and every file digest, the provenance signature and subject, every approval signature, the audit events against the signed checkpoint, the histories against the chain. Exit 0 verified; 2 usage; 20 unreadable; 21 manifest signature; 22 a file altered, missing or unlisted; 23 provenance; 24 approval signature; 25 audit chain or checkpoint; 26 records disagree',
    )
    .option(
      '--trusted-key <file>',
      "the factory's published public key(s) (PEM or ssh-ed25519 lines); default: the key inside the pack, reported for comparison",
    )
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { trustedKey?: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const [{ verifyPack }, { PACK_LIMITS }, { parseTrustedKeys }] = await Promise.all([
        import('../evidence/verify.ts'),
        import('../evidence/format.ts'),
        import('../signing/trusted-keys.ts'),
      ]);
      let stat: fs.Stats;
      try {
        stat = fs.statSync(file);
      } catch {
        throw new CliError(`no such file: ${file}`, EXIT.usage);
      }
      if (!stat.isFile() || stat.size > PACK_LIMITS.archiveBytes)
        throw new CliError(`${file} is not a pack file (at most ${PACK_LIMITS.archiveBytes} bytes)`, EXIT.usage);
      let trusted;
      if (opts.trustedKey) {
        try {
          trusted = parseTrustedKeys(fs.readFileSync(opts.trustedKey, 'utf8'), opts.trustedKey).map((k) => k.publicKey);
        } catch (err) {
          throw new CliError(`--trusted-key: ${(err as Error).message}`, EXIT.usage);
        }
        if (!trusted.length) throw new CliError(`--trusted-key ${opts.trustedKey} holds no key`, EXIT.usage);
      }
      const verdict = verifyPack(fs.readFileSync(file), trusted ? { trusted } : {});
      out.result(verdict, (v) => {
        const c = v.checked;
        return [
          `evidence pack ${v.model ?? '?'}@${v.version ?? '?'}${v.exportedAt ? ` exported ${v.exportedAt} by ${v.exportedBy}${v.case ? ` for case ${v.case}` : ''}` : ''}`,
          `  manifest     ${v.keyId ? `signed by ${v.keyId} (${v.keyTrustedBy === 'given' ? 'a key you trust' : 'the key inside the pack'})` : 'NOT VERIFIED'}`,
          `  files        ${c.files} match the signed manifest`,
          `  provenance   ${c.provenance ? `verified (subject ${v.artifactDigest})` : 'NOT VERIFIED'}`,
          `  approvals    ${c.approvals.total} decision(s), ${c.approvals.signed} signed and checked, ${c.approvals.againstPack} against the pack's allowed signers`,
          `  audit        ${c.audit.events} event(s) chained to the signed checkpoint at seq ${c.audit.checkpointSeq ?? '?'}${c.audit.checkpointCreatedAt ? ` (${c.audit.checkpointCreatedAt})` : ''}, ${c.audit.versionEvents} of them this lifecycle's`,
          `  histories    ${c.histories} checked against the chain`,
          `  policy       ${c.policy ? `${c.policy.digest}${c.policy.isTheVersions ? " (the version's)" : ''}` : 'absent'}`,
          ...v.notes.map((n) => `note: ${n}`),
          v.ok ? 'VERIFIED' : `FAILED (exit ${v.exitCode}):\n${v.problems.map((p) => `  ${p.class}${p.file ? ` ${p.file}` : ''}: ${p.message}`).join('\n')}`,
        ].join('\n');
      });
      process.exitCode = verdict.exitCode;
    });
}

export function registerInventory(program: Command): void {
  program
    .command('inventory')
    .description(
      'the model inventory (SR 11-7): every model version by state (development, validated, approved, deployed, rolled back, retired, …), owner, risk tier, last validation (a completed revalidation renews it) and revalidation due date from the policy pack (revalidateEvery per tier); overdue ones flagged, an open revalidation review named',
    )
    .option('--model <name>', 'only this model')
    .option(
      '--state <state>',
      'only versions in this registry state (registered, validated, approved, deployed, rolled-back, retired, rejected, failed, cancelled)',
    )
    .option('--overdue', 'only versions overdue for revalidation')
    .option('--json', 'print JSON')
    .action(async (opts: { model?: string; state?: string; overdue?: boolean; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const { MODEL_STATE_TRANSITIONS } = await import('../domain/model-state.ts');
      if (opts.state && !(opts.state in MODEL_STATE_TRANSITIONS))
        throw new CliError(`--state ${opts.state}: one of ${Object.keys(MODEL_STATE_TRANSITIONS).join(', ')}`, EXIT.usage);
      const [{ withDb }, { modelInventory }, { loadPolicyPack, policyPackPath }] = await Promise.all([
        import('./context.ts'),
        import('../inventory/inventory.ts'),
        import('../policy/pack.ts'),
      ]);
      const policy = loadPolicyPack(policyPackPath());
      const now = new Date();
      const all = await withDb((db) =>
        modelInventory(db, policy.pack, now, {
          ...(opts.model ? { model: opts.model } : {}),
          ...(opts.state ? { states: [opts.state as keyof typeof MODEL_STATE_TRANSITIONS] } : {}),
        }),
      );
      const versions = opts.overdue ? all.filter((v) => v.overdue) : all;
      const byState: Record<string, number> = {};
      for (const v of versions) byState[v.state] = (byState[v.state] ?? 0) + 1;
      const result = { asOf: now.toISOString(), policyDigest: policy.digest, counts: byState, overdue: versions.filter((v) => v.overdue).length, versions };
      out.result(result, (r) => {
        const lines = [
          `model inventory as of ${r.asOf} (policy ${r.policyDigest.slice(0, 19)}…): ${r.versions.length} version(s), ${r.overdue} overdue for revalidation`,
        ];
        const day = (iso: string | null) => (iso ? iso.slice(0, 10) : '—');
        for (const state of Object.keys(r.counts)) {
          lines.push(`${state} (${r.counts[state]})`);
          for (const v of r.versions.filter((x) => x.state === state)) {
            lines.push(
              `  ${v.model}@${v.version}  tier=${v.riskTier}  owner=${v.owner}  validated ${day(v.lastValidatedAt)}` +
                (v.revalidationDueAt ? `  revalidation due ${day(v.revalidationDueAt)}${v.overdue ? `  OVERDUE by ${v.overdueDays} d` : ''}` : '') +
                (v.openRevalidation ? `  revalidation review open: ${v.openRevalidation}` : ''),
            );
          }
        }
        return lines.join('\n');
      });
    });
}

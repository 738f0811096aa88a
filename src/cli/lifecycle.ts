import path from 'node:path';
import type { Command } from 'commander';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ZodError } from 'zod';
import { type ApprovalStatus, MEANINGS, type Decision } from '../domain/approval.ts';
import type { LifecycleOutcome } from '../domain/lifecycle.ts';
import { DecisionRefused, approvalStatus, decide, lifecycleResult, startLifecycle } from '../lifecycle/client.ts';
import { withTemporal } from './context.ts';
import { CliError, EXIT, createOutput } from './output.ts';

function zodMessage(err: ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
}

export function renderOutcome(o: LifecycleOutcome): string {
  return o.outcome === 'deployed'
    ? `deployed ${o.modelName}@${o.version} (${o.artifactDigest}) → Triton ${o.tritonModel}: ${o.endpoint}`
    : `rejected ${o.modelName}${o.version ? `@${o.version}` : ''}: ${o.reason}`;
}

export function renderStatus(s: ApprovalStatus): string {
  return [
    `${s.modelName}${s.version ? `@${s.version}` : ''}  stage=${s.stage}  risk=${s.riskTier}${s.outcome ? `  outcome=${s.outcome}` : ''}`,
    s.modelDigest ? `  candidate ${s.modelDigest}` : '',
    s.requiredRoles.length ? `  roles required: ${s.requiredRoles.join(', ')}; pending: ${s.pendingRoles.join(', ') || 'none'}${s.waiting ? ` (until ${s.deadline})` : ''}` : '',
    ...s.approvals.map((a) => `  ✓ ${a.at} ${a.principalName} <${a.approver}> ${a.role} (${a.meaning}) via ${a.via}`),
    ...s.refusals.map((r) => `  ✗ ${r.at} refused ${r.decision} via ${r.via}: ${r.reason}`),
  ]
    .filter(Boolean)
    .join('\n');
}

async function waitOutcome(workflowId: string, out: ReturnType<typeof createOutput>): Promise<LifecycleOutcome> {
  return withTemporal(async (client) => {
    let last = '';
    const timer = setInterval(async () => {
      try {
        const s = await approvalStatus(client, workflowId);
        const line = `… ${s.stage}${s.waiting ? ` (pending: ${s.pendingRoles.join(', ')})` : ''}`;
        if (line !== last) out.progress(line);
        last = line;
      } catch {
        /* not queryable yet */
      }
    }, 1_000);
    try {
      return await lifecycleResult(client, workflowId);
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new CliError(`lifecycle ${workflowId} failed: ${err.cause?.message ?? err.message}`, EXIT.failure, `inspect it in the Web UI or with \`temporal workflow show -w ${workflowId}\``);
      throw err;
    } finally {
      clearInterval(timer);
    }
  });
}

export function registerLifecycle(program: Command): void {
  const lifecycle = program.command('lifecycle').description('start and follow model lifecycles');

  lifecycle
    .command('start')
    .description('start the lifecycle for a model and commit (a second start for the same commit finds the first)')
    .requiredOption('--model <name>', 'model name')
    .requiredOption('--dataset <path>', 'raw dataset file (CSV) with schema.json beside it')
    .option('--schema <path>', 'dataset schema (default: schema.json beside the dataset)')
    .requiredOption('--commit <sha>', 'code commit SHA')
    .requiredOption('--image <digest>', 'container image digest (sha256:…)')
    .requiredOption('--risk <tier>', 'risk tier: low | medium | high')
    .requiredOption('--requester <email>', 'who requests the release')
    .requiredOption('--developer <email>', 'who developed the model (cannot approve it)')
    .option('--epochs <n>', 'training epochs', (v) => Number(v))
    .option('--wait', 'wait for the outcome (exit 0 deployed, 5 rejected)')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const out = createOutput(!!opts.json);
      let started;
      try {
        started = await withTemporal((client) =>
          startLifecycle(client, {
            modelName: opts.model,
            // The control worker reads the file: give it an absolute path, not one relative to this shell.
            datasetPath: path.resolve(opts.dataset),
            schemaPath: opts.schema ? path.resolve(opts.schema) : undefined,
            commitSha: opts.commit,
            imageDigest: opts.image,
            riskTier: opts.risk,
            requester: opts.requester,
            developer: opts.developer,
            ...(opts.epochs ? { training: { epochs: opts.epochs, seed: 7 } } : {}),
          }),
        );
      } catch (err) {
        if (err instanceof ZodError) throw new CliError(`invalid lifecycle input: ${zodMessage(err)}`, EXIT.usage, 'fix the option named above');
        throw err;
      }
      out.progress(`${started.existing ? 'found existing' : 'started'} lifecycle ${started.workflowId}`);
      if (!opts.wait) {
        out.result(started, () => `${started.existing ? 'already started' : 'started'}: ${started.workflowId}\nfollow it: npx factory status ${started.workflowId}`);
        return;
      }
      const outcome = await waitOutcome(started.workflowId, out);
      out.result({ ...started, ...outcome }, () => renderOutcome(outcome));
      if (outcome.outcome === 'rejected') process.exitCode = EXIT.rejected;
    });

  program
    .command('status <workflowId>')
    .description('where a lifecycle is and what it waits for (the approvalStatus query)')
    .option('--json', 'print JSON')
    .action(async (workflowId: string, opts) => {
      const out = createOutput(!!opts.json);
      try {
        const s = await withTemporal((client) => approvalStatus(client, workflowId));
        out.result(s, () => renderStatus(s));
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw new CliError(`no lifecycle ${workflowId}`, EXIT.notFound, 'list them in the Web UI, or check the id');
        throw err;
      }
    });

  for (const decision of ['approve', 'reject'] as Decision[]) {
    program
      .command(`${decision} <workflowId>`)
      .description(`${decision} the candidate of a lifecycle (through the \`decide\` update; refusals exit 4)`)
      .requiredOption('--as <email>', 'approver (must hold the role in the policy pack)')
      .requiredOption('--role <role>', 'the role signed for')
      .option('--meaning <meaning>', `signature meaning: ${MEANINGS.join(' | ')}`, decision === 'approve' ? 'approval' : 'review')
      .option('--digest <sha256>', "the candidate's model digest (default: read from the lifecycle)")
      .option('--comment <text>', 'comment recorded with the decision')
      .option('--json', 'print JSON')
      .action(async (workflowId: string, opts) => {
        const out = createOutput(!!opts.json);
        const verdict = await withTemporal(async (client) => {
          const modelDigest = opts.digest ?? (await approvalStatus(client, workflowId)).modelDigest;
          if (!modelDigest) throw new CliError(`lifecycle ${workflowId} has no candidate yet`, EXIT.refused, 'wait for it to reach the approval stage');
          try {
            return await decide(client, workflowId, { decision, approver: opts.as, role: opts.role, meaning: opts.meaning, modelDigest, comment: opts.comment });
          } catch (err) {
            if (err instanceof ZodError) throw new CliError(`invalid decision: ${zodMessage(err)}`, EXIT.usage);
            if (err instanceof DecisionRefused) return { accepted: false as const, reason: err.message };
            throw err;
          }
        });
        out.result(verdict, () => (verdict.accepted ? `${decision} recorded; pending roles: ${verdict.pendingRoles.join(', ') || 'none'}` : `refused: ${verdict.reason}`));
        if (!verdict.accepted) process.exitCode = EXIT.refused;
      });
  }
}

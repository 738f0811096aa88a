import os from 'node:os';
import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { WorkflowFailedError } from '@temporalio/client';
import { ZodError } from 'zod';
import { type AcceptedDecision, type ApprovalStatus, DECISIONS, MEANINGS, type Decision, signatureLine } from '../domain/approval.ts';
import { type LifecycleOutcome, lifecycleInputSchema } from '../domain/lifecycle.ts';
import type { RetirementOutcome } from '../domain/retirement.ts';
import {
  type FailureCause,
  type LifecycleListItem,
  type LifecycleState,
  DecisionRefused,
  LIST_STATES,
  LifecycleActionRefused,
  LifecycleEndedWithoutOutcome,
  LifecycleInputConflict,
  QUERY_TIMEOUT_MS,
  RETRYABLE_STATUSES,
  approvalStatus,
  cancelLifecycle,
  closedSummary,
  decide,
  isWorkersNotAnswering,
  lifecycleResult,
  lifecycleState,
  listLifecycles,
  renderCause,
  retryLifecycle,
  rootCause,
  startLifecycle,
  waitClosed,
} from '../lifecycle/client.ts';
import { type Agreement, type RegistryView, endEventOf, projectionAgreement, registryView } from '../lifecycle/projection.ts';
import { type ServingView, renderServing, servingView } from '../trace/serving.ts';
import { withDb, withTemporal } from './context.ts';
import { signFor, signingKeyFor, statementSubject } from './sign.ts';
import { strictInt } from './options.ts';
import { CliError, EXIT, type Output, createOutput, escapeDeep } from './output.ts';

function zodMessage(err: ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
}

export function renderOutcome(o: LifecycleOutcome | RetirementOutcome): string {
  // `status` of a retirement (workflows/retirement.ts) shows its outcome the same way.
  if (o.outcome === 'retired') return `retired ${o.modelName}@${o.version} at ${o.retiredAt}`;
  return o.outcome === 'deployed'
    ? `deployed ${o.modelName}@${o.version} (${o.artifactDigest}) → Triton ${o.tritonModel}: ${o.endpoint}`
    : `rejected ${o.modelName}${o.version ? `@${o.version}` : ''}: ${o.reason}`;
}

/** What a refused decision carried: the gate's bounded summary (digest, excerpt), or an older record's fields. */
function receivedSummary(received: unknown): string {
  if (typeof received === 'string') return `  received "${received.slice(0, 200)}"`;
  if (received === null || typeof received !== 'object') return '';
  const r = received as Record<string, unknown>;
  if (typeof r.excerpt === 'string') return `  received ${String(r.bytes)} bytes ${String(r.sha256).slice(0, 19)}… "${r.excerpt}"${r.truncated ? '…' : ''}`;
  const parts = (['approver', 'role', 'comment'] as const).filter((k) => typeof r[k] === 'string').map((k) => `${k}="${(r[k] as string).slice(0, 200)}"`);
  return parts.length ? `  (${parts.join(' ')})` : '';
}

function renderDecision(mark: string, a: AcceptedDecision): string {
  const sig = a.signature ? `  ${signatureLine({ keyFingerprint: a.signature.keyFingerprint, signatureVerified: a.signature.verified })}` : '';
  return `  ${mark} ${a.at} ${a.principalName} <${a.approver}> ${a.decision} ${a.role} (${a.meaning}) via ${a.via}${sig}${a.comment ? `  "${a.comment}"` : ''}`;
}

export function renderStatus(s: ApprovalStatus): string {
  const c = s.counts;
  return [
    `${s.modelName}${s.version ? `@${s.version}` : ''}  stage=${s.stage}  risk=${s.riskTier}${s.outcome ? `  outcome=${s.outcome}` : ''}`,
    s.modelDigest ? `  candidate ${s.modelDigest}` : '',
    s.placement
      ? s.placement.zone
        ? `  placement: ${s.placement.zone} (${s.placement.reason})`
        : `  placement: ${s.placement.waiting ? 'WAITING' : 'REFUSED'}: ${s.placement.reason}`
      : '',
    s.requiredRoles.length
      ? `  roles required: ${s.requiredRoles.join(', ')}; pending: ${s.pendingRoles.join(', ') || 'none'}${s.waiting ? ` (until ${s.deadline})` : ''}`
      : '',
    c
      ? `  decisions: ${c.received} received, ${c.accepted} accepted, ${c.refused} refused, ${c.withdrawn} withdrawn${s.continuedRuns ? `  (${s.continuedRuns} earlier run(s))` : ''}`
      : '',
    ...s.approvals.map((a) => renderDecision('✓', a)),
    ...(s.withdrawals ?? []).map((a) => renderDecision('↶', a)),
    ...s.refusals.map((r) => `  ✗ ${r.at} refused ${r.decision} via ${r.via}: ${r.reason}${receivedSummary(r.received)}`),
  ]
    .filter(Boolean)
    .join('\n');
}

/** The next step after a lifecycle ended without an outcome, by what ended it. */
function nextAfterFailure(workflowId: string, failure?: FailureCause): string {
  const inspect = `inspect it with \`temporal workflow show -w ${workflowId}\` or in the Web UI`;
  // A start with the same inputs is refused once a lifecycle has failed: `retry` is how it runs again.
  const retry = `\`npx factory lifecycle retry ${workflowId}\` runs it again with the same inputs`;
  if (!failure) return `${retry}; ${inspect}`;
  if (/^(DatasetUnreadable|SchemaMismatch|EmptyDataset|InvalidInput|Dataset|Schema)/.test(failure.type)) {
    return `fix the input named above (in place: ${retry}; other inputs need a new commit); ${inspect}`;
  }
  if (failure.type === 'Terminated') return `it was terminated (${failure.message || 'no reason given'}); ${retry}; ${inspect}`;
  if (failure.type === 'Cancelled') return `it was cancelled; ${retry}; ${inspect}`;
  if (failure.type === 'SlurmRequestRefused')
    return `Slurm refused the training worker's request: fix its FACTORY_SLURM_GRES / FACTORY_SLURM_PARTITION as said above and restart it, then ${retry}`;
  if (failure.type.startsWith('Timeout'))
    return `a step ran out of time: check the workers (\`npx factory dev status\`, logs in .factory/logs/), then ${retry}; ${inspect}`;
  return `${retry}; ${inspect}`;
}

/**
 * How long the status query may wait: the command answers within about five seconds in all, so a
 * slow start (a loaded machine, a cold bundle) leaves the query less, never under a second: a worker
 * answers a query in milliseconds, from its cache.
 */
function queryBudget(): number {
  return Math.round(Math.min(QUERY_TIMEOUT_MS, Math.max(1_000, 3_500 - process.uptime() * 1_000)));
}

function workersNotAnswering(workflowId: string): CliError {
  return new CliError(
    `lifecycle ${workflowId} is RUNNING but its workers are not answering (no reply to the approvalStatus query in time)`,
    EXIT.unhealthy,
    'start or restart the workers: `npx factory dev up` (`npx factory dev status` shows them; logs in .factory/logs/)',
  );
}

type RegistryAgreement = ({ state: string | null; version: number | null; endEvent: string | null } & Agreement) | { unavailable: string };

/** The registry's view, read within 1.5 s; a database out of reach or slow is said, never fatal to `status`. */
async function readRegistry(workflowId: string): Promise<RegistryView | { unavailable: string }> {
  const timeout = new Promise<{ unavailable: string }>((resolve) =>
    setTimeout(() => resolve({ unavailable: 'registry not read: the database did not answer within 1.5 s' }), 1_500).unref(),
  );
  const read = withDb((db) => registryView(db, workflowId)).catch((err: Error) => ({ unavailable: `registry not read: ${err.message.split('\n')[0]}` }));
  return Promise.race([read, timeout]);
}

/**
 * The serving state of the version a lifecycle registered (or a retirement names) and its model's
 * deployment history, read within 1.5 s like the registry; never fatal to `status`.
 */
async function readServing(workflowId: string): Promise<(ServingView & { modelName: string }) | { unavailable: string } | undefined> {
  const timeout = new Promise<{ unavailable: string }>((resolve) =>
    setTimeout(() => resolve({ unavailable: 'serving state not read: the database did not answer within 1.5 s' }), 1_500).unref(),
  );
  const retirement = /^retire-(.+)-([1-9]\d{0,8})$/.exec(workflowId);
  const read = withDb(async (db) => {
    let q = db.selectFrom('model_versions').select(['model_name', 'version', 'state']);
    q = retirement ? q.where('model_name', '=', retirement[1]!).where('version', '=', Number(retirement[2])) : q.where('workflow_id', '=', workflowId);
    const mv = await q.orderBy('id', 'desc').limit(1).executeTakeFirst();
    if (!mv) return undefined;
    return { modelName: mv.model_name, ...(await servingView(db, mv.model_name, { number: mv.version, registryState: mv.state })) };
  }).catch((err: Error) => ({ unavailable: `serving state not read: ${err.message.split('\n')[0]}` }));
  return Promise.race([read, timeout]);
}

function registryAgreement(view: RegistryView | { unavailable: string }, state: LifecycleState): RegistryAgreement {
  if ('unavailable' in view) return view;
  const agreement = projectionAgreement(state.temporalStatus, state.result?.outcome ?? state.status?.outcome?.split(':')[0], view, state.runId);
  return { state: view.version?.state ?? null, version: view.version?.version ?? null, endEvent: endEventOf(view, state.runId) ?? null, ...agreement };
}

function renderRegistry(r: RegistryAgreement): string {
  if ('unavailable' in r) return `  registry: ${r.unavailable}`;
  const head = `  registry: ${r.state ? `v${r.version} ${r.state}` : 'no version registered'}${r.endEvent ? ` (${r.endEvent})` : ''}`;
  return r.agrees ? `${head} (agrees with Temporal)` : `${head}\n  DISAGREES with Temporal: ${r.reason}`;
}

export function renderState(s: LifecycleState): string {
  const head = `${s.workflowId}  temporal=${s.temporalStatus}${s.stage ? `  stage=${s.stage}` : ''}`;
  if (s.status) return `${head}\n${renderStatus(s.status)}`;
  const lines = [head, `  ${s.modelName ?? '?'}  risk=${s.riskTier ?? '?'}  started ${s.startTime}${s.closeTime ? `  closed ${s.closeTime}` : ''}`];
  if (s.result) lines.push(`  ${renderOutcome(s.result)}`);
  if (s.failure) lines.push(`  cause: ${renderCause(s.failure)}`);
  return lines.join('\n');
}

async function waitOutcome(workflowId: string, out: Output, started: object): Promise<LifecycleOutcome> {
  return withTemporal(async (client) => {
    let last = '';
    const timer = setInterval(async () => {
      try {
        const s = await approvalStatus(client, workflowId);
        const line = `… ${s.stage}${s.waiting ? ` (pending: ${s.pendingRoles.join(', ')})` : ''}`;
        if (line !== last) out.progress(line);
        last = line;
      } catch {
        /* not queryable yet, or the workers are busy: progress is only a courtesy */
      }
    }, 1_000);
    try {
      return await lifecycleResult(client, workflowId);
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const failure = err.cause ? rootCause(err.cause) : { type: 'Failed', message: err.message };
      // CI reads stdout: the failure is a result too, with its cause.
      if (out.json) out.result({ ...started, outcome: 'failed', failure }, () => '');
      throw new CliError(`lifecycle ${workflowId} failed: ${renderCause(failure)}`, EXIT.failure, nextAfterFailure(workflowId, failure));
    } finally {
      clearInterval(timer);
    }
  });
}

/** A retry or cancel that does not apply: exit 4, with the lifecycle as it stands on stdout under --json. */
function refusedAction(err: LifecycleActionRefused, out: Output): CliError {
  if (out.json) out.result({ workflowId: err.workflowId, runId: err.runId, temporalStatus: err.temporalStatus, refused: true, reason: err.message }, () => '');
  return new CliError(err.message, EXIT.refused, err.next ?? `see where it stands: npx factory status ${err.workflowId}`);
}

/** The list as a table; strings arrive escaped (createOutput), widths follow the longest cell. */
export function renderList(items: LifecycleListItem[], truncated: boolean): string {
  if (!items.length) return 'no lifecycles';
  const head = ['WORKFLOW ID', 'RUN', 'STATUS', 'STAGE', 'MODEL', 'RISK', 'STARTED', 'CLOSED'];
  const rows = items.map((i) => [
    i.workflowId,
    i.runId,
    i.temporalStatus,
    i.stage ?? '-',
    i.modelName ?? '-',
    i.riskTier ?? '-',
    i.startTime,
    i.closeTime ?? '-',
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ');
  return [line(head), ...rows.map(line), ...(truncated ? ['… more: narrow with --state/--model or raise --limit'] : [])].join('\n');
}

/**
 * A --dataset/--schema argument as the workers receive it. A path is made absolute (the control
 * worker reads the file, not this shell); a URI (`s3://<landing bucket>/key`, or any other scheme,
 * which the worker refuses naming it) is passed through unchanged: resolving it as a path turned
 * `s3://landing/x.csv` into `<cwd>/s3:/landing/x.csv`.
 */
export function cliInputLocation(raw: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : path.resolve(raw);
}

export function registerLifecycle(program: Command): void {
  const lifecycle = program.command('lifecycle').description('start and follow model lifecycles');

  lifecycle
    .command('start')
    .description(
      'start the lifecycle for a model and commit (a second start for the same commit finds the first; with other inputs, or once it failed, it is refused, exit 4: see `lifecycle retry`)',
    )
    .requiredOption('--model <name>', 'model name')
    .requiredOption('--dataset <path>', 'raw dataset file (CSV) with schema.json beside it')
    .option('--schema <path>', 'dataset schema (default: schema.json beside the dataset)')
    .requiredOption('--commit <sha>', 'code commit SHA')
    .requiredOption('--image <digest>', 'container image digest (sha256:…)')
    .requiredOption('--risk <tier>', 'risk tier: low | medium | high')
    .requiredOption('--requester <email>', 'who requests the release')
    .requiredOption('--developer <email>', 'who developed the model (cannot approve it)')
    .option('--epochs <n>', 'training epochs (a whole number, 1 to 1000000; default 300)', strictInt(1, 1_000_000))
    .option('--purpose <id>', "why the data is used: one of the dataset's declared purposes (required where rows carry consent)")
    .option('--override <path>', 'a signed manual override re-including consent exclusions (signature at <path>.sig)')
    .option('--wait', 'wait for the outcome (exit 0 deployed, 5 rejected, 1 failed)')
    .option('--json', 'print JSON')
    .action(async (opts) => {
      const out = createOutput(!!opts.json);
      let started;
      try {
        started = await withTemporal((client, env) =>
          startLifecycle(
            client,
            {
              modelName: opts.model,
              datasetPath: cliInputLocation(opts.dataset),
              schemaPath: opts.schema ? cliInputLocation(opts.schema) : undefined,
              commitSha: opts.commit,
              imageDigest: opts.image,
              riskTier: opts.risk,
              requester: opts.requester,
              developer: opts.developer,
              ...(opts.purpose !== undefined ? { purpose: opts.purpose as string } : {}),
              ...(opts.override !== undefined ? { overridePath: cliInputLocation(opts.override as string) } : {}),
              ...(opts.epochs !== undefined ? { training: { epochs: opts.epochs as number, seed: 7 } } : {}),
            },
            // An isolated deployment (or a test's workers) serves prefixed queues: start there too.
            { taskQueuePrefix: env.FACTORY_TASK_QUEUE_PREFIX },
          ),
        );
      } catch (err) {
        if (err instanceof ZodError) throw new CliError(`invalid lifecycle input: ${zodMessage(err)}`, EXIT.usage, 'fix the option named above');
        if (err instanceof LifecycleInputConflict) {
          if (out.json) out.result({ workflowId: err.workflowId, runId: err.runId, existing: true, refused: true, differences: err.differences }, () => '');
          const failed = err.temporalStatus && RETRYABLE_STATUSES.includes(err.temporalStatus);
          throw new CliError(
            err.message,
            EXIT.refused,
            failed
              ? `it ended ${err.temporalStatus}: \`npx factory lifecycle retry ${err.workflowId}\` runs it again with its recorded inputs; new inputs need a new commit`
              : 'start with the same inputs to follow that lifecycle, or use a new commit for new inputs',
          );
        }
        if (err instanceof LifecycleEndedWithoutOutcome) {
          if (out.json) {
            out.result(
              {
                workflowId: err.workflowId,
                runId: err.runId,
                existing: true,
                refused: true,
                temporalStatus: err.temporalStatus,
                ...(err.failure ? { failure: err.failure } : {}),
                retry: `npx factory lifecycle retry ${err.workflowId}`,
              },
              () => '',
            );
          }
          throw new CliError(err.message, EXIT.refused, `run it again with the same inputs: npx factory lifecycle retry ${err.workflowId}`);
        }
        throw err;
      }
      out.progress(`${started.existing ? 'found existing' : 'started'} lifecycle ${started.workflowId}`);
      if (!opts.wait) {
        out.result(started, (s) => `${s.existing ? 'already started' : 'started'}: ${s.workflowId}\nfollow it: npx factory status ${s.workflowId}`);
        return;
      }
      const outcome = await waitOutcome(started.workflowId, out, started);
      out.result({ ...started, ...outcome }, (o) => renderOutcome(o));
      if (outcome.outcome === 'rejected') process.exitCode = EXIT.rejected;
    });

  lifecycle
    .command('retry <workflowId>')
    .description(
      'start a failed, cancelled, terminated or timed-out lifecycle again: a new run with the inputs it was started with (exit 0 started; with --wait 0 deployed, 5 rejected, 1 failed; 4 running or completed; 6 not found)',
    )
    .option('--wait', 'wait for the outcome (exit 0 deployed, 5 rejected, 1 failed)')
    .option('--json', 'print JSON')
    .action(async (workflowId: string, opts) => {
      const out = createOutput(!!opts.json);
      const retried = await withTemporal(async (client) => {
        try {
          return await retryLifecycle(client, workflowId);
        } catch (err) {
          if (err instanceof LifecycleActionRefused) throw refusedAction(err, out);
          throw err;
        }
      });
      out.progress(
        `${retried.existing ? 'found the run another retry started for' : 'retried'} lifecycle ${retried.workflowId}: run ${retried.runId} (previous run ${retried.previousRunId} ${retried.previousStatus})`,
      );
      if (!opts.wait) {
        out.result(
          retried,
          (r) =>
            `${r.existing ? 'already retried' : 'retried'}: ${r.workflowId} run ${r.runId} (previous run ended ${r.previousStatus})\nfollow it: npx factory status ${r.workflowId}`,
        );
        return;
      }
      const outcome = await waitOutcome(retried.workflowId, out, retried);
      out.result({ ...retried, ...outcome }, (o) => renderOutcome(o));
      if (outcome.outcome === 'rejected') process.exitCode = EXIT.rejected;
    });

  lifecycle
    .command('cancel <workflowId>')
    .description(
      'cancel a running lifecycle; the reason is sent first (the cancelRequest signal) and recorded by the workflow (exit 0 requested; with --wait 0 cancelled, 1 it ended otherwise; 4 not running; 6 not found)',
    )
    .requiredOption('--reason <text>', 'why (recorded in the audit trail; at most 1000 characters, no control characters)')
    .option('--as <who>', 'who cancels (recorded; default: this user@host)')
    .option('--wait', 'wait until it has ended and say how')
    .option('--json', 'print JSON')
    .action(async (workflowId: string, opts) => {
      const out = createOutput(!!opts.json);
      const by: string = opts.as ?? `${os.userInfo().username}@${os.hostname()}`;
      const result = await withTemporal(async (client) => {
        let requested;
        try {
          requested = await cancelLifecycle(client, workflowId, { by, reason: opts.reason });
        } catch (err) {
          if (err instanceof ZodError) throw new CliError(`invalid cancellation: ${zodMessage(err)}`, EXIT.usage, 'fix the option named above (by is --as)');
          if (err instanceof LifecycleActionRefused) throw refusedAction(err, out);
          throw err;
        }
        out.progress(`cancellation requested for ${workflowId} (run ${requested.runId}, stage ${requested.stage ?? '?'})`);
        if (!opts.wait) return { ...requested };
        const final = await waitClosed(client, workflowId, requested.runId);
        return {
          ...requested,
          temporalStatus: final.temporalStatus,
          ...(final.failure ? { failure: final.failure } : {}),
          ...(final.result ? { result: final.result } : {}),
        };
      });
      out.result(result, (r) =>
        'temporalStatus' in r
          ? `${r.workflowId} ended ${r.temporalStatus}${r.temporalStatus === 'CANCELED' ? '' : ' (the cancellation came too late or was not honoured)'}`
          : `cancellation requested: ${r.workflowId} (run ${r.runId}, was at stage ${r.stage ?? '?'})\nfollow it: npx factory status ${r.workflowId}`,
      );
      if ('temporalStatus' in result && result.temporalStatus !== 'CANCELED') process.exitCode = EXIT.failure;
    });

  lifecycle
    .command('list')
    .description('list lifecycles (one line per run, newest first) from Temporal: status, stage, model, risk, start and close time')
    .option('--state <state>', `only those in a state: ${LIST_STATES.join(' | ')}`, (v: string) => {
      if (!(LIST_STATES as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${LIST_STATES.join(', ')}.`);
      return v;
    })
    .option('--model <name>', "only this model's", (v: string) => {
      if (!lifecycleInputSchema.shape.modelName.safeParse(v).success)
        throw new InvalidArgumentError('expected a model name (lowercase letters, digits, - and _, starting with a letter).');
      return v;
    })
    .option('--limit <n>', 'at most this many (default 100)', strictInt(1, 10_000))
    .option('--json', 'print JSON: {lifecycles: [{workflowId, runId, temporalStatus, stage, modelName, riskTier, startTime, closeTime?}], truncated}')
    .action(async (opts) => {
      const out = createOutput(!!opts.json);
      const listed = await withTemporal((client) => listLifecycles(client, { state: opts.state, model: opts.model, limit: opts.limit as number | undefined }));
      out.result({ lifecycles: listed.lifecycles, truncated: listed.truncated }, (l) => renderList(l.lifecycles, l.truncated));
    });

  program
    .command('status <workflowId>')
    .description(
      "where a lifecycle is: Temporal's execution status beside its stage (exit 0 running or deployed, 5 rejected, 1 failed/terminated/cancelled/timed out, 3 workers not answering, 6 not found)",
    )
    .option('--json', 'print JSON')
    .action(async (workflowId: string, opts) => {
      const out = createOutput(!!opts.json);
      // The registry is read while Temporal answers: `status` must stay fast when workers are down.
      const isRetirement = workflowId.startsWith('retire-');
      const view = isRetirement ? undefined : readRegistry(workflowId);
      const serving = readServing(workflowId);
      const state = await withTemporal((client) => lifecycleState(client, workflowId, { queryTimeoutMs: queryBudget() }));
      // A retirement registers nothing: the registry agreement is a lifecycle's.
      const registry = view ? registryAgreement(await view, state) : undefined;
      const served = await serving;
      // The query's answer keeps its documented shape; Temporal's view, the registry's and the serving state are added beside it.
      const json = {
        ...(state.status ? { ...state.status, workflowId, runId: state.runId, temporalStatus: state.temporalStatus } : state),
        ...(registry ? { registry } : {}),
        ...(served ? { serving: served } : {}),
      };
      out.result(json, () =>
        [
          renderState(escapeDeep(state)),
          ...(registry ? [renderRegistry(escapeDeep(registry))] : []),
          ...(served ? ('unavailable' in served ? [`  ${served.unavailable}`] : renderServing(served.modelName, escapeDeep(served)).map((l) => `  ${l}`)) : []),
        ].join('\n'),
      );
      if (state.workersAnswering === false) throw workersNotAnswering(workflowId);
      if (state.result?.outcome === 'rejected') process.exitCode = EXIT.rejected;
      else if (state.temporalStatus !== 'RUNNING' && state.temporalStatus !== 'COMPLETED') {
        if (isRetirement) {
          // A retirement refused before its gate (already retired, not retirable) or stopped: asked again with `retire`, not `lifecycle retry`.
          throw new CliError(
            `retirement ${workflowId} is closed (${closedSummary(state)})`,
            EXIT.failure,
            `fix the cause named above, then ask again: npx factory retire <model>@<version> --reason … --as …`,
          );
        }
        throw new CliError(`lifecycle ${workflowId} is closed (${closedSummary(state)})`, EXIT.failure, nextAfterFailure(workflowId, state.failure));
      }
    });

  const what: Record<Decision, string> = {
    approve: 'approve the candidate of a lifecycle',
    reject: 'reject the candidate of a lifecycle',
    withdraw: 'withdraw your own approval while the gate is open (the reason goes in --comment)',
  };
  for (const decision of DECISIONS) {
    const cmd = program
      .command(`${decision} <workflowId>`)
      .description(`${what[decision]} (through the \`decide\` update; refusals and closed lifecycles exit 4, unknown ones 6)`)
      .requiredOption('--as <email>', 'approver (must hold the role in the policy pack)')
      .requiredOption('--role <role>', 'the role signed for')
      .option('--meaning <meaning>', `signature meaning: ${MEANINGS.join(' | ')}`, decision === 'reject' ? 'review' : 'approval')
      .option('--digest <sha256>', "the candidate's model digest (default: read from the lifecycle)");
    if (decision === 'withdraw') cmd.requiredOption('--comment <text>', 'why the approval is withdrawn (recorded)');
    else {
      cmd.option('--comment <text>', 'comment recorded with the decision');
      cmd.option(
        '--key <file>',
        'sign with this SSH key (`ssh-keygen -Y sign -n factory-approval`): a private key file, or a public key file whose private half is in ssh-agent (default: the dev key `factory dev up` made for --as, if any)',
      );
    }
    cmd.option('--json', 'print JSON').action(async (workflowId: string, opts) => {
      const out = createOutput(!!opts.json);
      const verdict = await withTemporal(async (client, env) => {
        // Temporal first: a closed lifecycle is answered by the server, with no worker needed.
        const state = await lifecycleState(client, workflowId);
        if (state.temporalStatus !== 'RUNNING') {
          throw new CliError(
            `lifecycle ${workflowId} is closed (${closedSummary(state)})`,
            EXIT.refused,
            state.failure ? nextAfterFailure(workflowId, state.failure) : 'nothing to decide: its gate is closed for good',
          );
        }
        if (state.workersAnswering === false) throw workersNotAnswering(workflowId);
        const modelDigest = opts.digest ?? state.status?.modelDigest;
        if (!modelDigest)
          throw new CliError(
            `lifecycle ${workflowId} has no candidate yet (stage=${state.stage})`,
            EXIT.refused,
            `wait for it to reach the approval stage: npx factory status ${workflowId}`,
          );
        // approve and reject are signatures: signed with --key, else the principal's dev key when there is one.
        const keyFile = decision === 'withdraw' ? undefined : signingKeyFor(env, opts.as, opts.key);
        const signed = keyFile
          ? await signFor(keyFile, {
              ...statementSubject(workflowId, state.status, modelDigest),
              role: opts.role,
              meaning: opts.meaning,
              decision,
              approver: opts.as,
              comment: opts.comment,
            })
          : {};
        try {
          return await decide(client, workflowId, {
            decision,
            approver: opts.as,
            role: opts.role,
            meaning: opts.meaning,
            modelDigest,
            comment: opts.comment,
            ...signed,
          });
        } catch (err) {
          if (err instanceof ZodError) throw new CliError(`invalid decision: ${zodMessage(err)}`, EXIT.usage);
          if (err instanceof DecisionRefused) return { accepted: false as const, reason: err.message };
          if (isWorkersNotAnswering(err))
            throw new CliError(
              `lifecycle ${workflowId}: no verdict on the decision in time`,
              EXIT.unhealthy,
              `the workers may be down or busy: check \`npx factory dev status\`, then \`npx factory status ${workflowId}\``,
            );
          throw err;
        }
      });
      out.result(verdict, (v) => (v.accepted ? `${decision} recorded; pending roles: ${v.pendingRoles.join(', ') || 'none'}` : `refused: ${v.reason}`));
      if (!verdict.accepted) process.exitCode = EXIT.refused;
    });
  }
}

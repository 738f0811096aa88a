import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowUpdateFailedError, isGrpcDeadlineError } from '@temporalio/client';
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  ChildWorkflowFailure,
  TerminatedFailure,
  TimeoutFailure,
  TypedSearchAttributes,
} from '@temporalio/common';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/index.js';
import type { ApprovalStatus, DecideUpdate } from '../domain/approval.ts';
import { CANCEL_REQUEST_SIGNAL, type CancelRequest, cancelRequestSchema } from '../domain/cancel.ts';
import { decideUpdateSchema } from '../domain/approval.ts';
import { type LifecycleInput, type LifecycleOutcome, type LifecycleParams, lifecycleInputSchema, lifecycleWorkflowId } from '../domain/lifecycle.ts';
import { TASK_QUEUES } from '../domain/task-queues.ts';
import { HISTORY_ARCHIVER_WORKFLOW, type HistoryExportSummary, archiverWorkflowId } from '../domain/history.ts';
import { LifecycleStageKey, ModelNameKey, RiskTierKey } from '../../temporal/search-attributes.ts';
import type { DecisionVerdict } from '../../workflows/lifecycle.ts';

export const LIFECYCLE_WORKFLOW = 'modelLifecycle';

/** How long a status query may wait for a worker: past this, the workers are not answering. */
export const QUERY_TIMEOUT_MS = 3_000;
/** Describe, history reads: answered by the server alone, so a short deadline is generous. */
const SERVER_TIMEOUT_MS = 5_000;
/** A decision runs an activity (recordDecision) before the update returns. */
const UPDATE_TIMEOUT_MS = 60_000;

function withDeadline<T>(client: Client, ms: number, fn: () => Promise<T>): Promise<T> {
  return client.connection.withDeadline(Date.now() + ms, fn);
}

export interface InputDifference {
  field: string;
  existing: unknown;
  requested: unknown;
}

/**
 * A start for a model and commit whose lifecycle already exists with other inputs: attaching to it
 * would silently bend the request (another image, tier or dataset than the one asked for).
 */
export class LifecycleInputConflict extends Error {
  override name = 'LifecycleInputConflict';
  constructor(
    readonly workflowId: string,
    readonly runId: string,
    readonly differences: InputDifference[],
    /** The existing lifecycle's Temporal status: a failed one can be retried, with its own inputs. */
    readonly temporalStatus?: TemporalStatus,
  ) {
    super(
      `lifecycle ${workflowId} already exists with other inputs: ${differences.map((d) => `${d.field} (existing ${JSON.stringify(d.existing)}, requested ${JSON.stringify(d.requested)})`).join('; ')}`,
    );
  }
}

/** The fields that decide what a lifecycle does, after the schema's defaults and the workflow's schemaPath rule. */
function comparable(input: LifecycleParams | Record<string, unknown>): Record<string, unknown> {
  const flat: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k2, v2] of Object.entries(v)) flat[`${k}.${k2}`] = v2;
    else if (v !== undefined) flat[k] = v;
  }
  // The workflow reads schema.json beside the dataset when no schema is named: naming that same file is no difference.
  if (flat.schemaPath === undefined && typeof flat.datasetPath === 'string') flat.schemaPath = flat.datasetPath.replace(/[^/]+$/, 'schema.json');
  return flat;
}

/** Each field in which two lifecycle inputs differ, compared after normalisation (defaults are no difference). */
export function diffLifecycleInputs(
  existing: LifecycleParams | Record<string, unknown>,
  requested: LifecycleParams | Record<string, unknown>,
): InputDifference[] {
  const a = comparable(existing);
  const b = comparable(requested);
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .filter((field) => JSON.stringify(a[field]) !== JSON.stringify(b[field]))
    .map((field) => ({ field, existing: a[field], requested: b[field] }));
}

export interface RecordedLifecycle {
  /** The latest run under the workflow id. */
  runId: string;
  /** The first run of the latest run's chain (continue-as-new keeps it): its start event holds the input. */
  firstRunId: string;
  temporalStatus: TemporalStatus;
  workflowType: string;
  taskQueue: string;
  input: LifecycleParams | Record<string, unknown>;
  /** The recorded input passes this version's schema (else `input` is as recorded and `inputProblem` says why). */
  inputValid: boolean;
  inputProblem?: string;
}

/**
 * The input a lifecycle was started with: the first event of its chain's first run (one event read,
 * not the whole history), decoded by the client's own data converter, normalised by the schema;
 * with the latest run's status, type and task queue (describe). Throws WorkflowNotFoundError.
 */
export async function recordedLifecycle(client: Client, workflowId: string): Promise<RecordedLifecycle> {
  return withDeadline(client, SERVER_TIMEOUT_MS, async () => {
    const desc = await client.workflow.getHandle(workflowId).describe();
    const firstRunId = desc.raw.workflowExecutionInfo?.firstRunId || desc.runId;
    const page = await client.workflowService.getWorkflowExecutionHistory({
      namespace: client.options.namespace,
      execution: { workflowId, runId: firstRunId },
      maximumPageSize: 1,
    });
    const payloads = page.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
    const raw = await decodeFromPayloadsAtIndex<unknown>(client.options.loadedDataConverter, 0, payloads);
    const parsed = lifecycleInputSchema.safeParse(raw);
    return {
      runId: desc.runId,
      firstRunId,
      temporalStatus: statusName(desc.status.name),
      workflowType: desc.type,
      taskQueue: desc.taskQueue,
      // An input this version's schema no longer reads is compared as recorded.
      input: parsed.success ? parsed.data : ((raw ?? {}) as Record<string, unknown>),
      inputValid: parsed.success,
      ...(parsed.success ? {} : { inputProblem: parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ') }),
    };
  });
}

/** The input a lifecycle was started with (see recordedLifecycle). */
export async function recordedLifecycleInput(client: Client, workflowId: string): Promise<{ runId: string; input: LifecycleParams | Record<string, unknown> }> {
  const { runId, input } = await recordedLifecycle(client, workflowId);
  return { runId, input };
}

/** How a lifecycle can end without an outcome: these, and only these, may be retried (ALLOW_DUPLICATE_FAILED_ONLY). */
export const RETRYABLE_STATUSES: readonly TemporalStatus[] = ['FAILED', 'CANCELED', 'TERMINATED', 'TIMED_OUT'];

/**
 * A start (same inputs) for a lifecycle that ended without an outcome: a start never runs it again on
 * its own (a CI job retried after the failure would otherwise loop on it); `lifecycle retry` does.
 */
export class LifecycleEndedWithoutOutcome extends Error {
  override name = 'LifecycleEndedWithoutOutcome';
  constructor(
    readonly workflowId: string,
    readonly runId: string,
    readonly temporalStatus: TemporalStatus,
    readonly failure?: FailureCause,
  ) {
    super(`lifecycle ${workflowId} already exists and ended ${temporalStatus}${failure ? ` (${renderCause(failure)})` : ''}; a start does not run it again`);
  }
}

/**
 * Starts the lifecycle for a model and commit, or finds the one already started for them: the
 * workflow id is derived from both, so a retried CI job never starts a second lifecycle. A start
 * whose inputs differ from the existing lifecycle's is refused (LifecycleInputConflict), naming
 * each difference; one for a lifecycle that failed, was cancelled, terminated or timed out is
 * refused too (LifecycleEndedWithoutOutcome): `retryLifecycle` starts it again.
 */
export async function startLifecycle(
  client: Client,
  raw: LifecycleInput,
  opts: { taskQueuePrefix?: string } = {},
): Promise<{ workflowId: string; runId: string; existing: boolean }> {
  const input = lifecycleInputSchema.parse(raw);
  const workflowId = lifecycleWorkflowId(input.modelName, input.commitSha);
  try {
    const handle = await client.workflow.start(LIFECYCLE_WORKFLOW, {
      taskQueue: `${opts.taskQueuePrefix ?? ''}${TASK_QUEUES.control}`,
      workflowId,
      args: [input],
      // Running or closed, a lifecycle with this id is the one: never a second.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: new TypedSearchAttributes([
        { key: ModelNameKey, value: input.modelName },
        { key: RiskTierKey, value: input.riskTier },
      ]),
      staticSummary: `${input.modelName} @ ${input.commitSha.slice(0, 12)} (${input.riskTier} risk)`,
    });
    return { workflowId, runId: handle.firstExecutionRunId, existing: false };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      const recorded = await recordedLifecycle(client, workflowId);
      const differences = diffLifecycleInputs(recorded.input, input);
      if (differences.length) throw new LifecycleInputConflict(workflowId, recorded.runId, differences, recorded.temporalStatus);
      if (RETRYABLE_STATUSES.includes(recorded.temporalStatus)) {
        const state = await lifecycleState(client, workflowId).catch(() => undefined);
        throw new LifecycleEndedWithoutOutcome(workflowId, recorded.runId, recorded.temporalStatus, state?.failure);
      }
      return { workflowId, runId: recorded.runId, existing: true };
    }
    throw err;
  }
}

export async function lifecycleResult(client: Client, workflowId: string): Promise<LifecycleOutcome> {
  return client.workflow.getHandle(workflowId).result() as Promise<LifecycleOutcome>;
}

/**
 * The approvalStatus query. A query is answered by a worker: with none polling, the server would
 * hold it for its own long timeout, so it gets a short deadline (isWorkersNotAnswering tells).
 */
export async function approvalStatus(client: Client, workflowId: string, opts: { timeoutMs?: number } = {}): Promise<ApprovalStatus> {
  return withDeadline(client, opts.timeoutMs ?? QUERY_TIMEOUT_MS, () => client.workflow.getHandle(workflowId).query<ApprovalStatus>('approvalStatus'));
}

/** gRPC codes a query or update gets when no worker takes it: DEADLINE_EXCEEDED, and UNAVAILABLE / CANCELLED on the way. */
const NO_WORKER_CODES = new Set([4, 14, 1]);

/**
 * True when a call failed because no worker answered it in time (for queries and updates). Asked only
 * after the server itself answered (describe), so a deadline or an unavailable peer here is the workers'.
 * The SDK wraps the gRPC error ("Failed to query Workflow"); on a freshly started server the wrapped
 * error may lack the metadata isGrpcDeadlineError looks for, so the chain's codes and messages are read too.
 */
export function isWorkersNotAnswering(err: unknown): boolean {
  if (isGrpcDeadlineError(err)) return true;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = (e as Error & { cause?: unknown }).cause, depth++) {
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code === 'number' && NO_WORKER_CODES.has(code)) return true;
    if (/DEADLINE_EXCEEDED|deadline exceeded/i.test(e.message)) return true;
  }
  return false;
}

export class DecisionRefused extends Error {
  override name = 'DecisionRefused';
}

/** Sends a decision through the `decide` update and returns the workflow's verdict. */
export async function decide(client: Client, workflowId: string, raw: DecideUpdate, opts: { timeoutMs?: number } = {}): Promise<DecisionVerdict> {
  const update = decideUpdateSchema.parse(raw);
  try {
    return await withDeadline(client, opts.timeoutMs ?? UPDATE_TIMEOUT_MS, () =>
      client.workflow.getHandle(workflowId).executeUpdate<DecisionVerdict, [DecideUpdate]>('decide', { args: [update] }),
    );
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new DecisionRefused((err.cause as Error | undefined)?.message ?? err.message);
    throw err;
  }
}

// ---- what happened: Temporal's view of a lifecycle, without needing a worker ---------------------

/** Temporal's execution status, spelled as the server and its CLI spell it. */
export type TemporalStatus = 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELED' | 'TERMINATED' | 'TIMED_OUT' | 'CONTINUED_AS_NEW' | 'PAUSED' | 'UNKNOWN';

export interface FailureCause {
  /** The innermost failure's type: an ApplicationFailure's type (DatasetUnreadable, SchemaMismatch…), Timeout, Terminated, Cancelled. */
  type: string;
  message: string;
  /** The activity (or child workflow) it happened in, when it happened in one. */
  where?: string;
}

/**
 * The root cause of a failure: walks WorkflowFailedError → ActivityFailure → ApplicationFailure
 * (and any further causes) to the innermost one, which names what really went wrong ("ENOENT…",
 * "line 8, column 5") where the outer ones say only "Activity task failed".
 */
export function rootCause(err: unknown): FailureCause {
  let where: string | undefined;
  let cur: unknown = err;
  for (let depth = 0; depth < 32; depth++) {
    if (cur instanceof ActivityFailure) where = `activity ${cur.activityType}`;
    if (cur instanceof ChildWorkflowFailure) where = `child workflow ${cur.workflowType}`;
    const next = (cur as { cause?: unknown } | null)?.cause;
    if (!(next instanceof Error)) break;
    cur = next;
  }
  const e = cur as Error;
  const message = e?.message || String(cur);
  let type: string;
  if (e instanceof ApplicationFailure) type = e.type || 'Error';
  else if (e instanceof TimeoutFailure) type = `Timeout(${e.timeoutType})`;
  else if (e instanceof TerminatedFailure) type = 'Terminated';
  else if (e instanceof CancelledFailure) type = 'Cancelled';
  else type = e?.name || 'Error';
  return { type, message, ...(where ? { where } : {}) };
}

export function renderCause(c: FailureCause): string {
  return `${c.type}: ${c.message}${c.where ? ` (in ${c.where})` : ''}`;
}

export interface LifecycleState {
  workflowId: string;
  runId: string;
  temporalStatus: TemporalStatus;
  /** The stage: the query's when it answered, else the LifecycleStage search attribute (kept by the server). */
  stage?: string;
  modelName?: string;
  riskTier?: string;
  startTime: string;
  closeTime?: string;
  /** Running: the approvalStatus query's answer, when a worker gave it in time. */
  status?: ApprovalStatus;
  /** Running and no worker answered the query in time. */
  workersAnswering?: boolean;
  /** Completed: the lifecycle's outcome. */
  result?: LifecycleOutcome;
  /** Failed, terminated, cancelled or timed out: the root cause. */
  failure?: FailureCause;
}

function statusName(name: string): TemporalStatus {
  if (name === 'CANCELLED') return 'CANCELED';
  return (['RUNNING', 'COMPLETED', 'FAILED', 'TERMINATED', 'TIMED_OUT', 'CONTINUED_AS_NEW', 'PAUSED'].includes(name) ? name : 'UNKNOWN') as TemporalStatus;
}

/**
 * Where a lifecycle stands, from Temporal: describe() for the execution status and the search
 * attributes; a closed one's outcome or failure from its close event (server only: a query on a
 * closed workflow would need a worker to replay it); a running one's approvalStatus query under a
 * short deadline. Throws WorkflowNotFoundError for an unknown id.
 */
export async function lifecycleState(client: Client, workflowId: string, opts: { queryTimeoutMs?: number } = {}): Promise<LifecycleState> {
  const handle = client.workflow.getHandle(workflowId);
  const desc = await withDeadline(client, SERVER_TIMEOUT_MS, () => handle.describe());
  const sa = desc.typedSearchAttributes;
  const state: LifecycleState = {
    workflowId,
    runId: desc.runId,
    temporalStatus: statusName(desc.status.name),
    stage: sa.get(LifecycleStageKey),
    modelName: sa.get(ModelNameKey),
    riskTier: sa.get(RiskTierKey),
    startTime: desc.startTime.toISOString(),
    ...(desc.closeTime ? { closeTime: desc.closeTime.toISOString() } : {}),
  };
  if (state.temporalStatus === 'RUNNING') {
    try {
      state.status = await approvalStatus(client, workflowId, { timeoutMs: opts.queryTimeoutMs });
      state.stage = state.status.stage;
      state.workersAnswering = true;
    } catch (err) {
      if (!isWorkersNotAnswering(err)) throw err;
      state.workersAnswering = false;
    }
    return state;
  }
  // The close event of this very run: result() reads it from the server (no worker involved).
  const run = client.workflow.getHandle(workflowId, desc.runId, { followRuns: false });
  try {
    state.result = (await withDeadline(client, SERVER_TIMEOUT_MS, () => run.result())) as LifecycleOutcome;
    state.stage = state.result.outcome;
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    state.failure = err.cause ? rootCause(err.cause) : { type: state.temporalStatus, message: err.message };
  }
  return state;
}

/** One line for a closed lifecycle: "COMPLETED: deployed", "FAILED: DatasetUnreadable: …". */
export function closedSummary(s: LifecycleState): string {
  if (s.result) return `${s.temporalStatus}: ${s.result.outcome}${s.result.outcome === 'rejected' ? `: ${s.result.reason}` : ''}`;
  // "TERMINATED: Terminated: …" says it twice: an operator's ending has only its reason to add.
  if (s.failure)
    return `${s.temporalStatus}: ${['Terminated', 'Cancelled'].includes(s.failure.type) ? s.failure.message || 'no reason given' : renderCause(s.failure)}`;
  return s.temporalStatus;
}

// ---- retry, cancel, list ------------------------------------------------------------------------

/** A retry or cancel that does not apply to the lifecycle as it stands (running, closed, not a lifecycle). */
export class LifecycleActionRefused extends Error {
  override name = 'LifecycleActionRefused';
  constructor(
    message: string,
    readonly workflowId: string,
    readonly runId: string,
    readonly temporalStatus: TemporalStatus,
    readonly next?: string,
  ) {
    super(message);
  }
}

export interface RetryResult {
  workflowId: string;
  /** The new run (or, when another retry got there first, the run it started). */
  runId: string;
  previousRunId: string;
  previousStatus: TemporalStatus;
  /** Another retry had already started a new run: this one is followed instead. */
  existing: boolean;
}

/**
 * Starts a failed, cancelled, terminated or timed-out lifecycle again: a new run under the same
 * workflow id, with the input its chain was started with (read from history, not retyped) and on the
 * task queue it ran on, under ALLOW_DUPLICATE_FAILED_ONLY, so the server itself refuses a second run
 * of one that completed (deployed or rejected). The new run registers its own model version and
 * records its own audit events (their ids carry its run id).
 */
export async function retryLifecycle(client: Client, workflowId: string): Promise<RetryResult> {
  const recorded = await recordedLifecycle(client, workflowId);
  const refuse = (message: string, next?: string) => new LifecycleActionRefused(message, workflowId, recorded.runId, recorded.temporalStatus, next);
  if (recorded.workflowType !== LIFECYCLE_WORKFLOW) throw refuse(`${workflowId} is a ${recorded.workflowType} workflow, not a lifecycle`);
  if (recorded.temporalStatus === 'RUNNING') {
    throw refuse(
      `lifecycle ${workflowId} is running: nothing to retry`,
      `follow it: npx factory status ${workflowId} (or cancel it: npx factory lifecycle cancel ${workflowId} --reason "…")`,
    );
  }
  if (!RETRYABLE_STATUSES.includes(recorded.temporalStatus)) {
    const state = await lifecycleState(client, workflowId).catch(() => undefined);
    throw refuse(
      `lifecycle ${workflowId} is closed (${state ? closedSummary(state) : recorded.temporalStatus}): only a failed, cancelled, terminated or timed-out lifecycle is retried`,
      'a new release of this model needs a new commit (a lifecycle per model and commit)',
    );
  }
  if (!recorded.inputValid) {
    throw refuse(
      `lifecycle ${workflowId} was started with an input this version no longer accepts (${recorded.inputProblem})`,
      'start a lifecycle for a new commit with valid inputs',
    );
  }
  const input = recorded.input as LifecycleParams;
  try {
    const handle = await client.workflow.start(LIFECYCLE_WORKFLOW, {
      taskQueue: recorded.taskQueue,
      workflowId,
      args: [input],
      // The server's own rule: a new run only after a run that did not complete.
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      workflowIdConflictPolicy: 'FAIL',
      typedSearchAttributes: new TypedSearchAttributes([
        { key: ModelNameKey, value: input.modelName },
        { key: RiskTierKey, value: input.riskTier },
      ]),
      staticSummary: `${input.modelName} @ ${input.commitSha.slice(0, 12)} (${input.riskTier} risk), retry after ${recorded.temporalStatus}`,
    });
    return { workflowId, runId: handle.firstExecutionRunId, previousRunId: recorded.runId, previousStatus: recorded.temporalStatus, existing: false };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    // Another retry started a run between our describe and our start: follow that one.
    const now = await withDeadline(client, SERVER_TIMEOUT_MS, () => client.workflow.getHandle(workflowId).describe());
    if (now.runId !== recorded.runId)
      return { workflowId, runId: now.runId, previousRunId: recorded.runId, previousStatus: recorded.temporalStatus, existing: true };
    throw err;
  }
}

export interface CancelResult {
  workflowId: string;
  runId: string;
  /** The stage it was in when cancellation was requested (the LifecycleStage search attribute). */
  stage?: string;
  requested: true;
}

/**
 * Requests cancellation of a running lifecycle. Temporal's cancellation carries no reason, so the
 * `cancelRequest` signal ({by, reason}) goes first; the workflow records it with `lifecycle.cancelled`.
 * The signal and the cancel request reach the workflow in that order (one history, in order).
 */
export async function cancelLifecycle(client: Client, workflowId: string, raw: CancelRequest): Promise<CancelResult> {
  const request = cancelRequestSchema.parse(raw);
  const handle = client.workflow.getHandle(workflowId);
  const desc = await withDeadline(client, SERVER_TIMEOUT_MS, () => handle.describe());
  const status = statusName(desc.status.name);
  if (desc.type !== LIFECYCLE_WORKFLOW)
    throw new LifecycleActionRefused(`${workflowId} is a ${desc.type} workflow, not a lifecycle`, workflowId, desc.runId, status);
  if (status !== 'RUNNING') {
    const state = await lifecycleState(client, workflowId).catch(() => undefined);
    throw new LifecycleActionRefused(
      `lifecycle ${workflowId} is closed (${state ? closedSummary(state) : status}): nothing to cancel`,
      workflowId,
      desc.runId,
      status,
    );
  }
  // Both to the run just described: a run that ended meanwhile is not confused with a later one.
  const run = client.workflow.getHandle(workflowId, desc.runId);
  await withDeadline(client, SERVER_TIMEOUT_MS, async () => {
    await run.signal(CANCEL_REQUEST_SIGNAL, request);
    await run.cancel();
  });
  return { workflowId, runId: desc.runId, stage: desc.typedSearchAttributes.get(LifecycleStageKey), requested: true };
}

/** Waits for a run to close (however it closes) and says how it stands then. */
export async function waitClosed(client: Client, workflowId: string, runId: string): Promise<LifecycleState> {
  try {
    await client.workflow.getHandle(workflowId, runId, { followRuns: false }).result();
  } catch {
    /* a failure or a cancellation is a way of closing too: lifecycleState reads which */
  }
  return lifecycleState(client, workflowId);
}

/** `--state` of `lifecycle list`: Temporal's execution statuses, and the two outcomes of a completed one. */
export const LIST_STATES = ['running', 'completed', 'deployed', 'rejected', 'failed', 'cancelled', 'terminated', 'timed-out'] as const;
export type ListState = (typeof LIST_STATES)[number];

const LIST_QUERY: Record<ListState, string> = {
  running: `ExecutionStatus = 'Running'`,
  completed: `ExecutionStatus = 'Completed'`,
  deployed: `ExecutionStatus = 'Completed' AND LifecycleStage = 'deployed'`,
  rejected: `ExecutionStatus = 'Completed' AND LifecycleStage = 'rejected'`,
  failed: `ExecutionStatus = 'Failed'`,
  cancelled: `ExecutionStatus = 'Canceled'`,
  terminated: `ExecutionStatus = 'Terminated'`,
  'timed-out': `ExecutionStatus = 'TimedOut'`,
};

export interface LifecycleListItem {
  workflowId: string;
  runId: string;
  temporalStatus: TemporalStatus;
  stage?: string;
  modelName?: string;
  riskTier?: string;
  startTime: string;
  closeTime?: string;
}

/**
 * Lifecycles from Temporal's visibility store (no worker involved): one entry per run, newest first,
 * so a retried lifecycle shows each of its runs. Runs that continued as new (the gate's long waits)
 * are left out: the latest run of their chain stands for them. `model` must be a valid model name
 * (it goes into the visibility query).
 */
export async function listLifecycles(
  client: Client,
  opts: { state?: ListState; model?: string; limit?: number } = {},
): Promise<{ lifecycles: LifecycleListItem[]; truncated: boolean; query: string }> {
  const clauses = [`WorkflowType = '${LIFECYCLE_WORKFLOW}'`, `ExecutionStatus != 'ContinuedAsNew'`];
  if (opts.state) clauses.push(LIST_QUERY[opts.state]);
  if (opts.model !== undefined) clauses.push(`ModelName = '${lifecycleInputSchema.shape.modelName.parse(opts.model)}'`);
  const query = clauses.join(' AND ');
  const limit = opts.limit ?? 100;
  const lifecycles: LifecycleListItem[] = [];
  let truncated = false;
  await withDeadline(client, SERVER_TIMEOUT_MS * 2, async () => {
    for await (const w of client.workflow.list({ query, pageSize: Math.min(limit + 1, 1_000) })) {
      if (lifecycles.length === limit) {
        truncated = true;
        break;
      }
      const sa = w.typedSearchAttributes;
      lifecycles.push({
        workflowId: w.workflowId,
        runId: w.runId,
        temporalStatus: statusName(w.status.name),
        stage: sa.get(LifecycleStageKey),
        modelName: sa.get(ModelNameKey),
        riskTier: sa.get(RiskTierKey),
        startTime: w.startTime.toISOString(),
        ...(w.closeTime ? { closeTime: w.closeTime.toISOString() } : {}),
      });
    }
  });
  return { lifecycles, truncated, query };
}

/** The history of a lifecycle cannot be exported (yet): it is still running, or the run named continued as new. */
export class HistoryExportRefused extends Error {
  override name = 'HistoryExportRefused';
}

/**
 * Exports a closed lifecycle's full history through its archiver (the historyArchiver workflow on the
 * lifecycle's own task queue, under the id derived from the closing run): the workers store and
 * record it, as they do when a lifecycle closes. An archiver already running is joined; one that
 * has finished is run again, which stores nothing new. For lifecycles closed before the archiver existed.
 */
export async function requestHistoryExport(client: Client, workflowId: string, opts: { runId?: string; actor?: string } = {}): Promise<HistoryExportSummary> {
  const desc = await withDeadline(client, SERVER_TIMEOUT_MS, () => client.workflow.getHandle(workflowId, opts.runId).describe());
  if (desc.status.name === 'RUNNING')
    throw new HistoryExportRefused(`lifecycle ${workflowId} (run ${desc.runId}) is still running: its history is exported when it closes`);
  if (desc.status.name === 'CONTINUED_AS_NEW') {
    throw new HistoryExportRefused(`run ${desc.runId} of ${workflowId} continued as new: export the run that closed the lifecycle (it includes this one)`);
  }
  const handle = await client.workflow.start(HISTORY_ARCHIVER_WORKFLOW, {
    workflowId: archiverWorkflowId(workflowId, desc.runId),
    taskQueue: desc.taskQueue,
    args: [{ workflowId, runId: desc.runId, ...(opts.actor ? { actor: opts.actor } : {}) }],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  return (await handle.result()) as HistoryExportSummary;
}

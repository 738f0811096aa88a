import {
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  condition,
  continueAsNew,
  allHandlersFinished,
  defineQuery,
  defineSignal,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { controlActivities } from '../activities/index.ts';
import { escapeUnsafe } from '../src/domain/approval.ts';
import {
  ACKNOWLEDGE_SIGNAL,
  MONITOR_STATUS_QUERY,
  type MonitorCarry,
  type MonitorInput,
  type MonitorStatus,
  type WindowResult,
  acknowledgeSchema,
  monitorInputSchema,
  monitorWorkflowId,
} from '../src/domain/monitor.ts';
import { ROLLBACK_WORKFLOW, type RollbackInput, rollbackWorkflowId } from '../src/domain/rollback.ts';
import { queuesFor } from '../src/domain/task-queues.ts';
import { ModelNameKey, MonitoringReviewKey } from '../temporal/search-attributes.ts';

export const monitorStatusQuery = defineQuery<MonitorStatus>(MONITOR_STATUS_QUERY);
export const acknowledgeSignal = defineSignal<[unknown]>(ACKNOWLEDGE_SIGNAL);

/** Signals queued beyond this before the loop handles them are dropped (counted): an ack flood cannot grow state. */
const MAX_QUEUED_SIGNALS = 100;

/**
 * Post-deployment monitoring of one model (issue 9 item 5): every window it judges the version the
 * model's route serves (drift per feature against the training distribution, prediction and
 * confidence shift, error rate, latency p95; activities/monitoring.ts) by the tier's thresholds. A
 * breach opens a review (search attribute MonitoringReview=open, current details, the
 * `monitorStatus` query) that an `acknowledge` signal closes; where the tier says `autoRollback`, it
 * also starts `modelRollback` (trigger 'monitoring') as an abandoned child. While a review is open,
 * further breaches are recorded but open nothing and roll back nothing more. Continues as new every
 * `windowsPerRun` windows; ends when the model's route is retired and no review is open.
 */
export async function deploymentMonitor(rawInput: MonitorInput, carry?: MonitorCarry): Promise<{ ended: 'retired'; windowsDone: number }> {
  const parsed = monitorInputSchema.safeParse(rawInput);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `invalid monitor input: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      'InvalidInput',
    );
  }
  const input = parsed.data;
  const { workflowId, runId, taskQueue } = workflowInfo();
  const control = proxyActivities<typeof controlActivities>({
    taskQueue: queuesFor(taskQueue).control,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: ['InvalidInput'] },
  });

  let nextStart = carry?.nextWindowStartMs ?? Date.now();
  const status: MonitorStatus = {
    modelName: input.modelName,
    windowMs: input.windowMs,
    windowsDone: carry?.windowsDone ?? 0,
    nextWindowEnd: new Date(nextStart + input.windowMs).toISOString(),
    ...(carry?.openReview ? { openReview: carry.openReview } : {}),
    refused: [],
  };
  const queued: unknown[] = [];
  let dropped = 0;
  let seq = 0;
  setHandler(monitorStatusQuery, () => status);
  setHandler(acknowledgeSignal, (raw) => {
    if (queued.length >= MAX_QUEUED_SIGNALS) dropped++;
    else queued.push(raw);
  });

  const publish = () => {
    upsertSearchAttributes([
      { key: ModelNameKey, value: input.modelName },
      { key: MonitoringReviewKey, value: status.openReview ? 'open' : 'none' },
    ]);
    const r = status.openReview;
    setCurrentDetails(
      r
        ? `**Review open** since ${r.openedAt} (window ${r.windowId}, version ${r.version ?? '?'}): ${r.breaches
            .slice(0, 5)
            .map((b) => `${b.metric}${b.feature ? ` ${b.feature}` : ''} ${b.value} > ${b.threshold}`)
            .join(
              '; ',
            )}${r.autoRollback ? `; rollback ${r.rollbackWorkflowId}` : ''}. Acknowledge with the \`acknowledge\` signal: {"by": "<email>", "reason": "…"}`
        : `Monitoring ${input.modelName} every ${input.windowMs / 1000} s; ${status.windowsDone} windows; no review open.`,
    );
  };
  publish();

  /** The acknowledgements and malformed signals that arrived, in order: each recorded, accepted or refused. */
  const handleSignals = async () => {
    while (queued.length) {
      const raw = queued.shift();
      const at = new Date().toISOString();
      const n = seq++;
      const ack = acknowledgeSchema.safeParse(raw);
      if (!ack.success) {
        const reason = `not an acknowledgement: ${ack.error.issues.map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`).join('; ')}`.slice(0, 500);
        await control.recordMonitorRefusal({ workflowId, runId, seq: n, excerpt: escapeUnsafe(JSON.stringify(raw) ?? '').slice(0, 200), reason, at });
        status.refused = [...status.refused, { at, reason }].slice(-20);
        continue;
      }
      const verdict = await control.acknowledgeMonitoringReview({
        workflowId,
        runId,
        seq: n,
        reviewId: status.openReview?.reviewId ?? null,
        by: ack.data.by,
        reason: ack.data.reason,
        at,
      });
      if (verdict.accepted) {
        status.openReview = undefined;
      } else {
        status.refused = [...status.refused, { at, reason: verdict.reason }].slice(-20);
      }
      publish();
    }
    if (dropped) {
      log.warn('acknowledge signals dropped: more than the queue holds arrived between windows', { dropped });
      dropped = 0;
    }
  };

  const onBreach = async (w: WindowResult) => {
    if (status.openReview) return; // recorded with its window; the open review already asks for a look
    const reviewId = `${input.modelName}-w${w.windowId}`;
    // One rollback per breaching window: a retried start finds the one already started.
    const rollbackId = w.autoRollback ? rollbackWorkflowId(input.modelName, `monitoring-w${w.windowId}`) : undefined;
    status.openReview = {
      reviewId,
      openedAt: new Date().toISOString(),
      modelVersionId: w.modelVersionId,
      version: w.version,
      windowId: w.windowId,
      breaches: w.breaches.slice(0, 50),
      autoRollback: w.autoRollback,
      ...(rollbackId ? { rollbackWorkflowId: rollbackId } : {}),
    };
    await control.openMonitoringReview({
      workflowId,
      runId,
      reviewId,
      monitorId: workflowId,
      modelName: input.modelName,
      modelVersionId: w.modelVersionId,
      windowId: w.windowId,
      breaches: status.openReview.breaches,
      autoRollback: w.autoRollback,
      ...(rollbackId ? { rollbackWorkflowId: rollbackId } : {}),
      openedAt: status.openReview.openedAt,
    });
    publish();
    if (!rollbackId) return;
    const worst = w.breaches[0]!;
    try {
      const rollback: RollbackInput = {
        modelName: input.modelName,
        reason:
          `monitoring breach in window ${w.windowId} (version ${w.version}): ${worst.metric}${worst.feature ? ` ${worst.feature}` : ''} ${worst.value} > ${worst.threshold}`.slice(
            0,
            500,
          ),
        // The rollback contract (src/domain/rollback.ts): a monitoring rollback is requested by the monitor's workflow id.
        requestedBy: workflowId,
        trigger: 'monitoring',
      };
      await startChild(ROLLBACK_WORKFLOW, {
        workflowId: rollbackId,
        args: [rollback],
        // The rollback outlives the monitor's run (continue-as-new) and its end.
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
      status.openReview.rollbackStarted = true;
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      status.openReview.rollbackStarted = true;
    }
    publish();
  };

  for (let i = 0; i < input.windowsPerRun; i++) {
    const end = nextStart + input.windowMs;
    status.nextWindowEnd = new Date(end).toISOString();
    // Acknowledgements are handled as they come; the window is judged once it has ended.
    while (Date.now() < end) {
      await condition(() => queued.length > 0, end - Date.now());
      await handleSignals();
    }
    const w = await control.monitorWindow({
      workflowId,
      runId,
      monitorId: workflowId,
      modelName: input.modelName,
      start: new Date(nextStart).toISOString(),
      end: new Date(end).toISOString(),
    });
    status.windowsDone++;
    status.lastWindow = {
      windowId: w.windowId,
      start: new Date(nextStart).toISOString(),
      end: new Date(end).toISOString(),
      version: w.version,
      requests: w.requests,
      rows: w.rows,
      breaches: w.breaches.slice(0, 50),
    };
    nextStart = end;
    if (w.breaches.length) await onBreach(w);
    publish();
    await handleSignals();
    if (w.routeState === 'retired' && !status.openReview) {
      await condition(allHandlersFinished);
      return { ended: 'retired', windowsDone: status.windowsDone };
    }
    if (workflowInfo().continueAsNewSuggested) break;
  }
  await handleSignals();
  await condition(allHandlersFinished);
  return continueAsNew<typeof deploymentMonitor>(rawInput, {
    nextWindowStartMs: nextStart,
    windowsDone: status.windowsDone,
    ...(status.openReview ? { openReview: status.openReview } : {}),
  });
}

/** Starts the monitor of a model unless one runs; never fails its caller (the lifecycle). */
export async function ensureMonitor(input: MonitorInput): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    try {
      await startChild(deploymentMonitor, {
        workflowId: monitorWorkflowId(input.modelName),
        args: [input],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return; // it follows the route: the new version is monitored
      log.warn('deployment monitor not started; run `factory monitor start` for this model', { error: String(err) });
    }
  });
}

import { ActivityFailure, CancellationScope, ParentClosePolicy, log, proxyActivities, startChild, workflowInfo } from '@temporalio/workflow';
import type { controlActivities } from '../activities/index.ts';
import { type HistoryExportSummary, archiverWorkflowId } from '../src/domain/history.ts';
import { queuesFor } from '../src/domain/task-queues.ts';

/**
 * Exports a closed lifecycle's full history as evidence. A workflow cannot export its own complete
 * history while it runs, so the lifecycle starts this one as it closes (parent-close policy ABANDON,
 * id derived from the lifecycle's: archiverWorkflowId) and this one waits in an activity until the
 * lifecycle run has closed, then stores every run of its chain under Object Lock, records it and
 * signs it into the audit chain, then asks for a signed checkpoint of the chain. `factory history export` starts it too (for lifecycles closed before
 * this existed, or again), with `actor` naming who asked.
 */
export async function historyArchiver(input: { workflowId: string; runId: string; actor?: string }): Promise<HistoryExportSummary> {
  const control = proxyActivities<Pick<typeof controlActivities, 'exportClosedHistory'>>({
    taskQueue: queuesFor(workflowInfo().taskQueue).control,
    // Each attempt waits at most 5 minutes for the close, heartbeating every second.
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 30 },
  });
  const exported = await control.exportClosedHistory(input);
  // Anchor the `history.exported` event at once: a signed checkpoint of the chain's head (the
  // lifecycle's own end-of-life checkpoint was written before this event). One that cannot be written
  // does not undo the export: the audit-checkpoint schedule writes the next within minutes.
  const anchor = proxyActivities<Pick<typeof controlActivities, 'writeAuditCheckpoint'>>({
    taskQueue: queuesFor(workflowInfo().taskQueue).control,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 10 },
  });
  try {
    await anchor.writeAuditCheckpoint({ reason: `history exported: ${input.workflowId}` });
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
  }
  return exported;
}

/**
 * Starts the history archiver for the calling run as it closes: it outlives the caller (ABANDON) and
 * waits for the close before it reads the history. Never fails the caller: an archiver that cannot
 * start (one already running under the derived id) is logged, and `factory history export` does the
 * same work. Each caller keeps its own `patched()` check before calling this.
 */
export async function startArchiverOnClose(subject: string): Promise<void> {
  const { workflowId, runId } = workflowInfo();
  await CancellationScope.nonCancellable(async () => {
    try {
      await startChild(historyArchiver, {
        workflowId: archiverWorkflowId(workflowId, runId),
        args: [{ workflowId, runId }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
      });
    } catch (err) {
      log.warn(`history archiver not started; run \`factory history export\` for this ${subject}`, { error: String(err) });
    }
  });
}

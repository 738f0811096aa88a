import { ActivityFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { controlActivities } from '../activities/index.ts';
import type { EvidenceExportInput, EvidenceExportSummary } from '../src/domain/evidence.ts';
import { queuesFor } from '../src/domain/task-queues.ts';

/**
 * Exports one model version's evidence pack for an examination (`factory evidence export`): first a
 * signed checkpoint of the audit chain's head, so the version's newest events are anchored, then the
 * pack (built, stored under Object Lock, and recorded as `evidence.exported`: who, which version,
 * which case). The pack's time is the workflow's start: a retried activity builds the same bytes.
 */
export async function evidenceExport(input: EvidenceExportInput): Promise<EvidenceExportSummary> {
  const queue = queuesFor(workflowInfo().taskQueue).control;
  const anchor = proxyActivities<Pick<typeof controlActivities, 'writeAuditCheckpoint'>>({
    taskQueue: queue,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 10 },
  });
  try {
    await anchor.writeAuditCheckpoint({ reason: `evidence export: ${String(input?.model).slice(0, 100)}@${String(input?.version)}` });
  } catch (err) {
    // No new checkpoint (e.g. the store was slow): the pack uses the newest one covering the version, if any.
    if (!(err instanceof ActivityFailure)) throw err;
  }
  const control = proxyActivities<Pick<typeof controlActivities, 'exportEvidencePack'>>({
    taskQueue: queue,
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 10 },
  });
  const info = workflowInfo();
  return control.exportEvidencePack({
    ...input,
    exportWorkflowId: info.workflowId,
    exportRunId: info.runId,
    exportedAt: info.startTime.toISOString(),
  });
}

import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { controlActivities } from '../activities/index.ts';
import type { CheckpointSummary } from '../src/domain/checkpoint.ts';
import { queuesFor } from '../src/domain/task-queues.ts';

/**
 * One signed checkpoint of the audit chain's head (none when it has not moved). Started every N
 * minutes by the `audit-checkpoint` schedule (FACTORY_AUDIT_CHECKPOINT_MINUTES), or on demand.
 */
export async function auditCheckpoint(input: { reason?: string } = {}): Promise<CheckpointSummary> {
  const control = proxyActivities<typeof controlActivities>({
    taskQueue: queuesFor(workflowInfo().taskQueue).control,
    startToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '15 seconds', maximumAttempts: 10 },
  });
  return control.writeAuditCheckpoint({ reason: (input.reason ?? 'schedule').slice(0, 200) });
}

import { ApplicationFailure, Context } from '@temporalio/activity';
import type { HistoryExportSummary } from '../src/domain/history.ts';
import { HistoryExportError, describeRun, exportLifecycleHistory } from '../src/history/export.ts';
import { activityDeps, activityTemporalClient } from './deps.ts';

/** How often the archiver asks whether the lifecycle has closed, and for how long per attempt. */
const POLL_MS = 1_000;
const WAIT_MS = 5 * 60_000;

/**
 * Waits (heartbeating, bounded per attempt) until the lifecycle run has closed, then exports its full
 * history, every run of its continue-as-new chain (see exportLifecycleHistory). Idempotent.
 */
export async function exportClosedHistory(input: { workflowId: string; runId: string; actor?: string }): Promise<HistoryExportSummary> {
  const ctx = Context.current();
  const client = await activityTemporalClient();
  const started = Date.now();
  for (;;) {
    const run = await describeRun(client, input.workflowId, input.runId);
    if (run.closed) break;
    if (Date.now() - started > WAIT_MS) {
      // Retryable: the next attempt waits again (the workflow bounds the attempts).
      throw ApplicationFailure.retryable(
        `lifecycle ${input.workflowId} run ${input.runId} is still running after ${WAIT_MS / 1000} s`,
        'LifecycleStillRunning',
      );
    }
    ctx.heartbeat({ waiting: run.status });
    await ctx.sleep(POLL_MS);
  }
  const { db, s3, env } = activityDeps();
  try {
    return await exportLifecycleHistory({ client, db, s3, env }, input.workflowId, { runId: input.runId, actor: input.actor });
  } catch (err) {
    if (err instanceof HistoryExportError && err.reason !== 'running') throw ApplicationFailure.nonRetryable(err.message, 'HistoryNotExportable');
    throw err;
  }
}

/** Pure names shared by the lifecycle workflow, the archiver and the export code (no I/O: workflow-safe). */

/** The audit kind that signs an exported history into the chain (`<noun>.<past-verb>`). */
export const HISTORY_EXPORTED = 'history.exported';

/** The workflow type that exports a closed lifecycle's history (stable API, README). */
export const HISTORY_ARCHIVER_WORKFLOW = 'historyArchiver';

/** The id of the archiver a lifecycle run starts as it closes: derived, so a second start of it is refused by Temporal. */
export function archiverWorkflowId(workflowId: string, runId: string): string {
  return `${workflowId}/history-export/${runId}`;
}

/** One exported run of a lifecycle's chain (a row of history_exports). */
export interface ExportedRun {
  runId: string;
  /** 0 for the first run of the chain, then one per continue-as-new. */
  runIndex: number;
  /** As Temporal names it: COMPLETED, FAILED, CANCELED, TERMINATED, TIMED_OUT or CONTINUED_AS_NEW. */
  status: string;
  uri: string;
  digest: string;
  events: number;
  bytes: number;
  retainUntil: string;
  /** Exported before (a retried activity, a second `factory history export`): nothing was written. */
  duplicate: boolean;
}

/** What the archiver returns (and the activity it runs): `factory history export --json` prints it. */
export interface HistoryExportSummary {
  workflowId: string;
  closedRunId: string;
  status: string;
  runs: ExportedRun[];
  auditEventId: string;
}

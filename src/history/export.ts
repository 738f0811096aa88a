import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { Insertable, Kysely } from 'kysely';
import { appendAuditEventsIn } from '../audit/append.ts';
import type { Env } from '../config/env.ts';
import type { Database, HistoryExportsTable } from '../db/schema.ts';
import { type ExportedRun, HISTORY_EXPORTED, type HistoryExportSummary } from '../domain/history.ts';
import { retainUntilInForce } from '../policy/pack.ts';
import { putOnce } from '../storage/objects.ts';
import { bucket } from '../storage/s3.ts';

/** A run of a continue-as-new chain; a chain longer than this is refused (the lifecycle continues at most every 1 000 decisions). */
export const MAX_CHAIN_RUNS = 1_000;
/** Temporal refuses histories over 50 MiB; one larger than this is not a lifecycle's. */
export const MAX_HISTORY_BYTES = 64 * 1024 * 1024;

export class HistoryExportError extends Error {
  override name = 'HistoryExportError';
  constructor(
    message: string,
    readonly reason: 'running' | 'not-closing-run' | 'too-large' | 'too-long',
  ) {
    super(message);
  }
}

/** One run's history as `temporal workflow show --output json` prints it (the proto JSON). */
export interface RunHistory {
  runId: string;
  /** As the TypeScript SDK names it: COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT or CONTINUED_AS_NEW. */
  status: string;
  text: string;
  events: number;
}

/** Where a run's history is kept: one object per run, named by workflow id and run id. */
export function historyKey(workflowId: string, runId: string): string {
  return `histories/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}.json`;
}

/** The status of a run and whether it is closed (anything but RUNNING). */
export async function describeRun(client: Client, workflowId: string, runId?: string): Promise<{ runId: string; status: string; closed: boolean }> {
  const d = await client.workflow.getHandle(workflowId, runId).describe();
  // Temporal's own spelling (the temporal CLI, `factory status`): CANCELED.
  const status = d.status.name === 'CANCELLED' ? 'CANCELED' : d.status.name;
  return { runId: d.runId, status, closed: status !== 'RUNNING' };
}

/** Reads one run's full history (every page) as proto JSON. */
export async function fetchRunHistory(client: Client, workflowId: string, runId: string): Promise<{ text: string; events: number; continuedFrom?: string }> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const text = historyToJSON(history);
  if (Buffer.byteLength(text) > MAX_HISTORY_BYTES)
    throw new HistoryExportError(`the history of run ${runId} is larger than ${MAX_HISTORY_BYTES} bytes`, 'too-large');
  const first = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  return { text, events: history.events?.length ?? 0, continuedFrom: first?.continuedExecutionRunId || undefined };
}

/**
 * Every run of the continue-as-new chain that ends with `closedRunId`, oldest first: followed back
 * through each run's first event (continuedExecutionRunId).
 */
export async function fetchRunChain(client: Client, workflowId: string, closedRunId: string): Promise<RunHistory[]> {
  const chain: RunHistory[] = [];
  for (let runId: string | undefined = closedRunId; runId;) {
    if (chain.length >= MAX_CHAIN_RUNS) throw new HistoryExportError(`lifecycle ${workflowId} has more than ${MAX_CHAIN_RUNS} runs in one chain`, 'too-long');
    const { text, events, continuedFrom } = await fetchRunHistory(client, workflowId, runId);
    const status = runId === closedRunId ? (await describeRun(client, workflowId, runId)).status : 'CONTINUED_AS_NEW';
    chain.unshift({ runId, status, text, events });
    runId = continuedFrom;
  }
  return chain;
}

export interface ExportDeps {
  client: Client;
  db: Kysely<Database>;
  s3: S3Client;
  env: Env;
}

/**
 * Exports the full history of a closed lifecycle, every run of its continue-as-new chain, to the
 * evidence bucket under Object Lock (COMPLIANCE until the policy pack's `histories` retention), records
 * each run in history_exports and appends `history.exported` (with every digest) to the audit chain.
 * Idempotent: a run already recorded is not fetched or stored again, a retried put of the same bytes
 * adds no version, and the audit event's id derives from the workflow id and the closing run id.
 * `runId` picks a run that closed (default: the latest run of the workflow id).
 */
export async function exportLifecycleHistory(
  deps: ExportDeps,
  workflowId: string,
  opts: { runId?: string; actor?: string; now?: () => Date } = {},
): Promise<HistoryExportSummary> {
  const now = opts.now ?? (() => new Date());
  const closing = await describeRun(deps.client, workflowId, opts.runId);
  if (!closing.closed)
    throw new HistoryExportError(`lifecycle ${workflowId} (run ${closing.runId}) is still running: its history is exported once it closes`, 'running');
  if (closing.status === 'CONTINUED_AS_NEW') {
    throw new HistoryExportError(
      `run ${closing.runId} of ${workflowId} continued as new: export the run that closed the lifecycle (it includes this one)`,
      'not-closing-run',
    );
  }
  const recorded = new Map(
    (await deps.db.selectFrom('history_exports').selectAll().where('workflow_id', '=', workflowId).where('closed_run_id', '=', closing.runId).execute()).map(
      (r) => [r.run_id, r],
    ),
  );
  const runs: ExportedRun[] = [];
  const pending: Array<Insertable<HistoryExportsTable>> = [];
  const chain = await fetchRunChain(deps.client, workflowId, closing.runId);
  for (const [runIndex, run] of chain.entries()) {
    const had = recorded.get(run.runId);
    if (had) {
      runs.push({
        runId: had.run_id,
        runIndex: had.run_index,
        status: had.status,
        uri: had.uri,
        digest: had.digest,
        events: had.events,
        bytes: Number(had.bytes),
        retainUntil: had.retain_until.toISOString(),
        duplicate: true,
      });
      continue;
    }
    const retainUntil = retainUntilInForce('histories', now());
    const put = await putOnce(deps.s3, bucket(deps.env, 'evidence'), historyKey(workflowId, run.runId), run.text, {
      contentType: 'application/json',
      retainUntil,
    });
    const row = {
      workflow_id: workflowId,
      run_id: run.runId,
      closed_run_id: closing.runId,
      run_index: runIndex,
      status: run.status,
      uri: put.uri,
      digest: put.digest,
      events: run.events,
      bytes: Buffer.byteLength(run.text),
      retain_until: retainUntil,
    };
    // Recorded below, in the transaction that appends the audit event: rows and event commit together.
    pending.push(row);
    runs.push({
      runId: run.runId,
      runIndex,
      status: run.status,
      uri: put.uri,
      digest: put.digest,
      events: run.events,
      bytes: row.bytes,
      retainUntil: retainUntil.toISOString(),
      duplicate: false,
    });
  }
  // Rows first, then the event (appending switches the transaction to the audit writer's role).
  const appended = await deps.db.transaction().execute(async (tx) => {
    for (const row of pending) {
      const inserted = await tx
        .insertInto('history_exports')
        .values(row)
        .onConflict((oc) => oc.columns(['workflow_id', 'run_id']).doNothing())
        .returning('run_id')
        .executeTakeFirst();
      if (!inserted) runs.find((r) => r.runId === row.run_id)!.duplicate = true;
    }
    const [appended] = await appendAuditEventsIn(tx, [
      {
        workflowId,
        runId: closing.runId,
        step: HISTORY_EXPORTED,
        kind: HISTORY_EXPORTED,
        actor: opts.actor ?? 'factory',
        payload: {
          closedRunId: closing.runId,
          status: closing.status,
          runs: runs.map((r) => ({ runId: r.runId, uri: r.uri, digest: r.digest, events: r.events, bytes: r.bytes, retainUntil: r.retainUntil })),
        },
        occurredAt: now().toISOString(),
      },
    ]);
    return appended!;
  });
  return { workflowId, closedRunId: closing.runId, status: closing.status, runs, auditEventId: appended.eventId };
}

import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.ts';
import { parseS3Uri } from '../serving/s3-uri.ts';
import { getBytes, sha256Digest } from '../storage/objects.ts';
import { type Discrepancy, type ProjectionRows, type RunHistoryJson, crossCheck } from './cross-check.ts';
import { MAX_HISTORY_BYTES, fetchRunHistory } from './export.ts';

export interface HistoryCheckResult {
  ok: boolean;
  /** Lifecycles (workflow ids) checked. */
  lifecycles: number;
  /** Runs read from exported objects (digest verified) and live from Temporal. */
  exportedRuns: number;
  liveRuns: number;
  /** Lifecycles with no history anywhere (not exported, gone from Temporal or Temporal unreachable). */
  unavailable: number;
  discrepancies: Discrepancy[];
}

/** The lifecycles the projection knows: any workflow id with a decision, a version, an export or a checked audit event. */
async function lifecycleIds(db: Kysely<Database>, only?: string): Promise<string[]> {
  if (only) return [only];
  const rows = await sql<{ workflow_id: string }>`
    SELECT workflow_id FROM approvals
    UNION SELECT workflow_id FROM model_versions
    UNION SELECT workflow_id FROM history_exports
    UNION SELECT workflow_id FROM audit_events WHERE kind LIKE 'approval.%' OR kind LIKE 'model.%' OR kind LIKE 'lifecycle.%'
    ORDER BY workflow_id`.execute(db);
  return rows.rows.map((r) => r.workflow_id);
}

async function projectionRows(db: Kysely<Database>, workflowId: string): Promise<ProjectionRows> {
  const [approvals, modelVersions, deployments, auditEvents] = await Promise.all([
    db.selectFrom('approvals').select(['id', 'decision', 'approver', 'role', 'model_digest', 'accepted']).where('workflow_id', '=', workflowId).execute(),
    db.selectFrom('model_versions').select(['id', 'version', 'state', 'run_id']).where('workflow_id', '=', workflowId).execute(),
    db
      .selectFrom('deployments')
      .innerJoin('model_versions', 'model_versions.id', 'deployments.model_version_id')
      .select(['deployments.id', 'deployments.model_version_id', 'deployments.triton_model', 'deployments.triton_version', 'deployments.artifact_digest'])
      .where('model_versions.workflow_id', '=', workflowId)
      .execute(),
    db
      .selectFrom('audit_events')
      .select(['event_id', 'kind', 'actor'])
      .where('workflow_id', '=', workflowId)
      .where((eb) => eb.or([eb('kind', 'like', 'approval.%'), eb('kind', 'like', 'model.%'), eb('kind', 'like', 'lifecycle.%')]))
      .execute(),
  ]);
  return { approvals, modelVersions, deployments, auditEvents };
}

/** Run ids of a workflow id that Temporal still has (visibility), or undefined when it cannot be asked. */
async function liveRunIds(client: Client | undefined, workflowId: string): Promise<string[] | undefined> {
  if (!client) return undefined;
  const ids: string[] = [];
  try {
    const query = `WorkflowId = '${workflowId.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
    for await (const wf of client.workflow.list({ query })) ids.push(wf.runId);
  } catch {
    return undefined;
  }
  return ids;
}

function firstEventTime(h: RunHistoryJson): string {
  const t = (h.history.events?.[0] as { eventTime?: unknown } | undefined)?.eventTime;
  return typeof t === 'string' ? t : '';
}

/**
 * `factory audit verify --history`: for each lifecycle (or only `workflowId`), reads every run's
 * history (the exported object, its digest checked; else live from Temporal) and cross-checks the
 * projection against it (see crossCheck). A lifecycle whose history is nowhere is counted unavailable.
 */
export async function verifyHistories(
  db: Kysely<Database>,
  s3: S3Client,
  client: Client | undefined,
  opts: { workflowId?: string } = {},
): Promise<HistoryCheckResult> {
  const result: HistoryCheckResult = { ok: true, lifecycles: 0, exportedRuns: 0, liveRuns: 0, unavailable: 0, discrepancies: [] };
  for (const workflowId of await lifecycleIds(db, opts.workflowId)) {
    result.lifecycles++;
    const runs = new Map<string, RunHistoryJson>();
    const exports = await db.selectFrom('history_exports').select(['run_id', 'uri', 'digest']).where('workflow_id', '=', workflowId).execute();
    for (const x of exports) {
      const loc = parseS3Uri(x.uri);
      let text: Buffer | undefined;
      try {
        text = loc ? await getBytes(s3, loc.bucket, loc.key) : undefined;
      } catch {
        text = undefined;
      }
      if (!text || text.length > MAX_HISTORY_BYTES || sha256Digest(text) !== x.digest) {
        result.discrepancies.push({
          workflowId,
          kind: 'export-digest-mismatch',
          table: 'history_exports',
          id: x.run_id,
          reason: text ? `the exported history ${x.uri} is ${sha256Digest(text)}, recorded ${x.digest}` : `the exported history ${x.uri} cannot be read`,
        });
        continue;
      }
      runs.set(x.run_id, { runId: x.run_id, history: JSON.parse(text.toString('utf8')) as RunHistoryJson['history'] });
      result.exportedRuns++;
    }
    for (const runId of (await liveRunIds(client, workflowId)) ?? []) {
      if (runs.has(runId)) continue;
      try {
        const { text } = await fetchRunHistory(client!, workflowId, runId);
        runs.set(runId, { runId, history: JSON.parse(text) as RunHistoryJson['history'] });
        result.liveRuns++;
      } catch {
        // Gone between the listing and the read (retention): counted below if nothing is left.
      }
    }
    if (!runs.size) {
      result.unavailable++;
      result.discrepancies.push({
        workflowId,
        kind: 'history-unavailable',
        table: 'history',
        id: workflowId,
        reason: client
          ? 'no exported history and Temporal no longer has it (namespace retention): the projection cannot be cross-checked'
          : 'no exported history and Temporal could not be reached',
      });
      continue;
    }
    const ordered = [...runs.values()].sort((a, b) => firstEventTime(a).localeCompare(firstEventTime(b)));
    result.discrepancies.push(...crossCheck(workflowId, ordered, await projectionRows(db, workflowId)));
  }
  result.ok = result.discrepancies.length === 0;
  return result;
}

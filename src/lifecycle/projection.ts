import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

/** What the registry (the Postgres projection) says of a lifecycle's current run. */
export interface RegistryView {
  /** The model version the run registered; absent when it never got that far. */
  version?: { id: number; version: number; state: string; runId: string | null };
  /** The terminal audit events recorded for runs of this workflow id (lifecycle.failed | lifecycle.cancelled). */
  endEvents: ReadonlyArray<{ kind: string; runId: string }>;
}

/** The terminal event of one run, if it recorded one. */
export function endEventOf(view: RegistryView, runId: string): string | undefined {
  return view.endEvents.find((e) => e.runId === runId)?.kind;
}

export interface Agreement {
  agrees: boolean;
  /** Why they disagree, and what follows: for people and for `--json`. */
  reason?: string;
}

const RUNNING_STATES = ['registered', 'validated', 'approved'];

/**
 * Does the projection say what Temporal says? Temporal's history is the reference; the projection is
 * what `trace` and examiners read. A TERMINATED or TIMED_OUT execution never ran its own code to the
 * end, so its version stays where it was: that is the case this exists to show.
 */
export function projectionAgreement(temporalStatus: string, outcome: string | undefined, view: RegistryView, currentRunId: string): Agreement {
  // A retried lifecycle that has not registered yet: the latest version is the failed run's.
  const earlierRunEnded =
    view.version && view.version.runId !== null && view.version.runId !== currentRunId && ['failed', 'cancelled'].includes(view.version.state);
  const state = earlierRunEnded ? undefined : view.version?.state;
  const endEvent = endEventOf(view, currentRunId);
  const expect = (ok: boolean, reason: string): Agreement => (ok ? { agrees: true } : { agrees: false, reason });
  switch (temporalStatus) {
    case 'RUNNING':
      return expect(state === undefined || RUNNING_STATES.includes(state), `Temporal says RUNNING, the registry says ${state}`);
    case 'CONTINUED_AS_NEW':
      return { agrees: true };
    case 'COMPLETED':
      // A deployed version may since have been rolled back or retired (workflows of their own).
      if (outcome === 'deployed' && (state === 'rolled-back' || state === 'retired')) return { agrees: true };
      return expect(state === outcome, `Temporal says COMPLETED (${outcome}), the registry says ${state ?? 'no version'}`);
    case 'FAILED':
      return expect(
        (state === undefined || state === 'failed') && endEvent === 'lifecycle.failed',
        `Temporal says FAILED, the registry says ${state ?? 'no version'}${endEvent ? '' : ' and no lifecycle.failed event was recorded'}`,
      );
    case 'CANCELED':
      return expect(
        (state === undefined || state === 'cancelled') && endEvent === 'lifecycle.cancelled',
        `Temporal says CANCELED, the registry says ${state ?? 'no version'}${endEvent ? '' : ' and no lifecycle.cancelled event was recorded'}`,
      );
    default:
      // TERMINATED, TIMED_OUT: the lifecycle's code did not run its end, so nothing recorded it.
      return {
        agrees: false,
        reason: `Temporal says ${temporalStatus}: the lifecycle's own code did not record its end${state ? `, and the registry still says ${state}` : ''}; start it again with \`factory lifecycle retry\``,
      };
  }
}

/** Reads the registry's view of a lifecycle (every run of its workflow id). */
export async function registryView(db: Kysely<Database>, workflowId: string): Promise<RegistryView> {
  // The latest version of this workflow id: registered by this run, or by an earlier run of its
  // continue-as-new chain (the gate continues as new), or by a failed run before a retry.
  const version = await db
    .selectFrom('model_versions')
    .select(['id', 'version', 'state', 'run_id'])
    .where('workflow_id', '=', workflowId)
    .orderBy('id', 'desc')
    .executeTakeFirst();
  const ends = await db
    .selectFrom('audit_events')
    .select(['kind', 'run_id'])
    .where('workflow_id', '=', workflowId)
    .where('kind', 'in', ['lifecycle.failed', 'lifecycle.cancelled'])
    .execute();
  return {
    ...(version ? { version: { id: version.id, version: version.version, state: version.state, runId: version.run_id } } : {}),
    endEvents: ends.map((e) => ({ kind: e.kind, runId: e.run_id })),
  };
}

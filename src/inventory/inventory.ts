import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { ModelState } from '../domain/model-state.ts';
import { type PolicyPack, durationMs } from '../policy/schema.ts';

/**
 * The model inventory (SR 11-7): every model version with its inventory state, owner, risk tier, last
 * validation and the revalidation due date the policy pack in force gives its tier (`revalidateEvery`).
 */
export const INVENTORY_STATES = ['development', 'validated', 'approved', 'deployed', 'rolled back', 'retired', 'rejected', 'failed', 'cancelled'] as const;
export type InventoryState = (typeof INVENTORY_STATES)[number];

/** The registry's states as an inventory names them (a version registered but not yet validated is in development). */
export const INVENTORY_STATE: Record<ModelState, InventoryState> = {
  registered: 'development',
  validated: 'validated',
  approved: 'approved',
  deployed: 'deployed',
  'rolled-back': 'rolled back',
  retired: 'retired',
  rejected: 'rejected',
  failed: 'failed',
  cancelled: 'cancelled',
};

/** States whose validation must stand: the version is in use or may be put in use. */
const NEEDS_REVALIDATION: ReadonlySet<ModelState> = new Set<ModelState>(['validated', 'approved', 'deployed', 'rolled-back']);

export interface InventoryEntry {
  model: string;
  version: number;
  state: InventoryState;
  registryState: ModelState;
  riskTier: string;
  /** The accepted model-owner approver, else the developer who committed it. */
  owner: string;
  workflowId: string;
  lastValidatedAt: string | null;
  revalidateEvery: string | null;
  revalidationDueAt: string | null;
  overdue: boolean;
  overdueDays: number | null;
  /** The newest validation a revalidation review renewed (`model.revalidated`), if any: counted in lastValidatedAt. */
  revalidatedAt: string | null;
  /** The workflow id of a revalidation review opened and not yet decided (`revalidationReview`), if any. */
  openRevalidation: string | null;
}

/** When a version's validation falls due, and whether it is overdue at `now`: pure (unit-tested). */
export function revalidationOf(
  v: { state: ModelState; riskTier: string; lastValidatedAt: Date | null },
  pack: Pick<PolicyPack, 'riskTiers'>,
  now: Date,
): Pick<InventoryEntry, 'revalidateEvery' | 'revalidationDueAt' | 'overdue' | 'overdueDays'> {
  const every = pack.riskTiers[v.riskTier as keyof PolicyPack['riskTiers']]?.revalidateEvery ?? null;
  if (!every || !v.lastValidatedAt || !NEEDS_REVALIDATION.has(v.state))
    return { revalidateEvery: every, revalidationDueAt: null, overdue: false, overdueDays: null };
  const due = new Date(v.lastValidatedAt.getTime() + durationMs(every));
  const overdue = due.getTime() < now.getTime();
  return {
    revalidateEvery: every,
    revalidationDueAt: due.toISOString(),
    overdue,
    overdueDays: overdue ? Math.floor((now.getTime() - due.getTime()) / 86_400_000) : null,
  };
}

export interface InventoryFilter {
  model?: string;
  states?: ModelState[];
}

/**
 * Reads every version (paged by id: bounded memory per page) with its last validation: the later of
 * its lifecycle's last `model.validated` event (the audit trail, by the lifecycle's workflow id:
 * indexed) and its newest revalidated review (revalidation_outcomes, by version: indexed); its open
 * revalidation review, if any; and its accepted model-owner approval.
 */
export async function modelInventory(
  db: Kysely<Database>,
  pack: Pick<PolicyPack, 'riskTiers'>,
  now: Date,
  filter: InventoryFilter = {},
): Promise<InventoryEntry[]> {
  const out: InventoryEntry[] = [];
  for (let after = 0; ;) {
    const page = await sql<{
      id: number;
      model_name: string;
      version: number;
      state: ModelState;
      risk_tier: string;
      developer: string;
      workflow_id: string;
      validated_at: string | null;
      revalidated_at: string | null;
      open_revalidation: string | null;
      owner: string | null;
    }>`
      SELECT m.id, m.model_name, m.version, m.state, m.risk_tier, m.developer, m.workflow_id,
        (SELECT e.occurred_at FROM audit_events e
          WHERE e.workflow_id = m.workflow_id AND e.kind = 'model.validated' AND (m.run_id IS NULL OR e.run_id = m.run_id)
          ORDER BY e.seq DESC LIMIT 1) AS validated_at,
        (SELECT max(o.decided_at) FROM revalidation_outcomes o
          WHERE o.model_version_id = m.id AND o.outcome = 'revalidated') AS revalidated_at,
        (SELECT r.workflow_id FROM revalidation_reviews r
          WHERE r.model_version_id = m.id AND NOT EXISTS (SELECT 1 FROM revalidation_outcomes o WHERE o.workflow_id = r.workflow_id)
          ORDER BY r.due_at DESC LIMIT 1) AS open_revalidation,
        (SELECT a.approver FROM approvals a
          WHERE a.model_version_id = m.id AND a.accepted AND a.decision = 'approve' AND a.role = 'model-owner'
          ORDER BY a.decided_at DESC LIMIT 1) AS owner
      FROM model_versions m
      WHERE m.id > ${after}
        ${filter.model ? sql`AND m.model_name = ${filter.model}` : sql``}
        ${filter.states?.length ? sql`AND m.state IN (${sql.join(filter.states)})` : sql``}
      ORDER BY m.id LIMIT 2000`.execute(db);
    for (const r of page.rows) {
      const revalidatedAt = r.revalidated_at ? new Date(r.revalidated_at) : null;
      const validatedAt = r.validated_at ? new Date(r.validated_at) : null;
      const lastValidatedAt = validatedAt && revalidatedAt ? (revalidatedAt > validatedAt ? revalidatedAt : validatedAt) : (validatedAt ?? revalidatedAt);
      out.push({
        model: r.model_name,
        version: r.version,
        state: INVENTORY_STATE[r.state] ?? (r.state as InventoryState),
        registryState: r.state,
        riskTier: r.risk_tier,
        owner: r.owner ?? r.developer,
        workflowId: r.workflow_id,
        lastValidatedAt: lastValidatedAt?.toISOString() ?? null,
        ...revalidationOf({ state: r.state, riskTier: r.risk_tier, lastValidatedAt }, pack, now),
        revalidatedAt: revalidatedAt?.toISOString() ?? null,
        openRevalidation: r.open_revalidation,
      });
    }
    if (page.rows.length < 2000) break;
    after = page.rows.at(-1)!.id;
  }
  return out;
}

/**
 * Cross-checks the registry projection of one lifecycle against its Temporal histories (every run):
 * every decision (accepted and refused), state change, deployment and audit event of those kinds in
 * the projection must appear in the history (activity inputs and results, signals and updates
 * received), and every one the history completed must be in the projection. Pure: the caller reads
 * the histories (exported objects or live) and the rows.
 */
import type { ModelState } from '../db/schema.ts';
import type { DecisionRecord, DecisionWithEvent } from '../domain/approval.ts';
import { DECISIONS } from '../domain/approval.ts';

export type DiscrepancyKind =
  'not-in-history' | 'not-in-projection' | 'differs' | 'principal-mismatch' | 'unsolicited-decision' | 'export-digest-mismatch' | 'history-unavailable';

export interface Discrepancy {
  workflowId: string;
  kind: DiscrepancyKind;
  /** approvals, model_versions, deployments, audit_events, history_exports, or history (a history event). */
  table: string;
  id: string;
  reason: string;
}

/** One run's history as proto JSON (`temporal workflow show --output json`, historyToJSON). */
export interface RunHistoryJson {
  runId: string;
  history: { events?: HistoryEventJson[] };
}

interface PayloadJson {
  metadata?: Record<string, string>;
  data?: string;
}
interface PayloadsJson {
  payloads?: PayloadJson[];
}
export interface HistoryEventJson {
  eventId?: string | number;
  eventType?: string;
  principal?: { type?: string; name?: string } | null;
  activityTaskScheduledEventAttributes?: { activityType?: { name?: string }; input?: PayloadsJson };
  activityTaskCompletedEventAttributes?: { scheduledEventId?: string | number; result?: PayloadsJson };
  workflowExecutionSignaledEventAttributes?: { signalName?: string; input?: PayloadsJson; identity?: string };
  workflowExecutionUpdateAcceptedEventAttributes?: { acceptedRequest?: { input?: { name?: string; args?: PayloadsJson } } };
  workflowExecutionUpdateAdmittedEventAttributes?: { request?: { input?: { name?: string; args?: PayloadsJson } } };
  [k: string]: unknown;
}

/** The rows of one lifecycle in the projection (the columns compared). */
export interface ProjectionRows {
  approvals: Array<{ id: string; decision: string; approver: string; role: string; model_digest: string; accepted: boolean }>;
  modelVersions: Array<{ id: number; version: number; state: ModelState; run_id: string | null }>;
  deployments: Array<{ id: string; model_version_id: number; triton_model: string; triton_version: number; artifact_digest: string }>;
  auditEvents: Array<{ event_id: string; kind: string; actor: string }>;
}

/** The audit kinds the cross-check covers: decisions, state changes, deployments, lifecycle ends. */
export function isCheckedKind(kind: string): boolean {
  return kind.startsWith('approval.') || kind.startsWith('model.') || kind.startsWith('lifecycle.');
}

function decodePayload(p: PayloadJson | undefined): unknown {
  if (!p?.data) return undefined;
  const encoding = p.metadata?.encoding ? Buffer.from(p.metadata.encoding, 'base64').toString() : '';
  if (encoding !== 'json/plain') return undefined;
  try {
    return JSON.parse(Buffer.from(p.data, 'base64').toString('utf8'));
  } catch {
    return undefined;
  }
}
const args = (p: PayloadsJson | undefined): unknown[] => (p?.payloads ?? []).map(decodePayload);

/** As the registry stores text (activities/registry.ts storable): NUL and lone surrogates become U+FFFD. */
function storable(s: unknown): string {
  return String(s ?? '').replace(/\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

const FINAL: ModelState[] = ['deployed', 'rejected', 'failed', 'cancelled'];
/** States a version reaches after its lifecycle, by other workflows (rollback, retirement). */
const AFTER_LIFECYCLE: ModelState[] = ['rolled-back', 'retired'];

interface AuditInHistory {
  kind: string;
  actor: string;
  completed: boolean;
}

/** What the histories of one lifecycle say happened. */
export interface HistoryFacts {
  decisions: Map<string, { record: DecisionRecord; completed: boolean }>;
  audit: Map<string, AuditInHistory>;
  registered: Map<number, { version: number; runId: string }>;
  /** Final state per model version id, following setModelState and recordLifecycleEnd in order. */
  states: Map<number, ModelState>;
  deployments: Map<string, { completed: boolean; modelVersionId: number; tritonModel: string; tritonVersion: number; artifactDigest: string }>;
  /** Decisions received as signals or updates: who the payload names, and the server's principal if stamped. */
  received: Array<{
    eventId: string;
    runId: string;
    via: 'signal' | 'update';
    decision: string;
    approver?: string;
    role?: string;
    principal?: { type: string; name: string };
  }>;
}

/** Reads the facts out of every run's history, runs in chain order. */
export function historyFacts(runs: RunHistoryJson[]): HistoryFacts {
  const facts: HistoryFacts = { decisions: new Map(), audit: new Map(), registered: new Map(), states: new Map(), deployments: new Map(), received: [] };
  for (const run of runs) {
    const scheduled = new Map<string, { type: string; input: unknown[] }>();
    const completed = new Set<string>();
    const events = run.history.events ?? [];
    for (const e of events) {
      const c = e.activityTaskCompletedEventAttributes;
      if (c) completed.add(String(c.scheduledEventId));
    }
    for (const e of events) {
      const id = String(e.eventId);
      const s = e.activityTaskScheduledEventAttributes;
      if (s) {
        const type = s.activityType?.name ?? '';
        const input = args(s.input);
        scheduled.set(id, { type, input });
        const done = completed.has(id);
        const addAudit = (ev: { workflowId?: unknown; runId?: unknown; step?: unknown; kind?: unknown; actor?: unknown } | undefined) => {
          if (!ev || typeof ev.kind !== 'string') return;
          const eventId = `${String(ev.workflowId)}/${String(ev.runId)}/${String(ev.step)}`;
          const prev = facts.audit.get(eventId);
          facts.audit.set(eventId, { kind: ev.kind, actor: storable(ev.actor), completed: done || !!prev?.completed });
        };
        const addDecision = (r: DecisionRecord | undefined) => {
          if (!r || typeof r.id !== 'string') return;
          const prev = facts.decisions.get(r.id);
          // A batch retried as minimal entries (UnstorableDecision) keeps the completed one.
          if (!prev || (done && !prev.completed)) facts.decisions.set(r.id, { record: r, completed: done || !!prev?.completed });
        };
        if (type === 'appendAudit') addAudit(input[0] as Parameters<typeof addAudit>[0]);
        else if (type === 'recordDecision') addDecision(input[0] as DecisionRecord);
        else if (type === 'recordDecisions') {
          for (const entry of (Array.isArray(input[0]) ? input[0] : []) as DecisionWithEvent[]) {
            addDecision(entry?.record);
            addAudit(entry?.event as Parameters<typeof addAudit>[0]);
          }
        } else if (type === 'recordLifecycleEnd' && done) {
          const i = input[0] as { workflowId?: string; runId?: string; outcome?: string; modelVersionId?: number; actor?: string } | undefined;
          if (i?.outcome === 'failed' || i?.outcome === 'cancelled') {
            const kind = `lifecycle.${i.outcome}`;
            facts.audit.set(`${i.workflowId}/${i.runId}/${kind}`, { kind, actor: i.actor ? storable(i.actor) : 'factory', completed: true });
            if (typeof i.modelVersionId === 'number') {
              const now = facts.states.get(i.modelVersionId) ?? 'registered';
              if (!FINAL.includes(now)) facts.states.set(i.modelVersionId, i.outcome);
            }
          }
        } else if (type === 'recordRetirement' && done) {
          // A retirement (workflows/retirement.ts) appends model.retired in the transaction that retires the version.
          const i = input[0] as { workflowId?: string; runId?: string; requestedBy?: string } | undefined;
          if (i?.workflowId && i.runId)
            facts.audit.set(`${i.workflowId}/${i.runId}/model.retired`, { kind: 'model.retired', actor: storable(i.requestedBy), completed: true });
        } else if (type === 'setModelState' && done) {
          const i = input[0] as { id?: number; to?: ModelState } | undefined;
          if (typeof i?.id === 'number' && i.to) facts.states.set(i.id, i.to);
        } else if (type === 'recordDeployment') {
          const d = input[0] as { id?: string; modelVersionId?: number; tritonModel?: string; tritonVersion?: number; artifactDigest?: string } | undefined;
          if (typeof d?.id === 'string') {
            facts.deployments.set(d.id, {
              completed: done || !!facts.deployments.get(d.id)?.completed,
              modelVersionId: Number(d.modelVersionId),
              tritonModel: String(d.tritonModel),
              tritonVersion: Number(d.tritonVersion),
              artifactDigest: String(d.artifactDigest),
            });
          }
        }
        continue;
      }
      const c = e.activityTaskCompletedEventAttributes;
      if (c && scheduled.get(String(c.scheduledEventId))?.type === 'registerModel') {
        const r = args(c.result)[0] as { id?: number; version?: number } | undefined;
        if (typeof r?.id === 'number') {
          facts.registered.set(r.id, { version: Number(r.version), runId: run.runId });
          if (!facts.states.has(r.id)) facts.states.set(r.id, 'registered');
        }
        continue;
      }
      const sig = e.workflowExecutionSignaledEventAttributes;
      if (sig && (DECISIONS as readonly string[]).includes(sig.signalName ?? '')) {
        facts.received.push({ eventId: id, runId: run.runId, via: 'signal', decision: sig.signalName!, ...who(args(sig.input)[0]), ...principalOf(e) });
        continue;
      }
      const upd = e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input;
      if (upd?.name === 'decide') {
        const p = args(upd.args)[0] as { decision?: unknown } | undefined;
        facts.received.push({ eventId: id, runId: run.runId, via: 'update', decision: String(p?.decision ?? 'unknown'), ...who(p), ...principalOf(e) });
      }
    }
  }
  return facts;
}

/** A signal may carry an object, a JSON string or bytes (readPayload in the gate); the approver and role it names. */
function who(raw: unknown): { approver?: string; role?: string } {
  let v = raw;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return {};
    }
  }
  if (!v || typeof v !== 'object') return {};
  const o = v as Record<string, unknown>;
  return { ...(typeof o.approver === 'string' ? { approver: o.approver } : {}), ...(typeof o.role === 'string' ? { role: o.role } : {}) };
}

function principalOf(e: HistoryEventJson): { principal?: { type: string; name: string } } {
  const p = e.principal;
  return p?.name ? { principal: { type: p.type ?? '', name: p.name } } : {};
}

/**
 * The discrepancies between one lifecycle's projection and its histories. `principalMatches` decides
 * whether the server-stamped principal of a signal or update is the approver it names (default: the
 * principal's name equals the approver's id, case-insensitive, e.g. a JWT `sub` or `email` claim).
 */
export function crossCheck(
  workflowId: string,
  runs: RunHistoryJson[],
  rows: ProjectionRows,
  principalMatches: (principal: { type: string; name: string }, approver: string) => boolean = (p, a) => p.name.toLowerCase() === a.toLowerCase(),
): Discrepancy[] {
  const facts = historyFacts(runs);
  const out: Discrepancy[] = [];
  const add = (kind: DiscrepancyKind, table: string, id: string, reason: string) => out.push({ workflowId, kind, table, id, reason });

  // Decisions, accepted and refused.
  const approvalIds = new Set<string>();
  for (const a of rows.approvals) {
    approvalIds.add(a.id);
    const h = facts.decisions.get(a.id);
    if (!h) {
      add(
        'not-in-history',
        'approvals',
        a.id,
        `${a.accepted ? 'accepted' : 'refused'} ${a.decision} by ${a.approver} as ${a.role}: no run of the history recorded it`,
      );
      continue;
    }
    const r = h.record;
    const pairs: Array<[string, unknown, unknown]> = [
      ['decision', a.decision, r.decision],
      ['approver', a.approver, storable(r.approver)],
      ['role', a.role, storable(r.role)],
      ['model_digest', a.model_digest, storable(r.modelDigest)],
      ['accepted', a.accepted, r.accepted],
    ];
    for (const [field, mine, theirs] of pairs) {
      if (mine !== theirs) add('differs', 'approvals', a.id, `${field} is ${JSON.stringify(mine)} in the registry, ${JSON.stringify(theirs)} in the history`);
    }
  }
  for (const [id, h] of facts.decisions) {
    if (h.completed && !approvalIds.has(id)) {
      add(
        'not-in-projection',
        'approvals',
        id,
        `${h.record.accepted ? 'accepted' : 'refused'} ${h.record.decision} by ${h.record.approver} as ${h.record.role}: in the history, not in the registry`,
      );
    }
  }

  // Accepted decisions came from a signal or an update that named the approver; a stamped principal is that approver.
  for (const [id, h] of facts.decisions) {
    const r = h.record;
    if (!h.completed || !r.accepted) continue;
    const from = facts.received.find((x) => x.decision === r.decision && x.approver?.toLowerCase() === r.approver.toLowerCase() && x.role === r.role);
    if (!from)
      add('unsolicited-decision', 'approvals', id, `accepted ${r.decision} by ${r.approver} as ${r.role}: no signal or update in the history carried it`);
  }
  for (const x of facts.received) {
    if (x.principal && x.approver && !principalMatches(x.principal, x.approver)) {
      add(
        'principal-mismatch',
        'history',
        `${x.runId}#${x.eventId}`,
        `${x.via} ${x.decision} names approver ${x.approver}, but the server authenticated the caller as ${x.principal.type}:${x.principal.name}`,
      );
    }
  }

  // Model versions: registered by a run of this lifecycle, in the state the history leads to.
  const versionIds = new Set<number>();
  for (const mv of rows.modelVersions) {
    versionIds.add(mv.id);
    const reg = facts.registered.get(mv.id);
    if (!reg) {
      add('not-in-history', 'model_versions', String(mv.id), `version ${mv.version} (${mv.state}): no run of the history registered it`);
      continue;
    }
    if (reg.version !== mv.version) add('differs', 'model_versions', String(mv.id), `version is ${mv.version} in the registry, ${reg.version} in the history`);
    const expected = facts.states.get(mv.id) ?? 'registered';
    // Rollbacks and retirements are workflows of their own: a version the lifecycle left deployed (or approved) may since be rolled back or retired.
    const laterState = (expected === 'deployed' || expected === 'approved') && AFTER_LIFECYCLE.includes(mv.state);
    if (expected !== mv.state && !laterState)
      add('differs', 'model_versions', String(mv.id), `state is ${mv.state} in the registry, the history leads to ${expected}`);
  }
  for (const [id, reg] of facts.registered) {
    if (!versionIds.has(id))
      add('not-in-projection', 'model_versions', String(id), `version ${reg.version} registered by run ${reg.runId}: not in the registry`);
  }

  // Deployments.
  const deploymentIds = new Set<string>();
  for (const d of rows.deployments) {
    deploymentIds.add(d.id);
    const h = facts.deployments.get(d.id);
    if (!h) {
      add('not-in-history', 'deployments', d.id, `${d.triton_model} v${d.triton_version} (${d.artifact_digest}): no run of the history recorded it`);
      continue;
    }
    const pairs: Array<[string, unknown, unknown]> = [
      ['model_version_id', d.model_version_id, h.modelVersionId],
      ['triton_model', d.triton_model, h.tritonModel],
      ['triton_version', d.triton_version, h.tritonVersion],
      ['artifact_digest', d.artifact_digest, h.artifactDigest],
    ];
    for (const [field, mine, theirs] of pairs) {
      if (mine !== theirs) add('differs', 'deployments', d.id, `${field} is ${JSON.stringify(mine)} in the registry, ${JSON.stringify(theirs)} in the history`);
    }
  }
  for (const [id, h] of facts.deployments) {
    if (h.completed && !deploymentIds.has(id))
      add('not-in-projection', 'deployments', id, `${h.tritonModel} v${h.tritonVersion}: in the history, not in the registry`);
  }

  // Audit events of the checked kinds.
  const eventIds = new Set<string>();
  for (const e of rows.auditEvents) {
    if (!isCheckedKind(e.kind)) continue;
    eventIds.add(e.event_id);
    const h = facts.audit.get(e.event_id);
    if (!h) {
      add('not-in-history', 'audit_events', e.event_id, `${e.kind} by ${e.actor}: no run of the history appended it`);
      continue;
    }
    if (h.kind !== e.kind) add('differs', 'audit_events', e.event_id, `kind is ${e.kind} in the trail, ${h.kind} in the history`);
    if (h.actor !== e.actor) add('differs', 'audit_events', e.event_id, `actor is ${e.actor} in the trail, ${h.actor} in the history`);
  }
  for (const [id, h] of facts.audit) {
    if (h.completed && isCheckedKind(h.kind) && !eventIds.has(id))
      add('not-in-projection', 'audit_events', id, `${h.kind} by ${h.actor}: in the history, not in the trail`);
  }
  return out;
}

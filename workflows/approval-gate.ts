import { condition, defineSignal, defineUpdate, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { DecisionRecord } from '../activities/registry.ts';
import { PendingRolesKey } from '../temporal/search-attributes.ts';
import { type AcceptedDecision, type ApprovalStatus, type DecideUpdate, type Decision, type RefusedDecision, readPayload } from '../src/domain/approval.ts';
import { type Candidate, judgeDecision } from '../src/policy/approval.ts';
import type { PolicyPack } from '../src/policy/schema.ts';

/** Signals: one JSON object each, typed or pasted into the Temporal Web UI. Stable API. */
export const approveSignal = defineSignal<[unknown]>('approve');
export const rejectSignal = defineSignal<[unknown]>('reject');
/** Update for the CLI: the caller gets the verdict (accepted or refused, with the reason) back. */
export const decideUpdate = defineUpdate<DecisionVerdict, [DecideUpdate]>('decide');

export type DecisionVerdict = { accepted: true; pendingRoles: string[] } | { accepted: false; reason: string };

interface Inbound {
  seq: number;
  decision: Decision | 'unknown';
  raw: unknown;
  via: 'signal' | 'update';
}

export interface GateContext {
  workflowId: string;
  runId: string;
  /** Shared with the approvalStatus query: the gate keeps its approval fields current. */
  status: ApprovalStatus;
  isOpen: () => boolean;
  now: () => string;
  recordDecision: (r: DecisionRecord) => Promise<void>;
  audit: (step: string, kind: string, payload: Record<string, unknown>, actor: string) => Promise<unknown>;
}

export interface LoadedPolicy {
  pack: PolicyPack;
  digest: string;
}

export type GateResult = { approved: true } | { approved: false; rejectedBy: AcceptedDecision } | { approved: false; timedOut: true };

/**
 * The approval gate. Signals and the update queue in one inbox; the gate judges each item in order
 * with the policy pack (pure `judgeDecision`), records it, accepted or refused, in the registry and
 * the audit trail, and only then changes state. Handlers are installed at construction, so a
 * decision sent early waits in the inbox instead of being lost.
 */
export class ApprovalGate {
  private readonly inbox: Inbound[] = [];
  private readonly verdicts = new Map<number, DecisionVerdict>();
  private received = 0;
  private candidate?: Candidate;
  private modelVersionId = 0;
  private policy: LoadedPolicy = { pack: { version: '', riskTiers: {} as PolicyPack['riskTiers'], principals: [] }, digest: '' };
  private rejectedBy?: AcceptedDecision;

  constructor(private readonly ctx: GateContext) {
    setHandler(approveSignal, (raw) => void this.receive('approve', raw, 'signal'));
    setHandler(rejectSignal, (raw) => void this.receive('reject', raw, 'signal'));
    setHandler(
      decideUpdate,
      async ({ decision, ...payload }) => {
        const seq = this.receive(decision, payload, 'update');
        await condition(() => this.verdicts.has(seq));
        return this.verdicts.get(seq)!;
      },
      {
        // Only what is not a decision at all is refused here: a validator's refusal leaves no
        // history event, and a refused approval must leave one (the handler records it).
        validator: (update) => {
          if (!ctx.isOpen()) throw new Error(`this lifecycle is not awaiting approval (stage: ${ctx.status.stage})`);
          if (update === null || typeof update !== 'object') throw new Error('the update takes one JSON object');
        },
      },
    );
  }

  private receive(decision: Inbound['decision'], raw: unknown, via: Inbound['via']): number {
    const seq = ++this.received;
    this.inbox.push({ seq, decision, raw, via });
    return seq;
  }

  /** Judges decisions until every required role has signed, a required role rejects, or the deadline passes. */
  async await(candidate: Candidate, modelVersionId: number, policy: LoadedPolicy, deadlineMs: number): Promise<GateResult> {
    const { status } = this.ctx;
    this.candidate = candidate;
    this.modelVersionId = modelVersionId;
    this.policy = policy;
    status.requiredRoles = [...candidate.requiredRoles];
    status.pendingRoles = [...candidate.requiredRoles];
    status.deadline = new Date(deadlineMs).toISOString();
    status.waiting = true;
    this.showWaiting();
    await this.ctx.audit('approval.requested', 'approval.requested', { requiredRoles: status.requiredRoles, deadline: status.deadline, modelDigest: candidate.modelDigest }, 'factory');
    while (status.pendingRoles.length > 0 && !this.rejectedBy) {
      const arrived = await condition(() => this.inbox.length > 0, Math.max(1, deadlineMs - Date.now()));
      if (!arrived) break;
      await this.judge(this.inbox.shift()!);
      this.showWaiting();
    }
    status.waiting = false;
    if (this.rejectedBy) return { approved: false, rejectedBy: this.rejectedBy };
    if (status.pendingRoles.length > 0) return { approved: false, timedOut: true };
    return { approved: true };
  }

  /** Decisions that arrive when no gate is open are still answered, and recorded against the version. */
  async refuseLeftovers(modelVersionId: number, policy: LoadedPolicy): Promise<void> {
    this.modelVersionId = modelVersionId;
    this.policy = policy;
    while (this.inbox.length) await this.judge(this.inbox.shift()!, `this lifecycle is no longer awaiting approval (stage: ${this.ctx.status.stage})`);
  }

  private showWaiting(): void {
    const { status } = this.ctx;
    upsertSearchAttributes([{ key: PendingRolesKey, value: status.pendingRoles }]);
    setCurrentDetails(
      [
        `**Waiting for approval** of ${status.modelName} v${status.version} (${status.riskTier} risk) until ${status.deadline}.`,
        `Pending roles: ${status.pendingRoles.join(', ') || 'none'}.`,
        'Send the signal `approve` (or `reject`) with one JSON object:',
        '```json',
        JSON.stringify({ approver: 'you@example.org', role: status.pendingRoles[0] ?? 'role', meaning: 'approval', modelDigest: status.modelDigest, comment: 'why' }),
        '```',
      ].join('\n'),
    );
  }

  private verdictFor(item: Inbound, read: ReturnType<typeof readPayload>, closedReason?: string): { verdict: DecisionVerdict; accepted?: AcceptedDecision } {
    if (closedReason || !this.candidate) return { verdict: { accepted: false, reason: closedReason ?? 'no candidate awaits approval' } };
    if (!read.ok) return { verdict: { accepted: false, reason: read.reason } };
    if (item.decision === 'unknown') return { verdict: { accepted: false, reason: 'unknown decision' } };
    const v = judgeDecision(read.value, item.decision, this.candidate, this.ctx.status.approvals, this.policy.pack);
    if (!v.accepted) return { verdict: v };
    const accepted: AcceptedDecision = { ...v.payload, decision: item.decision, principalName: v.principalName, at: this.ctx.now(), via: item.via };
    return { verdict: { accepted: true, pendingRoles: this.ctx.status.pendingRoles.filter((r) => item.decision !== 'approve' || r !== accepted.role) }, accepted };
  }

  private async judge(item: Inbound, closedReason?: string): Promise<void> {
    const { status, workflowId, runId } = this.ctx;
    const { policy } = this;
    const at = this.ctx.now();
    const read = readPayload(item.raw);
    const { verdict, accepted } = this.verdictFor(item, read, closedReason);
    const fields = (accepted ?? (read.ok ? read.value : {})) as Record<string, unknown>;
    const text = (k: string) => (typeof fields[k] === 'string' ? (fields[k] as string) : '(unreadable)');
    if (accepted && item.decision === 'approve') {
      status.approvals.push(accepted);
      status.pendingRoles = status.pendingRoles.filter((r) => r !== accepted.role);
    } else if (accepted) {
      this.rejectedBy = accepted;
    }
    const refusal: RefusedDecision | undefined = verdict.accepted
      ? undefined
      : { decision: item.decision, reason: verdict.reason, received: read.ok ? read.value : read.received, at, via: item.via };
    if (refusal) status.refusals.push(refusal);
    await this.ctx.recordDecision({
      id: `${workflowId}/${runId}/decision-${item.seq}`,
      modelVersionId: this.modelVersionId,
      workflowId,
      decision: item.decision === 'reject' ? 'reject' : 'approve',
      approver: text('approver'),
      role: text('role'),
      meaning: text('meaning'),
      modelDigest: text('modelDigest'),
      comment: typeof fields.comment === 'string' ? fields.comment : undefined,
      accepted: verdict.accepted,
      refusalReason: refusal?.reason,
      policyDigest: policy.digest,
      decidedAt: accepted?.at ?? at,
    });
    await this.ctx.audit(
      `decision.${item.seq}`,
      accepted ? `approval.${item.decision}d` : 'approval.refused',
      { ...(accepted ?? refusal), policyDigest: policy.digest },
      typeof fields.approver === 'string' ? fields.approver : 'unknown',
    );
    this.verdicts.set(item.seq, verdict);
  }
}

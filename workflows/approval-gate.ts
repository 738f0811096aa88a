import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  condition,
  defineSignal,
  defineUpdate,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { PendingRolesKey } from '../temporal/search-attributes.ts';
import {
  type AcceptedDecision,
  type ApprovalStatus,
  DECISION_DONE,
  DECISION_LIMITS,
  DECISIONS,
  type DecideUpdate,
  type Decision,
  type DecisionCounts,
  type DecisionRecord,
  type DecisionWithEvent,
  type GateState,
  type RefusedDecision,
  type SignedPayload,
  decideUpdateSchema,
  escapeUnsafe,
  readPayload,
  readableField,
  summariseReceived,
} from '../src/domain/approval.ts';
import { type Candidate, type JudgeRules, type SignatureContext, judgeDecision } from '../src/policy/approval.ts';
import type { PolicyPack, TierPolicy } from '../src/policy/schema.ts';

/** Signals: one JSON object each, typed or pasted into the Temporal Web UI. Stable API. */
export const approveSignal = defineSignal<[unknown]>('approve');
export const rejectSignal = defineSignal<[unknown]>('reject');
/** Takes back the sender's own approval while the gate is open (comment states why). */
export const withdrawSignal = defineSignal<[unknown]>('withdraw');
/** Update for the CLI: the caller gets the verdict (accepted or refused, with the reason) back. */
export const decideUpdate = defineUpdate<DecisionVerdict, [DecideUpdate]>('decide');

export type DecisionVerdict = { accepted: true; pendingRoles: string[] } | { accepted: false; reason: string };

/**
 * Lifecycles that reach the gate after this change judge decisions with the bounded gate: judging is
 * pure and immediate, records are written in batches by a recorder beside the gate, state is bounded
 * and the run continues as new before its history grows large. Older histories replay the legacy path.
 */
export const BOUNDED_GATE_PATCH = 'bounded-gate';

/**
 * Lifecycles whose gate opens after this change judge decisions by the signed-approvals rules: a
 * decision may carry an OpenSSH signature over its statement, and must where its tier requires one
 * (src/policy/approval.ts judgeSignature). A lifecycle keeps the rules its gate opened with, across
 * continue-as-new (GateState.signed); older histories replay without it.
 */
export const SIGNED_APPROVALS_PATCH = 'signed-approvals';

/**
 * Continue as new before Temporal's own limits come near (warnings at 10 240 events / 10 MB), and
 * after DECISIONS_PER_RUN decisions, below the server's per-run signal cap (temporal/dynamic-config.yaml:
 * history.maximumSignalsPerExecution = 400), so a flood of signals never blocks a run for long.
 */
const GATE_HISTORY_EVENTS = 4_000;
export const DECISIONS_PER_RUN = 250;
const GATE_HISTORY_BYTES = 4 * 1024 * 1024;
const RECORD_BATCH = 40;
/**
 * Decisions judged per workflow task. A burst of signals arrives in one task; judging them all at
 * once could keep the task past the SDK's deadlock detector (2 s) on a loaded machine, so the gate
 * judges a slice and yields to a fresh task (a 1 ms timer) for the next.
 */
const JUDGE_PER_TASK = 100;
const REASON_MAX = 500;
/**
 * A decision that carries a signature may cost a signature verification (milliseconds in pure code on
 * a loaded machine): it counts as this many of the task's JUDGE_PER_TASK, so a flood of well-formed
 * but false signatures still leaves each workflow task far inside the deadlock detector's 2 s.
 */
const SIGNED_JUDGE_COST = 10;

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
  now: () => string;
  /** The control worker's activities that write decisions (each workflow's own proxy of them). */
  records: {
    recordDecisions: (batch: DecisionWithEvent[]) => Promise<unknown>;
    /** Legacy path only: one decision per activity. */
    recordDecision: (r: DecisionRecord) => Promise<void>;
  };
  audit: (step: string, kind: string, payload: Record<string, unknown>, actor: string) => Promise<unknown>;
}

export interface LoadedPolicy {
  pack: PolicyPack;
  digest: string;
}

export type GateResult =
  { approved: true } | { approved: false; rejectedBy: AcceptedDecision } | { approved: false; timedOut: true } | { approved: false; continueAsNew: GateState };

/**
 * The approval gate. Signals and the update queue in one inbox; the gate judges each item in order
 * with the policy pack (pure `judgeDecision`) and records it, accepted or refused, in the registry and
 * the audit trail. Handlers are installed at construction, so a decision sent early waits in the
 * inbox instead of being lost.
 */
export class ApprovalGate {
  private readonly inbox: Inbound[] = [];
  /** Verdicts for updates still waiting on them; removed once returned. */
  private readonly verdicts = new Map<number, DecisionVerdict>();
  private readonly waitingUpdates = new Set<number>();
  private received = 0;
  /** `received` when this run began: decisions received by earlier runs are not this run's. */
  private receivedBefore = 0;
  private candidate?: Candidate;
  private modelVersionId = 0;
  private policy: LoadedPolicy = {
    pack: { version: '', riskTiers: {} as PolicyPack['riskTiers'], principals: [], evidenceRetention: { default: '7y' }, zones: [] },
    digest: '',
  };
  private onRejection: TierPolicy['onRejection'] = 'end-gate';
  private rejectedBy?: AcceptedDecision;
  private bounded?: boolean;
  /** Set when the gate runs by the signed-approvals rules. */
  private signed?: { openedAt: string; usedSignatures: string[] };
  private signedDecided = false;
  // The recorder: judged decisions wait here, in order, for their batch to be written.
  private readonly toRecord: Array<{ seq: number; verdict: DecisionVerdict; entry: DecisionWithEvent }> = [];
  private recording = false;
  private recorderStarted = false;
  private recorderFailure?: unknown;

  /**
   * `restored`: the state a previous run of this lifecycle handed on with continue-as-new. It is taken
   * over before the handlers are installed, so decisions delivered with the run's first task are
   * numbered after the previous run's.
   */
  constructor(
    private readonly ctx: GateContext,
    restored?: GateState,
  ) {
    if (restored) this.restore(restored);
    setHandler(approveSignal, (raw) => void this.receive('approve', raw, 'signal'));
    setHandler(rejectSignal, (raw) => void this.receive('reject', raw, 'signal'));
    setHandler(withdrawSignal, (raw) => void this.receive('withdraw', raw, 'signal'));
    setHandler(
      decideUpdate,
      async (update) => {
        const { decision, ...payload } = update as Record<string, unknown>;
        const known = typeof decision === 'string' && (DECISIONS as readonly string[]).includes(decision);
        const seq = this.receive(this.bounded === false || known ? (decision as Decision) : 'unknown', payload, 'update');
        this.waitingUpdates.add(seq);
        await condition(() => this.verdicts.has(seq));
        const verdict = this.verdicts.get(seq)!;
        this.verdicts.delete(seq);
        this.waitingUpdates.delete(seq);
        return verdict;
      },
      {
        // The whole update is judged here, before it reaches the history: a malformed or oversized
        // decision is refused to its sender and costs the lifecycle nothing. Whether the sender may
        // decide is policy, judged (and recorded) by the gate.
        validator: (update) => {
          if (ctx.status.stage !== 'approval') throw new Error(`this lifecycle is not awaiting approval (stage: ${ctx.status.stage})`);
          const parsed = decideUpdateSchema.safeParse(update);
          if (!parsed.success) {
            throw new Error(
              `invalid decision: ${escapeUnsafe(parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')).slice(0, REASON_MAX)}`,
            );
          }
        },
      },
    );
  }

  private receive(decision: Inbound['decision'], raw: unknown, via: Inbound['via']): number {
    const seq = ++this.received;
    this.inbox.push({ seq, decision, raw, via });
    return seq;
  }

  /** Decided once, at the first point the gate acts, so a replay takes the path the run took. */
  private isBounded(): boolean {
    this.bounded ??= patched(BOUNDED_GATE_PATCH);
    return this.bounded;
  }

  private restore(state: GateState): void {
    const { status } = this.ctx;
    this.received = state.received;
    this.receivedBefore = state.received;
    status.requiredRoles = [...state.requiredRoles];
    status.pendingRoles = [...state.pendingRoles];
    status.approvals = [...state.approvals];
    status.refusals = [...state.refusals];
    status.withdrawals = [...state.withdrawals];
    status.counts = { ...state.counts };
    status.deadline = state.deadline;
    // The rules the gate opened with go on in the continued run (no new patch decision).
    this.signed = state.signed ? { openedAt: state.signed.openedAt, usedSignatures: [...state.signed.usedSignatures] } : undefined;
    this.signedDecided = true;
  }

  /** Decided once, when the gate opens in a fresh lifecycle; a continued run keeps what its first run decided. */
  private decideSigned(): void {
    if (this.signedDecided) return;
    this.signedDecided = true;
    if (patched(SIGNED_APPROVALS_PATCH)) this.signed = { openedAt: this.ctx.now(), usedSignatures: [] };
  }

  /** Judges decisions until every required role has signed, a required role rejects, or the deadline passes. */
  async await(
    candidate: Candidate,
    modelVersionId: number,
    policy: LoadedPolicy,
    deadlineMs: number,
    opts: { onRejection?: TierPolicy['onRejection']; resumed?: boolean } = {},
  ): Promise<GateResult> {
    this.candidate = candidate;
    this.modelVersionId = modelVersionId;
    this.policy = policy;
    if (!this.isBounded()) return this.awaitLegacy(candidate, deadlineMs);
    this.decideSigned();
    const { status } = this.ctx;
    this.onRejection = opts.onRejection ?? 'end-gate';
    if (!opts.resumed) {
      status.requiredRoles = [...candidate.requiredRoles];
      status.pendingRoles = [...candidate.requiredRoles];
      status.deadline = new Date(deadlineMs).toISOString();
      status.counts = { received: 0, accepted: 0, refused: 0, withdrawn: 0 };
      status.withdrawals = [];
    }
    status.waiting = true;
    this.showWaiting();
    if (!opts.resumed) {
      await this.ctx.audit(
        'approval.requested',
        'approval.requested',
        { requiredRoles: status.requiredRoles, deadline: status.deadline, modelDigest: candidate.modelDigest },
        'factory',
      );
    }
    const decided = () => status.pendingRoles.length === 0 || !!this.rejectedBy;
    while (!decided()) {
      // The deadline is a timer of its own: no activity (a database outage, a slow write) holds it back.
      const woke = await condition(
        () => this.inbox.length > 0 || this.recorderFailure !== undefined || this.historyIsLong(),
        Math.max(1, deadlineMs - Date.now()),
      );
      if (this.recorderFailure !== undefined) throw this.recorderFailure;
      if (!woke) break;
      await this.judgeInbox(undefined, decided);
      this.showWaiting();
      if (!decided() && this.historyIsLong()) {
        await this.flush();
        // An update still waiting on its verdict is in the inbox: judge it first, then hand on.
        await condition(() => allHandlersFinished() || this.inbox.length > 0);
        if (this.inbox.length > 0) continue;
        status.waiting = false;
        return { approved: false, continueAsNew: this.snapshot() };
      }
    }
    status.waiting = false;
    const outcome = this.rejectedBy ? 'rejected' : decided() ? 'approved' : 'timed out';
    await this.judgeInbox(`the approval gate has closed (${outcome})`);
    await this.flush();
    if (this.rejectedBy) return { approved: false, rejectedBy: this.rejectedBy };
    if (status.pendingRoles.length > 0) return { approved: false, timedOut: true };
    return { approved: true };
  }

  /** Decisions that arrive when no gate is open are still answered, and recorded against the version. */
  async refuseLeftovers(modelVersionId: number, policy: LoadedPolicy): Promise<void> {
    this.modelVersionId = modelVersionId;
    this.policy = policy;
    const reason = `this lifecycle is no longer awaiting approval (stage: ${this.ctx.status.stage})`;
    if (!this.isBounded()) {
      while (this.inbox.length) await this.judgeLegacy(this.inbox.shift()!, reason);
      return;
    }
    await this.judgeInbox(reason);
    await this.flush();
  }

  /** Judges what waits in the inbox, a slice per workflow task, until it is empty or `stop` says so. */
  private async judgeInbox(closedReason?: string, stop: () => boolean = () => false): Promise<void> {
    for (;;) {
      for (let budget = JUDGE_PER_TASK; budget > 0 && this.inbox.length > 0 && !stop();) budget -= this.judge(this.inbox.shift()!, closedReason);
      if (this.inbox.length === 0 || stop()) return;
      await sleep(1);
    }
  }

  private historyIsLong(): boolean {
    const info = workflowInfo();
    return (
      info.continueAsNewSuggested ||
      info.historyLength > GATE_HISTORY_EVENTS ||
      info.historySize > GATE_HISTORY_BYTES ||
      this.received - this.receivedBefore >= DECISIONS_PER_RUN
    );
  }

  private snapshot(): GateState {
    const { status } = this.ctx;
    return {
      received: this.received,
      requiredRoles: status.requiredRoles,
      pendingRoles: status.pendingRoles,
      approvals: status.approvals,
      refusals: status.refusals,
      withdrawals: status.withdrawals ?? [],
      counts: status.counts ?? { received: 0, accepted: 0, refused: 0, withdrawn: 0 },
      deadline: status.deadline ?? '',
      ...(this.signed ? { signed: { openedAt: this.signed.openedAt, usedSignatures: [...this.signed.usedSignatures] } } : {}),
    };
  }

  private shownPending?: string;

  private showWaiting(): void {
    const { status } = this.ctx;
    // Legacy runs upserted on every decision (their histories replay that); the bounded gate only on change.
    const pending = status.pendingRoles.join(',');
    if (this.bounded === false || pending !== this.shownPending) upsertSearchAttributes([{ key: PendingRolesKey, value: status.pendingRoles }]);
    this.shownPending = pending;
    const example = { approver: 'you@example.org', role: status.pendingRoles[0] ?? 'role', meaning: 'approval', modelDigest: status.modelDigest };
    const how = this.signed
      ? [
          this.candidate?.requireSignature ? 'This risk tier requires a signed decision.' : '',
          `Run \`factory approval-payload ${this.ctx.workflowId} --role <role> --as <you>\`: it prints the statement to sign (\`ssh-keygen -Y sign -n factory-approval\`) and, with \`--signature\`, the JSON to send as the signal \`approve\` (or \`reject\`):`,
          '```json',
          JSON.stringify({ ...example, statement: '<the statement, as printed>', signature: '-----BEGIN SSH SIGNATURE-----\n…' }),
        ]
      : [
          'Send the signal `approve` (or `reject`, or `withdraw` with a comment) with one JSON object:',
          '```json',
          JSON.stringify({ ...example, comment: 'why' }),
        ];
    setCurrentDetails(
      [
        `**Waiting for approval** of ${status.modelName} v${status.version} (${status.riskTier} risk) until ${status.deadline}.`,
        `Pending roles: ${status.pendingRoles.join(', ') || 'none'}.`,
        status.counts ? `Decisions so far: ${status.counts.accepted} accepted, ${status.counts.refused} refused, ${status.counts.withdrawn} withdrawn.` : '',
        ...how,
        '```',
      ]
        .filter(Boolean)
        .join('\n'),
    );
  }

  private verdictFor(
    item: Inbound,
    read: ReturnType<typeof readPayload>,
    rules: JudgeRules,
    closedReason?: string,
  ): { verdict: DecisionVerdict; accepted?: AcceptedDecision } {
    if (closedReason || !this.candidate) return { verdict: { accepted: false, reason: closedReason ?? 'no candidate awaits approval' } };
    if (!read.ok) return { verdict: { accepted: false, reason: read.reason } };
    if (item.decision === 'unknown') return { verdict: { accepted: false, reason: 'unknown decision' } };
    const sig: SignatureContext | undefined =
      rules === 'signed-approvals' && this.signed
        ? {
            workflowId: this.ctx.workflowId,
            modelName: this.ctx.status.modelName,
            version: this.ctx.status.version ?? 0,
            requireSignature: this.candidate.requireSignature ?? false,
            now: this.ctx.now(),
            openedAt: this.signed.openedAt,
            usedSignatures: this.signed.usedSignatures,
          }
        : undefined;
    const v = judgeDecision(read.value, item.decision, this.candidate, this.ctx.status.approvals, this.policy.pack, rules, sig);
    if (!v.accepted) return { verdict: rules === 'legacy' ? v : { accepted: false, reason: escapeUnsafe(v.reason).slice(0, REASON_MAX) } };
    if (rules === 'signed-approvals') {
      // The statement and signature travel as the evidence of a verified signature, not as payload fields.
      const { statement: _st, signature: _sig, ...payload } = v.payload as SignedPayload;
      if (v.signatureDigest) this.signed!.usedSignatures.push(v.signatureDigest);
      const accepted: AcceptedDecision = {
        ...payload,
        decision: item.decision,
        principalName: v.principalName,
        at: this.ctx.now(),
        via: item.via,
        ...(v.signature ? { signature: v.signature } : {}),
      };
      return {
        verdict: { accepted: true, pendingRoles: this.ctx.status.pendingRoles.filter((r) => item.decision !== 'approve' || r !== accepted.role) },
        accepted,
      };
    }
    const accepted: AcceptedDecision = { ...v.payload, decision: item.decision, principalName: v.principalName, at: this.ctx.now(), via: item.via };
    return {
      verdict: { accepted: true, pendingRoles: this.ctx.status.pendingRoles.filter((r) => item.decision !== 'approve' || r !== accepted.role) },
      accepted,
    };
  }

  /**
   * Judges one decision now (pure) and queues its record; state changes at once, the record follows in
   * order. Returns its cost against the task's budget (SIGNED_JUDGE_COST for a signed decision under
   * the signed-approvals rules, else 1).
   */
  private judge(item: Inbound, closedReason?: string): number {
    const { status, workflowId, runId } = this.ctx;
    const counts: DecisionCounts = (status.counts ??= { received: 0, accepted: 0, refused: 0, withdrawn: 0 });
    const at = this.ctx.now();
    const read = readPayload(item.raw);
    const judged = this.verdictFor(item, read, this.signed ? 'signed-approvals' : 'bounded-gate', closedReason);
    const { accepted } = judged;
    let { verdict } = judged;
    counts.received += 1;
    if (accepted) {
      counts.accepted += 1;
      if (accepted.decision === 'approve') {
        status.approvals.push(accepted);
        status.pendingRoles = status.pendingRoles.filter((r) => r !== accepted!.role);
      } else if (accepted.decision === 'reject' && this.onRejection === 'end-gate') {
        this.rejectedBy = accepted;
      } else {
        // A withdrawal, or a rejection under `reopen-role`: the role's approval (if any) no longer counts.
        if (accepted.decision === 'withdraw') counts.withdrawn += 1;
        status.approvals = status.approvals.filter((a) => a.role !== accepted!.role);
        if (!status.pendingRoles.includes(accepted.role)) {
          status.pendingRoles = status.requiredRoles.filter((r) => r === accepted!.role || status.pendingRoles.includes(r));
        }
        status.withdrawals = [...(status.withdrawals ?? []), accepted].slice(-DECISION_LIMITS.recentRefusals);
      }
      if (!verdict.accepted) throw new Error('unreachable');
      verdict = { accepted: true, pendingRoles: [...status.pendingRoles] };
    }
    const refusal: RefusedDecision | undefined = verdict.accepted
      ? undefined
      : { decision: item.decision, reason: verdict.reason, received: summariseReceived(item.raw), at, via: item.via };
    if (refusal) {
      counts.refused += 1;
      status.refusals = [...status.refusals, refusal].slice(-DECISION_LIMITS.recentRefusals);
    }
    const fields = (read.ok ? read.value : {}) as Record<string, unknown>;
    const record: DecisionRecord = {
      id: `${workflowId}/${runId}/decision-${item.seq}`,
      modelVersionId: this.modelVersionId,
      workflowId,
      decision: item.decision === 'unknown' ? 'approve' : item.decision,
      approver: accepted?.approver ?? readableField(fields, 'approver'),
      role: accepted?.role ?? readableField(fields, 'role'),
      meaning: accepted?.meaning ?? readableField(fields, 'meaning'),
      modelDigest: accepted?.modelDigest ?? readableField(fields, 'modelDigest'),
      // A refused payload's text is kept as its digest and excerpt only (in the audit event).
      comment: accepted?.comment,
      accepted: verdict.accepted,
      refusalReason: refusal?.reason,
      policyDigest: this.policy.digest,
      decidedAt: accepted?.at ?? at,
      ...(accepted?.signature ? { signature: accepted.signature } : {}),
    };
    const event = {
      workflowId,
      runId,
      step: `decision.${item.seq}`,
      kind: accepted ? `approval.${DECISION_DONE[accepted.decision]}` : 'approval.refused',
      actor: record.approver,
      payload: {
        ...(accepted ?? refusal),
        ...(accepted && accepted.decision === 'reject' ? { onRejection: this.onRejection } : {}),
        policyDigest: this.policy.digest,
      },
      occurredAt: record.decidedAt,
    };
    this.toRecord.push({ seq: item.seq, verdict, entry: { record, event } });
    this.startRecorder();
    return this.signed && typeof fields.signature === 'string' ? SIGNED_JUDGE_COST : 1;
  }

  private startRecorder(): void {
    if (this.recorderStarted) return;
    this.recorderStarted = true;
    void this.recorder();
  }

  /** Writes queued records in order, a batch per activity; a waiting update gets its verdict once its record is written. */
  private async recorder(): Promise<void> {
    try {
      for (;;) {
        await condition(() => this.toRecord.length > 0);
        this.recording = true;
        const batch = this.toRecord.splice(0, RECORD_BATCH);
        try {
          await this.ctx.records.recordDecisions(batch.map((b) => b.entry));
        } catch (err) {
          if (!(err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'UnstorableDecision')) throw err;
          // The database refused a value the gate let through: keep the decision as digest and reason only.
          log.warn('decision batch refused by the database; recording digests only', { seqs: batch.map((b) => b.seq) });
          await this.ctx.records.recordDecisions(batch.map((b) => minimalEntry(b.entry)));
        }
        for (const b of batch) if (this.waitingUpdates.has(b.seq)) this.verdicts.set(b.seq, b.verdict);
        this.recording = false;
      }
    } catch (err) {
      this.recorderFailure = err;
    }
  }

  private async flush(): Promise<void> {
    await condition(() => (this.toRecord.length === 0 && !this.recording) || this.recorderFailure !== undefined);
    if (this.recorderFailure !== undefined) throw this.recorderFailure;
  }

  // ---- legacy path: lifecycles that reached the gate before the bounded gate replay through this ----

  private async awaitLegacy(candidate: Candidate, deadlineMs: number): Promise<GateResult> {
    const { status } = this.ctx;
    status.requiredRoles = [...candidate.requiredRoles];
    status.pendingRoles = [...candidate.requiredRoles];
    status.deadline = new Date(deadlineMs).toISOString();
    status.waiting = true;
    this.showWaiting();
    await this.ctx.audit(
      'approval.requested',
      'approval.requested',
      { requiredRoles: status.requiredRoles, deadline: status.deadline, modelDigest: candidate.modelDigest },
      'factory',
    );
    while (status.pendingRoles.length > 0 && !this.rejectedBy) {
      const arrived = await condition(() => this.inbox.length > 0, Math.max(1, deadlineMs - Date.now()));
      if (!arrived) break;
      await this.judgeLegacy(this.inbox.shift()!);
      this.showWaiting();
    }
    status.waiting = false;
    if (this.rejectedBy) return { approved: false, rejectedBy: this.rejectedBy };
    if (status.pendingRoles.length > 0) return { approved: false, timedOut: true };
    return { approved: true };
  }

  private async judgeLegacy(item: Inbound, closedReason?: string): Promise<void> {
    const { status, workflowId, runId } = this.ctx;
    const { policy } = this;
    const at = this.ctx.now();
    const read = readPayload(item.raw);
    const { verdict, accepted } = this.verdictFor(item, read, 'legacy', closedReason);
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
    await this.ctx.records.recordDecision({
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

/** The last resort for a record the database refused: no free text at all, the reason and digest kept. */
function minimalEntry({ record, event }: DecisionWithEvent): DecisionWithEvent {
  const summary = summariseReceived(event.payload);
  const strip = (s: string) => s.replace(/[^\x20-\x7e]/g, '?');
  return {
    record: {
      ...record,
      approver: strip(record.approver),
      role: strip(record.role),
      meaning: strip(record.meaning),
      modelDigest: strip(record.modelDigest),
      comment: undefined,
      refusalReason: record.refusalReason && strip(record.refusalReason),
    },
    event: {
      ...event,
      actor: strip(event.actor),
      payload: { unstorable: true, accepted: record.accepted, reason: record.refusalReason && strip(record.refusalReason), payloadSha256: summary.sha256 },
    },
  };
}

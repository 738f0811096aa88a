import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import * as z from 'zod';
import type { AuditEventInput } from '../audit/chain.ts';
import { digestSchema } from './lifecycle.ts';

/** 21 CFR Part 11 §11.50: each signature states its meaning. */
export const MEANINGS = ['review', 'approval', 'responsibility'] as const;

/**
 * Limits of what a decision may carry. Anyone who can reach Temporal can send one, so every field is
 * bounded: the payload lands in the history, the registry, the audit trail and every status answer.
 */
export const DECISION_LIMITS = {
  approver: 254,
  role: 64,
  comment: 2_000,
  /** What a refused payload leaves in the record beside its digest. */
  excerpt: 200,
  /** Refusals kept in the approvalStatus query (all of them are in the audit trail). */
  recentRefusals: 20,
  /** The signed statement (src/domain/approval-statement.ts: STATEMENT_MAX). */
  statement: 1_024,
  /** An armored SSH signature (src/signing/sshsig.ts: SSHSIG_LIMITS.armored). */
  signature: 2_048,
} as const;

// C0 controls other than TAB and LF, DEL and C1 controls: never part of a name, role or comment.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const CONTROL_IN_LINE = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Text that PostgreSQL, a terminal and a reviewer can all take: no NUL or control characters, no lone surrogates, NFC. */
function cleanText(max: number, { multiline = false } = {}) {
  return z
    .string()
    .max(max, `at most ${max} characters`)
    .refine((s) => !LONE_SURROGATE.test(s), 'contains a lone surrogate (not valid Unicode text)')
    .refine((s) => !(multiline ? CONTROL : CONTROL_IN_LINE).test(s), multiline ? 'contains NUL or control characters' : 'contains control characters')
    .transform((s) => s.normalize('NFC'));
}

/**
 * The payload of the `approve`, `reject` and `withdraw` signals and of the `decide` update (which adds
 * `decision`). Small enough to type into the Temporal Web UI:
 * {"approver":"dana@hospital.example","role":"compliance","meaning":"approval","modelDigest":"sha256:…","comment":"ok"}
 */
export const approvalPayloadSchema = z
  .object({
    approver: z.string().max(DECISION_LIMITS.approver).pipe(z.email()),
    role: cleanText(DECISION_LIMITS.role).pipe(z.string().min(1)),
    meaning: z.enum(MEANINGS),
    modelDigest: digestSchema,
    comment: cleanText(DECISION_LIMITS.comment, { multiline: true }).optional(),
  })
  .strict();
export type ApprovalPayload = z.output<typeof approvalPayloadSchema>;

/**
 * The payload under the `signed-approvals` rules: the same fields, and for a signed decision the exact
 * statement signed (src/domain/approval-statement.ts) and the armored OpenSSH signature over it
 * (`ssh-keygen -Y sign -n factory-approval`). Both are taken verbatim: the signature covers their bytes.
 */
export const signedPayloadSchema = approvalPayloadSchema
  .extend({
    statement: z
      .string()
      .max(DECISION_LIMITS.statement, `at most ${DECISION_LIMITS.statement} characters`)
      .refine((s) => !CONTROL.test(s), 'contains NUL or control characters')
      .optional(),
    signature: z
      .string()
      .max(DECISION_LIMITS.signature, `at most ${DECISION_LIMITS.signature} characters`)
      .refine((s) => /^[\x20-\x7e\r\n]*$/.test(s), 'an armored SSH signature is printable ASCII')
      .optional(),
  })
  .strict()
  .refine((p) => (p.statement === undefined) === (p.signature === undefined), { message: 'statement and signature come together', path: ['signature'] });
export type SignedPayload = z.output<typeof signedPayloadSchema>;

/** What an accepted signed decision keeps: enough for anyone to verify it again with ssh-keygen. */
export interface SignatureEvidence {
  /** `SHA256:…`, as `ssh-keygen -l` prints it. */
  keyFingerprint: string;
  /** `<type> <base64>` of the key that signed, one of the approver's keys in the policy pack. */
  publicKey: string;
  statement: string;
  signature: string;
  signedAt: string;
  /** The gate verified the signature over the statement with the key (always true when present). */
  verified: true;
}
/** approve and reject are signatures; withdraw takes back the sender's own approval while the gate is open. */
export const DECISIONS = ['approve', 'reject', 'withdraw'] as const;
export const decisionSchema = z.enum(DECISIONS);
export type Decision = z.infer<typeof decisionSchema>;

/** The whole `decide` update, judged in its validator: what fails here never reaches the history. */
export const decideUpdateSchema = signedPayloadSchema
  .safeExtend({ decision: decisionSchema })
  .strict()
  .refine((u) => u.decision !== 'withdraw' || (u.comment ?? '').trim().length > 0, { message: 'a withdrawal states its reason in comment', path: ['comment'] });
export type DecideUpdate = z.input<typeof decideUpdateSchema>;

/** The past tense recorded as an audit kind (approval.approved, approval.rejected, approval.withdrawn). */
export const DECISION_DONE: Record<Decision, string> = { approve: 'approved', reject: 'rejected', withdraw: 'withdrawn' };

export interface AcceptedDecision extends ApprovalPayload {
  decision: Decision;
  principalName: string;
  /** UTC, ISO 8601, from the workflow's clock when the decision was processed. */
  at: string;
  /** Where it came from: "signal" (UI, temporal CLI) or "update" (factory CLI). */
  via: 'signal' | 'update';
  /** Under the signed-approvals rules, a signed decision's verified signature. */
  signature?: SignatureEvidence;
}

/** What arrived, bounded: a digest of the whole and a short, escaped excerpt. Never the payload itself. */
export interface ReceivedSummary {
  sha256: string;
  bytes: number;
  excerpt: string;
  truncated: boolean;
}

export interface RefusedDecision {
  decision: Decision | 'unknown';
  reason: string;
  /** What arrived: before the bounded gate, the payload verbatim; since, a ReceivedSummary. */
  received: unknown;
  at: string;
  via: 'signal' | 'update';
}

export interface DecisionCounts {
  received: number;
  accepted: number;
  refused: number;
  withdrawn: number;
}

export interface ApprovalStatus {
  stage: string;
  waiting: boolean;
  modelName: string;
  version?: number;
  modelDigest?: string;
  riskTier: string;
  requiredRoles: string[];
  pendingRoles: string[];
  /** The approvals in force (a withdrawn approval leaves this list; its record stays in the trail). */
  approvals: AcceptedDecision[];
  /** The latest refusals (at most DECISION_LIMITS.recentRefusals); counts has the totals. */
  refusals: RefusedDecision[];
  /** The latest withdrawals and rejections that did not end the gate. */
  withdrawals?: AcceptedDecision[];
  counts?: DecisionCounts;
  /** Runs of this lifecycle before the current one (continue-as-new keeps the history bounded). */
  continuedRuns?: number;
  deadline?: string;
  outcome?: string;
  /** Where training was placed (or why it waits): lifecycles that passed the placement step only. */
  placement?: PlacementStatus;
}

export interface PlacementStatus {
  classification: string;
  /** Zones the policy allows for this classification. */
  allowedZones: string[];
  /** The zone training was scheduled on; absent while waiting. */
  zone?: string;
  waiting: boolean;
  reason: string;
}

/**
 * Reads what a signal carried. The UI may send an object, a JSON string, or raw bytes; anything that
 * is not one JSON object is refused with a reason instead of failing the workflow task.
 */
export function readPayload(raw: unknown): { ok: true; value: unknown } | { ok: false; reason: string; received: unknown } {
  let value = raw;
  if (value instanceof Uint8Array) value = new TextDecoder().decode(value);
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return { ok: false, reason: 'payload is not JSON: send one JSON object', received: value };
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, reason: 'payload is not a JSON object', received: value ?? null };
  }
  return { ok: true, value };
}

/** Escapes what must not reach a database, a log line or a terminal verbatim: controls, lone surrogates. */
export function escapeUnsafe(s: string): string {
  return s.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** A digest and a bounded, escaped excerpt of any received value: what a refusal keeps of it. */
export function summariseReceived(raw: unknown): ReceivedSummary {
  let text: string;
  if (raw instanceof Uint8Array) text = new TextDecoder().decode(raw);
  else if (typeof raw === 'string') text = raw;
  else {
    try {
      text = JSON.stringify(raw) ?? String(raw);
    } catch {
      text = String(raw);
    }
  }
  const bytes = raw instanceof Uint8Array ? raw : new TextEncoder().encode(text);
  const head = [...text.slice(0, DECISION_LIMITS.excerpt * 2)].slice(0, DECISION_LIMITS.excerpt).join('');
  return { sha256: `sha256:${bytesToHex(sha256(bytes))}`, bytes: bytes.length, excerpt: escapeUnsafe(head), truncated: head.length < text.length };
}

/** A field of a payload that failed judgement, as far as it can be kept: a bounded, escaped string. */
export function readableField(fields: Record<string, unknown>, key: string): string {
  const v = fields[key];
  if (typeof v !== 'string') return '(unreadable)';
  const head = [...v.slice(0, DECISION_LIMITS.excerpt * 2)].slice(0, DECISION_LIMITS.excerpt).join('');
  return escapeUnsafe(head) + (head.length < v.length ? '…' : '');
}

/** One row of the approvals table: every decision, accepted or refused. */
export interface DecisionRecord {
  id: string;
  modelVersionId: number;
  workflowId: string;
  decision: Decision;
  approver: string;
  role: string;
  meaning: string;
  modelDigest: string;
  comment?: string;
  accepted: boolean;
  refusalReason?: string;
  policyDigest: string;
  decidedAt: string;
  /** An accepted signed decision's verified signature (migration 0005). */
  signature?: SignatureEvidence;
}

/** A judged decision and the audit event that records it: written together. */
export interface DecisionWithEvent {
  record: DecisionRecord;
  event: AuditEventInput;
}

/** What the gate carries into the next run when it continues as new. */
export interface GateState {
  received: number;
  requiredRoles: string[];
  pendingRoles: string[];
  approvals: AcceptedDecision[];
  refusals: RefusedDecision[];
  withdrawals: AcceptedDecision[];
  counts: DecisionCounts;
  deadline: string;
  /** Under the signed-approvals rules: set when the gate opened under them (absent: the older rules). */
  signed?: { openedAt: string; usedSignatures: string[] };
}

/** Per approval, for people: the key that signed it and that the signature verified, or that it is unsigned. */
export function signatureLine(a: { keyFingerprint?: string | null; signatureVerified?: boolean | null }): string {
  if (!a.keyFingerprint) return 'unsigned';
  return `key ${a.keyFingerprint} ${a.signatureVerified ? 'signature verified' : 'SIGNATURE NOT VERIFIED'}`;
}

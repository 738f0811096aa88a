import { z } from 'zod';
import { digestSchema, emailSchema } from './lifecycle.ts';

/** 21 CFR Part 11 §11.50: each signature states its meaning. */
export const MEANINGS = ['review', 'approval', 'responsibility'] as const;

/**
 * The payload of the `approve` and `reject` signals and of the `decide` update (which adds
 * `decision`). Small enough to type into the Temporal Web UI:
 * {"approver":"dana@hospital.example","role":"compliance","meaning":"approval","modelDigest":"sha256:…","comment":"ok"}
 */
export const approvalPayloadSchema = z
  .object({
    approver: emailSchema,
    role: z.string().min(1),
    meaning: z.enum(MEANINGS),
    modelDigest: digestSchema,
    comment: z.string().max(2_000).optional(),
  })
  .strict();
export type ApprovalPayload = z.infer<typeof approvalPayloadSchema>;

export const decisionSchema = z.enum(['approve', 'reject']);
export type Decision = z.infer<typeof decisionSchema>;

export const decideUpdateSchema = approvalPayloadSchema.extend({ decision: decisionSchema }).strict();
export type DecideUpdate = z.infer<typeof decideUpdateSchema>;

export interface AcceptedDecision extends ApprovalPayload {
  decision: Decision;
  principalName: string;
  /** UTC, ISO 8601, from the workflow's clock when the decision was processed. */
  at: string;
  /** Where it came from: "signal" (UI, temporal CLI) or "update" (factory CLI). */
  via: 'signal' | 'update';
}

export interface RefusedDecision {
  decision: Decision | 'unknown';
  reason: string;
  /** What arrived, as far as it could be read (malformed payloads are kept verbatim as text). */
  received: unknown;
  at: string;
  via: 'signal' | 'update';
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
  approvals: AcceptedDecision[];
  refusals: RefusedDecision[];
  deadline?: string;
  outcome?: string;
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

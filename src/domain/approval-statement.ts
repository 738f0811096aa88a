import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

/**
 * The statement an approver signs (21 CFR 11.50, 11.70): a canonical, versioned text that binds the
 * signature to one decision on one artifact in one lifecycle. One field a line, in this order, LF line
 * ends, a final LF; the same bytes are built by the CLI, printed for the Web UI path, parsed by the gate
 * and verified by `ssh-keygen -Y verify`:
 *
 *   factory-approval-statement v1
 *   workflow-id: lifecycle-bc-…
 *   model: bc
 *   version: 3
 *   artifact-digest: sha256:…
 *   role: compliance
 *   meaning: approval
 *   decision: approve
 *   approver: dana@hospital.example
 *   comment-sha256: <hex of the NFC comment's UTF-8> | none
 *   signed-at: 2026-11-27T12:00:00.000Z
 */
export const STATEMENT_HEADER = 'factory-approval-statement v1';
/** A v1 statement of the longest allowed fields is under 1 KiB. */
export const STATEMENT_MAX = 1_024;

export interface StatementFields {
  workflowId: string;
  model: string;
  version: number;
  artifactDigest: string;
  role: string;
  meaning: string;
  decision: string;
  approver: string;
  /** sha256 hex of the comment (NFC, UTF-8), or "none". */
  commentSha256: string;
  /** UTC, ISO 8601 with Z. */
  signedAt: string;
}

const LINES: Array<[keyof StatementFields, string]> = [
  ['workflowId', 'workflow-id'],
  ['model', 'model'],
  ['version', 'version'],
  ['artifactDigest', 'artifact-digest'],
  ['role', 'role'],
  ['meaning', 'meaning'],
  ['decision', 'decision'],
  ['approver', 'approver'],
  ['commentSha256', 'comment-sha256'],
  ['signedAt', 'signed-at'],
];

/** What the statement's fields are called for people (a refusal names the field that differs). */
export const STATEMENT_FIELD_NAMES: Record<keyof StatementFields, string> = Object.fromEntries(LINES.map(([k, n]) => [k, n])) as Record<
  keyof StatementFields,
  string
>;

const UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

/** The comment as the statement binds it. */
export function commentDigest(comment: string | undefined): string {
  return comment === undefined || comment === '' ? 'none' : bytesToHex(sha256(new TextEncoder().encode(comment.normalize('NFC'))));
}

export function buildStatement(f: Omit<StatementFields, 'commentSha256'> & { comment?: string; commentSha256?: string }): string {
  const fields: StatementFields = { ...f, commentSha256: f.commentSha256 ?? commentDigest(f.comment) };
  for (const [k, name] of LINES) {
    const v = String(fields[k]);
    if (!v || /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(v)) throw new Error(`statement field ${name} is empty or holds control characters`);
  }
  if (!UTC.test(fields.signedAt)) throw new Error('signed-at is UTC in ISO 8601 (…Z)');
  const text = `${[STATEMENT_HEADER, ...LINES.map(([k, name]) => `${name}: ${fields[k]}`)].join('\n')}\n`;
  if (text.length > STATEMENT_MAX) throw new Error(`the statement is longer than ${STATEMENT_MAX} characters`);
  return text;
}

/** Reads a statement; anything but the exact canonical form is refused with the reason. */
export function parseStatement(text: string): { ok: true; value: StatementFields } | { ok: false; reason: string } {
  if (typeof text !== 'string') return { ok: false, reason: 'statement is not text' };
  if (text.length > STATEMENT_MAX) return { ok: false, reason: `statement is longer than ${STATEMENT_MAX} characters` };
  if (!text.endsWith('\n')) return { ok: false, reason: 'statement does not end with a line feed' };
  const lines = text.slice(0, -1).split('\n');
  if (lines[0] !== STATEMENT_HEADER) return { ok: false, reason: `statement does not begin with "${STATEMENT_HEADER}"` };
  if (lines.length !== LINES.length + 1) return { ok: false, reason: `statement has ${lines.length - 1} fields, v1 has ${LINES.length}` };
  const out: Record<string, string | number> = {};
  for (let i = 0; i < LINES.length; i++) {
    const [key, name] = LINES[i]!;
    const line = lines[i + 1]!;
    if (!line.startsWith(`${name}: `)) return { ok: false, reason: `statement line ${i + 2} is not "${name}: …"` };
    const v = line.slice(name.length + 2);
    if (!v || /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(v)) return { ok: false, reason: `statement field ${name} is empty or holds control characters` };
    out[key] = v;
  }
  if (!/^[1-9]\d{0,8}$/.test(String(out.version))) return { ok: false, reason: 'statement field version is not a positive integer' };
  out.version = Number(out.version);
  if (!UTC.test(String(out.signedAt)) || Number.isNaN(Date.parse(String(out.signedAt)))) {
    return { ok: false, reason: 'statement field signed-at is not a UTC time (ISO 8601, …Z)' };
  }
  if (!/^([0-9a-f]{64}|none)$/.test(String(out.commentSha256))) return { ok: false, reason: 'statement field comment-sha256 is not 64 hex digits or "none"' };
  return { ok: true, value: out as unknown as StatementFields };
}

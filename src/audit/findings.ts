/** What `audit verify` names, each with its own exit code (README, "Exit codes"). No S3 here: `trace` shares this chunk. */
export type TamperKind = 'chain-broken' | 'tail-truncated' | 'chain-rewritten' | 'checkpoint-invalid';
export const TAMPER_EXIT: Record<TamperKind, number> = { 'chain-broken': 7, 'tail-truncated': 8, 'chain-rewritten': 9, 'checkpoint-invalid': 10 };
export const TAMPER_NAME: Record<TamperKind, string> = {
  'chain-broken': 'AUDIT CHAIN BROKEN',
  'tail-truncated': 'TAIL TRUNCATED',
  'chain-rewritten': 'CHAIN REWRITTEN',
  'checkpoint-invalid': 'CHECKPOINT INVALID',
};

export interface Finding {
  kind: TamperKind;
  seq?: string;
  key?: string;
  message: string;
}

/** The exit code for what was found: the highest of the kinds present (0 when none). */
export function tamperExit(findings: readonly Finding[]): number {
  return Math.max(0, ...findings.map((f) => TAMPER_EXIT[f.kind]));
}

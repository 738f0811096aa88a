/**
 * What a workflow's final failure type means to whoever asked, whichever command asked. A type
 * means the same thing everywhere (a registry guard's refusal is a refusal for a rollback, a
 * retirement or a promotion alike), so one table classifies them all and a new refusal is added
 * once. The CLI maps each meaning to its exit code (src/cli/output.ts).
 */
export type FailureMeaning = 'refused' | 'tampered' | 'not-found' | 'failed';

/** Not allowed, or not possible, as asked: nothing broke, asking differently may succeed. */
export const REFUSAL_TYPES: ReadonlySet<string> = new Set([
  // any registry write its guard triggers refuse (activities/guard-refusal.ts)
  'RefusedByRegistryGuard',
  'IllegalTransition',
  'InvalidInput',
  // rollback and drills (workflows/rollback.ts)
  'NoLiveRoute',
  'VersionNotEligible',
  'RouteChanged',
  'NotApproved',
  'InvalidRollbackInput',
  // retirement (workflows/retirement.ts)
  'AlreadyRetired',
  'NotRetirable',
  // promotion between sites (activities/promotion.ts)
  'UnknownSite',
  'PurposeNotAllowed',
  'NotPromotable',
  'EvidenceMissing',
]);

/** Evidence that does not match what was recorded: someone changed it. */
export const TAMPER_TYPES: ReadonlySet<string> = new Set(['ProvenanceMismatch', 'TamperedArtifact']);

export const NOT_FOUND_TYPES: ReadonlySet<string> = new Set(['UnknownModelVersion']);

export function failureMeaning(type: string): FailureMeaning {
  if (TAMPER_TYPES.has(type)) return 'tampered';
  if (NOT_FOUND_TYPES.has(type)) return 'not-found';
  if (REFUSAL_TYPES.has(type)) return 'refused';
  return 'failed';
}

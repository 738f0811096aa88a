import type { EvidenceKind } from '../policy/schema.ts';

/** The buckets the retention job sweeps (landing belongs to producers, requests to the gateway's own schedule). */
export const SWEPT_BUCKETS = ['quarantine', 'certified', 'artifacts', 'evidence'] as const;
export type SweptBucket = (typeof SWEPT_BUCKETS)[number];

/** The record type (the pack's evidenceRetention kind) of an object, from where it is kept. */
export function recordTypeOf(bucket: SweptBucket, key: string): EvidenceKind | 'other' {
  switch (bucket) {
    case 'quarantine':
      return 'raw';
    case 'certified':
      return 'certified';
    case 'artifacts':
      return 'artifacts';
    case 'evidence':
      if (key.startsWith('datasets/')) return 'certified';
      if (key.startsWith('provenance/')) return 'provenance';
      if (key.startsWith('checkpoints/')) return 'checkpoints';
      if (key.startsWith('histories/')) return 'histories';
      if (key.startsWith('models/')) return key.endsWith('.evaluation.json') ? 'evaluations' : 'artifacts';
      return 'other';
  }
}

/** The dataset or model an object belongs to, read from its key (classification is looked up from them). */
export function ownerOf(bucket: SweptBucket, key: string): { dataset?: string; model?: string } {
  const parts = key.split('/');
  if (bucket === 'quarantine' || bucket === 'certified') return { dataset: parts[0] };
  if (parts[0] === 'datasets') return { dataset: parts[1] };
  if (parts[0] === 'models') return { model: parts[1] };
  return {};
}

export interface ObjectVersionState {
  /** The Object Lock retain-until set when it was written (the pack's schedule as it applied then). */
  retainUntil?: Date;
  /** For a version written without a lock: its write time plus the pack's retention for its record type. */
  policyRetainUntil?: Date;
  legalHold: boolean;
}

/**
 * What the pack allows for one object version now: `due` (its retain-until has passed and no legal
 * hold: may be deleted), `held` (a legal hold keeps it, whatever its retain-until), or `kept` (still
 * under retention, or of no known record type). A locked version's own retain-until decides (the
 * store enforces it anyway); an unlocked one's is computed from the pack.
 */
export function retentionVerdict(v: ObjectVersionState, now: Date): 'due' | 'held' | 'kept' {
  if (v.legalHold) return 'held';
  const until = v.retainUntil ?? v.policyRetainUntil;
  if (until && until.getTime() <= now.getTime()) return 'due';
  return 'kept';
}

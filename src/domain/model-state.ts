/** A model version's state in the registry. */
export type ModelState = 'registered' | 'validated' | 'approved' | 'deployed' | 'rejected' | 'failed' | 'cancelled' | 'rolled-back' | 'retired';

/**
 * The registry's state machine, for code that moves versions (the registry activity) or writes rows in
 * bulk (bench/fill-lib.ts). The database's guard (migrations 0011, 0018) enforces the same, and
 * test/integration/db-roles.test.ts tries every pair of states against it so the two cannot drift.
 */
export const MODEL_STATE_TRANSITIONS: Record<ModelState, readonly ModelState[]> = {
  registered: ['validated', 'rejected', 'failed', 'cancelled'],
  validated: ['approved', 'rejected', 'failed', 'cancelled'],
  approved: ['deployed', 'rejected', 'failed', 'cancelled', 'retired'],
  deployed: ['rolled-back', 'retired'],
  'rolled-back': ['deployed', 'retired'],
  rejected: [],
  failed: [],
  cancelled: [],
  retired: [],
};

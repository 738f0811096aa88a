import { describe, expect, it } from 'vitest';
import { EXIT, exitForFailure } from '../../src/cli/output.ts';
import { NOT_FOUND_TYPES, REFUSAL_TYPES, TAMPER_TYPES, failureMeaning } from '../../src/domain/failure-types.ts';

describe('failure types: one meaning per type, whichever command ended with it', () => {
  it('a registry guard refusal is a refusal (exit 4) for every command', () => {
    expect(failureMeaning('RefusedByRegistryGuard')).toBe('refused');
    expect(exitForFailure('RefusedByRegistryGuard')).toBe(EXIT.refused);
  });
  it('tampering exits 7, an unknown version 6, anything unclassified 1', () => {
    expect(exitForFailure('TamperedArtifact')).toBe(EXIT.tampered);
    expect(exitForFailure('ProvenanceMismatch')).toBe(EXIT.tampered);
    expect(exitForFailure('UnknownModelVersion')).toBe(EXIT.notFound);
    expect(exitForFailure('SmokeFailed')).toBe(EXIT.failure);
    expect(exitForFailure('')).toBe(EXIT.failure);
  });
  it('no type has two meanings', () => {
    const all = [...REFUSAL_TYPES, ...TAMPER_TYPES, ...NOT_FOUND_TYPES];
    expect(new Set(all).size).toBe(all.length);
  });
});

import { describe, expect, it } from 'vitest';
import { projectionAgreement } from '../../src/lifecycle/projection.ts';

const v = (state: string, runId: string | null = 'r1') => ({ version: { id: 1, version: 1, state, runId }, endEvents: [] });
const ended = (kind: string) => ({ endEvents: [{ kind, runId: 'r1' }] });

describe('Temporal and the registry: does the projection say what the history says?', () => {
  it.each([
    ['RUNNING', undefined, v('validated'), true],
    ['RUNNING', undefined, { endEvents: [] }, true],
    ['RUNNING', undefined, v('deployed'), false],
    ['COMPLETED', 'deployed', v('deployed'), true],
    ['COMPLETED', 'rejected', v('approved'), false],
    ['FAILED', undefined, { ...v('failed'), ...ended('lifecycle.failed') }, true],
    ['FAILED', undefined, ended('lifecycle.failed'), true],
    ['FAILED', undefined, v('approved'), false],
    ['CANCELED', undefined, { ...v('cancelled'), ...ended('lifecycle.cancelled') }, true],
    ['TERMINATED', undefined, v('validated'), false],
    ['TIMED_OUT', undefined, { endEvents: [] }, false],
  ] as const)('%s (%s) with %j agrees: %s', (status, outcome, view, agrees) => {
    expect(projectionAgreement(status, outcome, view, 'r1').agrees).toBe(agrees);
  });

  it('a retry that has not registered yet is not contradicted by the failed run before it', () => {
    expect(projectionAgreement('RUNNING', undefined, v('failed', 'r0'), 'r1').agrees).toBe(true);
  });

  it('says why, and what to do, when a lifecycle was terminated around its code', () => {
    expect(projectionAgreement('TERMINATED', undefined, v('validated'), 'r1').reason).toMatch(
      /did not record its end, and the registry still says validated; start it again with `factory lifecycle retry`/,
    );
  });
});

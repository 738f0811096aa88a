import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { refusedByGuardIsFinal } from '../../activities/guard-refusal.ts';

describe('a write the registry guards refuse', () => {
  it('is final at once (SQLSTATE 42501), with the guard message bounded and without control characters', async () => {
    const refused = Object.assign(new Error('model_versions: m v1 is frozen by legal hold CASE-1\n'), { code: '42501' });
    const err = await refusedByGuardIsFinal(() => Promise.reject(refused)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ nonRetryable: true, type: 'RefusedByRegistryGuard' });
    expect((err as Error).message).toBe('the registry refused the change: model_versions: m v1 is frozen by legal hold CASE-1 ');
  });

  it('leaves other failures (a database outage) to the retry policy, and passes results through', async () => {
    const down = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    await expect(refusedByGuardIsFinal(() => Promise.reject(down))).rejects.toBe(down);
    await expect(refusedByGuardIsFinal(() => Promise.resolve(7))).resolves.toBe(7);
  });
});

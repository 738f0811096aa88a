import { describe, expect, it } from 'vitest';
import {
  revalidationEveryOk,
  revalidationReviewInputSchema,
  revalidationScheduleId,
  revalidationSweepInputSchema,
  revalidationWorkflowId,
} from '../../src/domain/revalidation.ts';
import { tierPolicySchema } from '../../src/policy/schema.ts';

const review = { modelName: 'wdbc', version: 3, dueAt: '2027-01-10T09:00:00.000Z', lastValidatedAt: '2026-01-10T09:00:00.000Z', openedBy: 'revalidationSweep' };

describe('revalidation: ids, inputs and the schedule interval', () => {
  it('derives one workflow id per version and due date (no : or . in it), prefixed like the task queues', () => {
    expect(revalidationWorkflowId('wdbc', 3, review.dueAt)).toBe('revalidation-wdbc-3-2027-01-10T090000000Z');
    expect(revalidationWorkflowId('wdbc', 3, review.dueAt, 't1-')).toBe('t1-revalidation-wdbc-3-2027-01-10T090000000Z');
    expect(revalidationWorkflowId('wdbc', 3, '2027-01-10T09:00:01.000Z')).not.toBe(revalidationWorkflowId('wdbc', 3, review.dueAt));
    expect(revalidationScheduleId()).toBe('revalidation-sweep');
    expect(revalidationScheduleId('t1-')).toBe('t1-revalidation-sweep');
  });

  it('accepts a review input only with a known shape: bounded version, UTC instants, no extra fields', () => {
    expect(revalidationReviewInputSchema.safeParse(review).success).toBe(true);
    for (const bad of [
      { ...review, modelName: 'Wdbc' },
      { ...review, modelName: 'a\u0000b' },
      { ...review, version: 0 },
      { ...review, version: 1e10 },
      { ...review, dueAt: 'tomorrow' },
      { ...review, dueAt: '2027-01-10T09:00:00+02:00' },
      { ...review, openedBy: '' },
      { ...review, openedBy: 'x'.repeat(201) },
      { ...review, extra: 1 },
    ]) {
      expect(revalidationReviewInputSchema.safeParse(bad).success, JSON.stringify(bad).slice(0, 120)).toBe(false);
    }
    expect(revalidationSweepInputSchema.safeParse({}).success).toBe(true);
    expect(revalidationSweepInputSchema.safeParse({ modelName: 'wdbc' }).success).toBe(true);
    expect(revalidationSweepInputSchema.safeParse({ modelName: '../x' }).success).toBe(false);
    expect(revalidationSweepInputSchema.safeParse({ all: true }).success).toBe(false);
  });

  it('schedules from one minute to 366 days', () => {
    for (const ok of ['1m', '30m', '12h', '1d', '366d']) expect(revalidationEveryOk(ok), ok).toBe(true);
    for (const bad of ['0m', '367d', '1s', '1w', 'd', '', '1d ', '01d', '9999999m']) expect(revalidationEveryOk(bad), bad).toBe(false);
  });

  it('a tier may name its revalidator roles; none named means the validators', () => {
    const tier = { approverRoles: ['model-owner'], thresholds: {}, approvalTimeout: '7d', maxExcludedFraction: 0.1 };
    expect(tierPolicySchema.parse(tier).revalidatorRoles).toBeUndefined();
    expect(tierPolicySchema.parse({ ...tier, revalidatorRoles: ['validator', 'compliance'] }).revalidatorRoles).toEqual(['validator', 'compliance']);
    expect(tierPolicySchema.safeParse({ ...tier, revalidatorRoles: [] }).success).toBe(false);
  });
});

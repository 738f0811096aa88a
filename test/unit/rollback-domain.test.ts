import { describe, expect, it } from 'vitest';
import { drillInputSchema, rollbackInputSchema, rollbackWorkflowId, sameOutputs, shadowModelName } from '../../src/domain/rollback.ts';

const ok = { modelName: 'credit-risk', reason: 'drift on income', requestedBy: 'dana@bank.example', trigger: 'manual' as const };

describe('rollback input (the contract the monitor starts modelRollback with)', () => {
  it('accepts a bounded, clean request, with or without a target version', () => {
    expect(rollbackInputSchema.parse(ok)).toEqual(ok);
    expect(rollbackInputSchema.parse({ ...ok, toVersion: 3, trigger: 'monitoring' })).toMatchObject({ toVersion: 3 });
  });

  it.each([
    ['a control character in the reason', { ...ok, reason: 'ok\u001b[2J' }],
    ['a NUL in requestedBy', { ...ok, requestedBy: 'dana\u0000' }],
    ['a bidi override', { ...ok, reason: 'fine \u202e gnp.exe' }],
    ['a lone surrogate', { ...ok, reason: 'bad \ud800 text' }],
    ['a huge reason', { ...ok, reason: 'x'.repeat(1_001) }],
    ['a short reason', { ...ok, reason: 'no' }],
    ['an unknown trigger', { ...ok, trigger: 'cron' }],
    ['a model name with a slash', { ...ok, modelName: 'a/../b' }],
    ['version 0', { ...ok, toVersion: 0 }],
    ['a fractional version', { ...ok, toVersion: 1.5 }],
    ['an unknown field', { ...ok, force: true }],
  ])('refuses %s', (_what, input) => {
    expect(rollbackInputSchema.safeParse(input).success).toBe(false);
  });

  it('drill input defaults its reason and refuses the same hostile text', () => {
    expect(drillInputSchema.parse({ modelName: 'credit-risk', requestedBy: 'schedule' })).toMatchObject({ reason: 'rollback drill' });
    expect(drillInputSchema.safeParse({ modelName: 'credit-risk', requestedBy: 'x\u0007' }).success).toBe(false);
  });

  it('names workflows and the shadow deployment predictably, with safe ids', () => {
    expect(rollbackWorkflowId('credit-risk', 'mx1-ab')).toBe('rollback-credit-risk-mx1-ab');
    expect(rollbackWorkflowId('m', 'a b/c')).toBe('rollback-m-a_b_c');
    expect(shadowModelName('credit-risk')).toBe('credit-risk--shadow');
  });
});

describe('a correct answer (sameOutputs)', () => {
  it('accepts float32 round-off and refuses another answer or shape', () => {
    expect(sameOutputs([[0.9731]], [[0.97310001]])).toBe(true);
    expect(sameOutputs([[0.9731]], [[0.9]])).toBe(false);
    expect(sameOutputs([[0.1], [0.2]], [[0.1]])).toBe(false);
    expect(sameOutputs([[0.1, 0.2]], [[0.1]])).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { type RouteRef, modelServingState, servingHistory, versionServingState } from '../../src/domain/serving-state.ts';

const live = (version: number, modelName = 'credit'): RouteRef => ({ modelName, state: 'live', version, reason: 'deployed' });

describe('serving state of a version (pure)', () => {
  it('is live only when its own route names it and the registry says deployed', () => {
    expect(versionServingState({ modelName: 'credit', version: 2, registryState: 'deployed' }, [live(2)]).state).toBe('live');
    // The route names another version: deployed but superseded.
    const superseded = versionServingState({ modelName: 'credit', version: 1, registryState: 'deployed' }, [live(2)]);
    expect(superseded).toMatchObject({ state: 'not-served' });
    expect(superseded.reason).toMatch(/superseded: the gateway serves credit@2/);
  });

  it('is retired or rolled back as the registry says, whatever a route says', () => {
    const retired = versionServingState({ modelName: 'credit', version: 2, registryState: 'retired' }, [
      { modelName: 'credit', state: 'retired', version: 2, reason: 'retired: replaced by the 2027 model' },
    ]);
    expect(retired).toEqual({ state: 'retired', reason: 'retired: replaced by the 2027 model' });
    expect(versionServingState({ modelName: 'credit', version: 1, registryState: 'retired' }, [live(2)]).state).toBe('retired');
    expect(versionServingState({ modelName: 'credit', version: 2, registryState: 'rolled-back' }, [live(1)]).state).toBe('rolled-back');
  });

  it('is shadow when only a drill route names it', () => {
    const s = versionServingState({ modelName: 'credit', version: 3, registryState: 'deployed' }, [
      live(2),
      { modelName: 'credit-drill', state: 'shadow', version: 3 },
    ]);
    expect(s.state).toBe('shadow');
    expect(s.reason).toContain('credit-drill');
  });

  it('is not served before deployment, naming the registry state', () => {
    expect(versionServingState({ modelName: 'credit', version: 4, registryState: 'validated' }, [live(2)])).toEqual({
      state: 'not-served',
      reason: 'validated in the registry',
    });
  });

  it('of a model: its own route', () => {
    expect(modelServingState('credit', undefined).state).toBe('not-served');
    expect(modelServingState('credit', live(2))).toMatchObject({ state: 'live', version: 2 });
    expect(modelServingState('credit', { modelName: 'credit', state: 'retired', version: 2, reason: 'retired: x' })).toMatchObject({
      state: 'retired',
      version: 2,
      reason: 'retired: x',
    });
  });
});

describe("a model's deployment history (pure)", () => {
  it('is in time order, deploy before rollback before retirement at the same instant, newest kept', () => {
    const t = (s: number) => new Date(Date.UTC(2026, 10, 27, 12, 0, s)).toISOString();
    const h = servingHistory([
      { at: t(30), kind: 'retired', version: 1 },
      { at: t(10), kind: 'deployed', version: 1 },
      { at: t(20), kind: 'rolled-back', version: 2 },
      { at: t(20), kind: 'deployed', version: 2 },
      { at: t(25), kind: 'served-again', version: 1 },
      { at: t(25), kind: 'rolled-back', version: 2 },
    ]);
    expect(h.map((e) => `${e.kind}:${e.version}`)).toEqual(['deployed:1', 'deployed:2', 'rolled-back:2', 'rolled-back:2', 'served-again:1', 'retired:1']);
    expect(servingHistory(h, 2).map((e) => e.kind)).toEqual(['served-again', 'retired']);
  });
});

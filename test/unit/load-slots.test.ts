import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { loadSlotsBusy, withLoadSlot } from '../../src/serving/load-slots.ts';

describe('Triton load slots', () => {
  it('runs at most `limit` loads at once and one at a time per model', async () => {
    const live = new Map<string, number>();
    let most = 0;
    let mostPerModel = 0;
    const load = (model: string) =>
      withLoadSlot(model, 2, new AbortController().signal, async () => {
        live.set(model, (live.get(model) ?? 0) + 1);
        most = Math.max(
          most,
          [...live.values()].reduce((a, b) => a + b, 0),
        );
        mostPerModel = Math.max(mostPerModel, live.get(model)!);
        await sleep(5);
        live.set(model, live.get(model)! - 1);
        return model;
      });
    const models = ['a', 'a', 'a', 'b', 'c', 'b', 'd', 'a'];
    expect(await Promise.all(models.map(load))).toEqual(models);
    expect(most).toBe(2);
    expect(mostPerModel).toBe(1);
    expect(loadSlotsBusy()).toBe(0);
  });

  it('frees the slot when the load throws, and a cancelled waiter leaves the queue', async () => {
    await expect(withLoadSlot('x', 1, new AbortController().signal, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(loadSlotsBusy()).toBe(0);
    let release!: () => void;
    const holder = withLoadSlot('x', 1, new AbortController().signal, () => new Promise<void>((r) => (release = r)));
    const cancel = new AbortController();
    const waiter = withLoadSlot('y', 1, cancel.signal, async () => 'ran');
    await sleep(5);
    cancel.abort(new Error('cancelled'));
    await expect(waiter).rejects.toThrow('cancelled');
    release();
    await holder;
    expect(loadSlotsBusy()).toBe(0);
  });
});

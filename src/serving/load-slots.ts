/**
 * Loads this worker process asks Triton for at once (FACTORY_TRITON_MAX_CONCURRENT_LOADS), and one at
 * a time per Triton model. A deploy holds its slot from reading the index until its version answers
 * ready. Unbounded, 50 deployments at once queued their loads inside Triton and every index call
 * timed out; and two deploys of one model both read the index, then each loaded "what is served +
 * mine", so the second load could drop the first one's version. A waiter whose activity is cancelled
 * leaves the queue.
 */
const loadSlots = { busy: 0, models: new Set<string>(), waiting: [] as Array<() => void> };
export async function withLoadSlot<T>(model: string, limit: number, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  while (loadSlots.busy >= limit || loadSlots.models.has(model)) {
    signal.throwIfAborted();
    await new Promise<void>((resolve) => {
      const wake = () => {
        signal.removeEventListener('abort', wake);
        const i = loadSlots.waiting.indexOf(wake);
        if (i >= 0) loadSlots.waiting.splice(i, 1);
        resolve();
      };
      loadSlots.waiting.push(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }
  loadSlots.busy += 1;
  loadSlots.models.add(model);
  try {
    return await fn();
  } finally {
    loadSlots.busy -= 1;
    loadSlots.models.delete(model);
    // Every waiter looks again: the one first in line may be waiting for this model, another for any slot.
    for (const wake of loadSlots.waiting.splice(0)) wake();
  }
}

/** Loads holding a slot now (tests). */
export function loadSlotsBusy(): number {
  return loadSlots.busy;
}

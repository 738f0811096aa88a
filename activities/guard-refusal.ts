import { ApplicationFailure } from '@temporalio/activity';

/**
 * Runs a registry write whose rows the database's own guards may refuse (SQLSTATE 42501, raised by the
 * triggers: a legal hold freezes the version, a transition the state machine forbids). The same write
 * would be refused on every retry, so the refusal is final at once (`RefusedByRegistryGuard`, the
 * guard's message kept) instead of an activity retried until its attempts run out.
 */
export async function refusedByGuardIsFinal<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    if (e?.code === '42501') {
      const message = typeof e.message === 'string' ? e.message.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 500) : 'refused';
      throw ApplicationFailure.nonRetryable(`the registry refused the change: ${message}`, 'RefusedByRegistryGuard');
    }
    throw err;
  }
}

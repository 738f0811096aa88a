import { describe, expect, it } from 'vitest';
import { isWorkersNotAnswering } from '../../src/lifecycle/client.ts';

/** The SDK's shape: a ServiceError("Failed to query Workflow") whose cause is the gRPC error. */
function wrapped(cause: Error): Error {
  return Object.assign(new Error('Failed to query Workflow', { cause }), { name: 'ServiceError' });
}

describe('a query no worker answered', () => {
  it('is told apart by the gRPC code or message in the chain, with or without metadata', () => {
    expect(isWorkersNotAnswering(wrapped(Object.assign(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded after 0.993s'), { code: 4 })))).toBe(true);
    expect(isWorkersNotAnswering(wrapped(Object.assign(new Error('14 UNAVAILABLE: no worker'), { code: 14 })))).toBe(true);
    expect(isWorkersNotAnswering(wrapped(new Error('context deadline exceeded')))).toBe(true);
  });

  it('is not any other failure', () => {
    expect(isWorkersNotAnswering(wrapped(Object.assign(new Error('3 INVALID_ARGUMENT: unknown queryType'), { code: 3 })))).toBe(false);
    expect(isWorkersNotAnswering(new Error('Failed to query Workflow'))).toBe(false);
    expect(isWorkersNotAnswering('not an error')).toBe(false);
  });
});

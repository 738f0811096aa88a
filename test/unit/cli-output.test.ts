import { InvalidArgumentError } from 'commander';
import { ActivityFailure, ApplicationFailure, RetryState, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { strictInt } from '../../src/cli/options.ts';
import { escapeDeep, escapeForTerminal } from '../../src/cli/output.ts';
import { lifecycleInputSchema } from '../../src/domain/lifecycle.ts';
import { diffLifecycleInputs, renderCause, rootCause } from '../../src/lifecycle/client.ts';

describe('escapeForTerminal', () => {
  it('turns every terminal control into a visible escape', () => {
    const forged = 'ok\u001b[31mred\u001b]0;title\u0007\u009b2J\u007f\u0000\r\n\t';
    expect(escapeForTerminal(forged)).toBe('ok\\x1b[31mred\\x1b]0;title\\x07\\x9b2J\\x7f\\x00\\x0d\\x0a\\x09');
  });

  it('escapes bidi embeddings, overrides and isolates, and line separators', () => {
    const chars = ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c', '\u2028', '\u2029'];
    for (const c of chars) expect(escapeForTerminal(`a${c}b`)).toBe(`a\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}b`);
  });

  it('escapes lone surrogates and keeps paired ones (emoji) and ordinary text', () => {
    expect(escapeForTerminal('x\ud800y\udc00z')).toBe('x\\ud800y\\udc00z');
    expect(escapeForTerminal('\udc00\ud800')).toBe('\\udc00\\ud800');
    expect(escapeForTerminal('Dana Whitfield ✓ 😀 → é ü 中文')).toBe('Dana Whitfield ✓ 😀 → é ü 中文');
  });

  it('keeps line breaks of a whole rendering when asked, and nothing else', () => {
    expect(escapeForTerminal('a\nb\u001b', { keepNewlines: true })).toBe('a\nb\\x1b');
  });

  it('escapeDeep escapes every string (keys too) and leaves other values', () => {
    const v = { 'k\u001b': ['\u202e', 1, null, true], nested: { s: '\u0007' }, at: new Date(0) };
    const safe = escapeDeep(v);
    expect(safe).toEqual({ 'k\\x1b': ['\\u202e', 1, null, true], nested: { s: '\\x07' }, at: new Date(0) });
    expect(v.nested.s).toBe('\u0007'); // the original (what --json prints) is unchanged
  });
});

describe('strictInt', () => {
  const epochs = strictInt(1, 1_000_000);
  it('accepts whole numbers in range', () => {
    expect(epochs('1')).toBe(1);
    expect(epochs('300')).toBe(300);
    expect(epochs('1000000')).toBe(1_000_000);
  });
  it.each(['abc', '0', '-1', '1.5', '1e3', '', ' 5', '5 ', '0x10', '+5', '1000001', '99999999999999999999', 'Infinity', 'NaN'])('refuses %j', (v) => {
    expect(() => epochs(v)).toThrow(InvalidArgumentError);
  });
});

describe('diffLifecycleInputs', () => {
  const base = lifecycleInputSchema.parse({
    modelName: 'bc',
    datasetPath: '/p/datasets/x/data.csv',
    commitSha: 'abcdef1',
    imageDigest: `sha256:${'a'.repeat(64)}`,
    riskTier: 'low',
    requester: 'ci@h.example',
    developer: 'dev@h.example',
  });

  it('finds no difference between an input and its normalised self, defaults and the default schema path included', () => {
    expect(
      diffLifecycleInputs(base, lifecycleInputSchema.parse({ ...base, training: { epochs: 300, seed: 7 }, schemaPath: '/p/datasets/x/schema.json' })),
    ).toEqual([]);
  });

  it('names each differing field with both values', () => {
    const other = lifecycleInputSchema.parse({ ...base, imageDigest: `sha256:${'b'.repeat(64)}`, riskTier: 'high', training: { epochs: 5 } });
    expect(diffLifecycleInputs(base, other)).toEqual([
      { field: 'imageDigest', existing: `sha256:${'a'.repeat(64)}`, requested: `sha256:${'b'.repeat(64)}` },
      { field: 'riskTier', existing: 'low', requested: 'high' },
      { field: 'training.epochs', existing: 300, requested: 5 },
    ]);
  });
});

describe('rootCause', () => {
  it('walks WorkflowFailedError → ActivityFailure → ApplicationFailure to the type and message that matter', () => {
    const app = ApplicationFailure.nonRetryable("cannot read the dataset: ENOENT: no such file or directory, open '/d/x.csv'", 'DatasetUnreadable');
    const act = new ActivityFailure('Activity task failed', 'quarantineRaw', '3', RetryState.NON_RETRYABLE_FAILURE, 'w', app);
    const wf = new WorkflowFailedError('Workflow execution failed', act, RetryState.NON_RETRYABLE_FAILURE);
    const c = rootCause(wf);
    expect(c).toEqual({
      type: 'DatasetUnreadable',
      message: "cannot read the dataset: ENOENT: no such file or directory, open '/d/x.csv'",
      where: 'activity quarantineRaw',
    });
    expect(renderCause(c)).toBe("DatasetUnreadable: cannot read the dataset: ENOENT: no such file or directory, open '/d/x.csv' (in activity quarantineRaw)");
  });

  it('names timeouts and terminations', () => {
    const t = new ActivityFailure(
      'Activity task timed out',
      'evaluateModel',
      '9',
      RetryState.TIMEOUT,
      'w',
      new TimeoutFailure(undefined, undefined, 'HEARTBEAT'),
    );
    expect(rootCause(t)).toMatchObject({ type: 'Timeout(HEARTBEAT)', where: 'activity evaluateModel' });
    expect(rootCause(new TerminatedFailure('by operator'))).toEqual({ type: 'Terminated', message: 'by operator' });
  });
});

import { describe, expect, it } from 'vitest';
import { canonicalEvent } from '../../src/audit/chain.ts';
import { canonicalJson } from '../../src/audit/canonical.ts';
import { CopyBinaryReader, CopyFormatError } from '../../src/audit/copy-binary.ts';
import { prevHashAt, prevHashInText } from '../../src/audit/verify.ts';

type Field = Buffer | null;

/** A COPY binary stream as PostgreSQL writes it: signature, flags, extension, tuples, trailer. */
function copyStream(tuples: Field[][], { flags = 0, extension = Buffer.alloc(0), trailer = true } = {}): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1')];
  const head = Buffer.alloc(8);
  head.writeUInt32BE(flags, 0);
  head.writeInt32BE(extension.length, 4);
  parts.push(head, extension);
  for (const t of tuples) {
    const n = Buffer.alloc(2);
    n.writeInt16BE(t.length);
    parts.push(n);
    for (const f of t) {
      const len = Buffer.alloc(4);
      len.writeInt32BE(f === null ? -1 : f.length);
      parts.push(len);
      if (f) parts.push(f);
    }
  }
  if (trailer) parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

const int8 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return b;
};

/** Three columns like verify's COPY: seq, hash, the text (multi-byte UTF-8 included), NULL texts among them. */
const rows: Field[][] = [
  [int8(1n), Buffer.from('a'.repeat(64)), Buffer.from('{"payload":{"name":"é😀中","q":"\\"x\\""}}', 'utf8')],
  [int8(2n), Buffer.from('b'.repeat(64)), null],
  [int8(3n), Buffer.from(''), Buffer.from('')],
  [int8(2n ** 40n), Buffer.from('c'.repeat(64)), Buffer.from('ü'.repeat(300), 'utf8')],
];

/** Tuples as hex strings (null for NULL): compared quickly. */
const hex = (tuples: Field[][]) => tuples.map((t) => t.map((f) => (f === null ? null : f.toString('hex'))));
const expected = hex(rows);

/** What a reader hands on, copied out of the buffers it is given (they are valid only during the call). */
function collect(fields = 3) {
  const got: Array<Array<string | null>> = [];
  const reader = new CopyBinaryReader(fields, (buf, at) => {
    const t: Array<string | null> = [];
    for (let i = 0; i < fields; i++) t.push(at[2 * i + 1] === -1 ? null : buf.toString('hex', at[2 * i]!, at[2 * i]! + at[2 * i + 1]!));
    got.push(t);
  });
  return { got, reader };
}

describe('CopyBinaryReader: the COPY binary format, streamed', () => {
  const whole = copyStream(rows, { extension: Buffer.from('ext!') });

  it('reads every tuple, NULL fields and multi-byte UTF-8 as they are, with the stream split at every byte boundary', () => {
    for (let cut = 0; cut <= whole.length; cut++) {
      const { got, reader } = collect();
      reader.push(whole.subarray(0, cut));
      reader.push(whole.subarray(cut));
      reader.end();
      expect(got, `split at ${cut}`).toEqual(expected);
      expect(reader.complete).toBe(true);
    }
    expect(Buffer.concat(rows[0]!.slice(2) as Buffer[]).toString('utf8')).toContain('é😀中');
  });

  it('reads the same one byte at a time, and in chunks split at every pair of boundaries', () => {
    const { got, reader } = collect();
    for (let i = 0; i < whole.length; i++) reader.push(whole.subarray(i, i + 1));
    reader.end();
    expect(got).toEqual(expected);
    const small = copyStream(rows.slice(0, 3));
    const want = JSON.stringify(expected.slice(0, 3));
    let wrong = 0;
    for (let a = 0; a <= small.length; a++) {
      for (let b = a; b <= small.length; b++) {
        const c = collect();
        c.reader.push(small.subarray(0, a));
        c.reader.push(small.subarray(a, b));
        c.reader.push(small.subarray(b));
        c.reader.end();
        if (JSON.stringify(c.got) !== want) wrong += 1;
      }
    }
    expect(wrong).toBe(0);
  });

  it('a stream cut anywhere before its trailer is an error at its end, never a shorter stream that reads whole', () => {
    for (let cut = 0; cut < whole.length; cut++) {
      const { reader } = collect();
      reader.push(whole.subarray(0, cut));
      expect(() => reader.end(), `cut at ${cut}`).toThrow(CopyFormatError);
      expect(reader.complete).toBe(false);
    }
    // Every tuple, but no trailer: still cut off.
    const { got, reader } = collect();
    reader.push(copyStream(rows, { trailer: false }));
    expect(got).toEqual(expected);
    expect(() => reader.end()).toThrow(/without its trailer/);
  });

  it('an empty result is the header and the trailer', () => {
    const { got, reader } = collect();
    reader.push(copyStream([]));
    reader.end();
    expect(got).toEqual([]);
    expect(reader.complete).toBe(true);
  });

  it('refuses what is not the format: signature, critical flags, widths, lengths, bytes after the trailer', () => {
    const push =
      (b: Buffer, fields = 3) =>
      () =>
        collect(fields).reader.push(b);
    const bad = Buffer.from(whole);
    bad[0] = 0x51;
    expect(push(bad)).toThrow(/signature/);
    expect(push(copyStream(rows, { flags: 1 << 16 }))).toThrow(/critical COPY flags/);
    // A bit in the low half is to be ignored.
    expect(push(copyStream(rows, { flags: 1 }))).not.toThrow();
    expect(push(whole, 2)).toThrow(/3 fields where 2/);
    const negative = copyStream([[Buffer.from('x')]]);
    negative.writeInt32BE(-2, 19 + 2);
    expect(push(negative, 1)).toThrow(/field length of -2/);
    expect(push(Buffer.concat([whole, Buffer.from([0])]))).toThrow(/after the COPY trailer/);
    const r = collect().reader;
    r.push(whole);
    expect(() => r.push(Buffer.from([0]))).toThrow(/after the COPY trailer/);
    expect(() => new CopyBinaryReader(0, () => undefined)).toThrow(RangeError);
  });

  it('stops when the handler says so, and takes nothing more', () => {
    let seen = 0;
    const reader = new CopyBinaryReader(3, () => (seen += 1) < 2);
    expect(reader.push(whole)).toBe(false);
    expect(seen).toBe(2);
    expect(reader.push(Buffer.from('anything'))).toBe(false);
    expect(() => reader.end()).not.toThrow();
  });
});

describe('prevHashAt: the byte form of prevHashInText', () => {
  const prev = 'a'.repeat(64);
  const decoy = 'f'.repeat(64);
  const row = (payload: Record<string, unknown>, extra: Partial<Record<'step' | 'run_id' | 'workflow_id', string>> = {}) => ({
    event_id: 'wf/run/s',
    workflow_id: 'wf',
    run_id: 'run',
    step: 's',
    kind: 'k',
    actor: 'ä😀',
    payload,
    occurred_at: '2026-11-27T00:00:00.000Z',
    prev_hash: prev,
    ...extra,
  });
  /** The text inside other bytes, as a COPY tuple holds it. */
  const byteForm = (text: string) => {
    const buf = Buffer.concat([Buffer.from('"prevHash":"' + decoy + '"'), Buffer.from(text, 'utf8'), Buffer.from(`"prevHash":"${decoy}"}`)]);
    const from = Buffer.byteLength(`"prevHash":"${decoy}"`);
    const at = prevHashAt(buf, from, from + Buffer.byteLength(text));
    return at < 0 ? undefined : buf.toString('latin1', at, at + 64);
  };

  it('finds what the string form finds, in canonical texts whatever the payload or the later strings hold', () => {
    for (const r of [
      row({}),
      row({ prevHash: decoy, 'é😀': '中' }),
      row({ nested: { prevHash: decoy, z: [{ prevHash: decoy }] } }),
      row({ s: `","prevHash":"${decoy}"` }),
      row({}, { step: `x","prevHash":"${decoy}`, run_id: `"prevHash":"${decoy}"}`, workflow_id: `\\","prevHash":"${decoy}\\\\` }),
      row({}, { step: '', run_id: '\\', workflow_id: '"' }),
    ]) {
      const text = canonicalEvent(r);
      expect(prevHashInText(text)).toBe(prev);
      expect(byteForm(text)).toBe(prev);
    }
  });

  it('refuses a text equal as JSON but not canonical, where a decoy follows the outer key (a reordered payload), in both forms', () => {
    const q = JSON.stringify;
    const r = row({ prevHash: decoy });
    const reordered = `{"actor":${q(r.actor)},"eventId":${q(r.event_id)},"kind":${q(r.kind)},"occurredAt":${q(r.occurred_at)},"prevHash":${q(prev)},"runId":${q(r.run_id)},"step":${q(r.step)},"workflowId":${q(r.workflow_id)},"payload":${canonicalJson(r.payload)}}`;
    expect(JSON.parse(reordered)).toEqual(JSON.parse(canonicalEvent(r)));
    for (const text of [
      reordered,
      // The keys after prevHash in another order, or one more, or whitespace, or something after the brace.
      canonicalEvent(r).replace(`"runId":"run","step":"s"`, `"step":"s","runId":"run"`),
      canonicalEvent(r).replace(`,"step":"s"`, `,"step":"s","x":"y"`),
      canonicalEvent(r).replace(`,"step":"s"`, `, "step":"s"`),
      `${canonicalEvent(r)} `,
      `${canonicalEvent(r)}}`,
      canonicalEvent(r).replace(`"workflowId":"wf"}`, `"workflowId":"wf"`),
      canonicalEvent(r).replace(`"workflowId":"wf"}`, `"workflowId":"wf\\"}`),
    ]) {
      expect(prevHashInText(text), text).toBeUndefined();
      expect(byteForm(text), text).toBeUndefined();
    }
  });

  it('is -1 for a text without one of 64 characters', () => {
    for (const text of ['', 'not json', '{"prevHash":"abc"}', `{"prevHash":"${prev}x"}`, `{"prevHash":"${prev}"`]) {
      expect(prevHashInText(text)).toBeUndefined();
      expect(byteForm(text)).toBeUndefined();
    }
  });
});

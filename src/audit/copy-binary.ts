/**
 * A streaming reader of PostgreSQL's COPY binary format (`COPY … TO STDOUT (FORMAT binary)`), for
 * `audit verify`: the rows arrive as bytes and are hashed as bytes, with no decoding into JavaScript
 * strings (docs/design.md, "Audit verify streams the rows as bytes").
 *
 * The format (PostgreSQL docs, "COPY", Binary Format): the signature `PGCOPY\n\377\r\n\0`, an int32
 * of flags, an int32 header-extension length and that many bytes; then per tuple an int16 field
 * count and, per field, an int32 length (-1 for NULL) and that many bytes; then the trailer, an int16
 * of -1. All integers big-endian.
 *
 * Pure logic (no I/O): chunks may be split anywhere, a tuple is handed on only once it is whole, and
 * a stream that ends before its trailer is an error, so a cut connection can never read as a shorter
 * chain that verifies.
 */

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Signature, flags, extension length. */
const HEADER = SIGNATURE.length + 8;

export class CopyFormatError extends Error {
  override name = 'CopyFormatError';
}

/**
 * Called with each whole tuple: `buf` holds it, `at[2i]` is field i's offset in `buf` and
 * `at[2i + 1]` its length (-1 for NULL). Both are valid only during the call (`buf` is reused or
 * released after it). Return `false` to stop: the reader then takes no more input.
 */
export type TupleHandler = (buf: Buffer, at: Int32Array) => boolean | void;

export class CopyBinaryReader {
  readonly #fields: number;
  readonly #onTuple: TupleHandler;
  readonly #at: Int32Array;
  /** Bytes received and not yet consumed (the start of an incomplete header or tuple), in order. */
  #pending: Buffer[] = [];
  #have = 0;
  /** How many pending bytes the next step needs: no parse is tried with fewer (a large tuple in small chunks stays linear). */
  #need = HEADER;
  #headerRead = false;
  #trailerRead = false;
  #stopped = false;
  /** Tuples handed on. */
  tuples = 0;

  /** `fields`: the number of columns every tuple must have (the COPY's select list). */
  constructor(fields: number, onTuple: TupleHandler) {
    if (!Number.isInteger(fields) || fields < 1 || fields > 1600) throw new RangeError('fields must be 1 to 1600');
    this.#fields = fields;
    this.#onTuple = onTuple;
    this.#at = new Int32Array(fields * 2);
  }

  /** Whether the trailer has been read: the stream was whole. */
  get complete(): boolean {
    return this.#trailerRead;
  }

  /**
   * Takes the next chunk and hands on every tuple it completes. Returns false once the handler has
   * stopped the reader. Throws CopyFormatError on bytes that are not the format (or not `fields` wide).
   */
  push(chunk: Buffer): boolean {
    if (this.#stopped) return false;
    if (chunk.length === 0) return true;
    if (this.#trailerRead) throw new CopyFormatError('data after the COPY trailer');
    if (this.#have === 0) return this.#parse(chunk, 0);
    this.#pending.push(chunk);
    this.#have += chunk.length;
    if (this.#have < this.#need) return true;
    if (!this.#headerRead) {
      const all = Buffer.concat(this.#pending, this.#have);
      this.#pending = [];
      this.#have = 0;
      return this.#parse(all, 0);
    }
    // A tuple begun in earlier chunks: only its own bytes are copied together, then this chunk is
    // read where it ends (copying the whole chunk each time would copy every byte twice).
    const span = this.#tupleSpan();
    if (span < 0) {
      this.#need = -span;
      return true;
    }
    const before = this.#have - chunk.length;
    const head = Buffer.concat([...this.#pending.slice(0, -1), chunk.subarray(0, span - before)], span);
    this.#pending = [];
    this.#have = 0;
    if (!this.#parse(head, 0)) return false;
    if (span - before === chunk.length) return true;
    if (this.#trailerRead) throw new CopyFormatError('data after the COPY trailer');
    return this.#parse(chunk, span - before);
  }

  /** Hands on every whole tuple in `buf` from `p`; keeps what is left as the pending bytes. */
  #parse(buf: Buffer, p: number): boolean {
    const end = buf.length;
    if (!this.#headerRead) {
      const body = this.#header(buf);
      if (body < 0) return this.#keep(buf, 0, -body);
      p = body;
      this.#headerRead = true;
    }
    const fields = this.#fields;
    const at = this.#at;
    for (;;) {
      if (end - p < 2) return this.#keep(buf, p, 2);
      const n = buf.readInt16BE(p);
      if (n === -1) {
        if (p + 2 !== end) throw new CopyFormatError('data after the COPY trailer');
        this.#trailerRead = true;
        return this.#keep(buf, end, 0);
      }
      if (n !== fields) throw new CopyFormatError(`a tuple of ${n} fields where ${fields} were expected`);
      let q = p + 2;
      for (let i = 0; i < fields; i++) {
        if (end - q < 4) return this.#keep(buf, p, q - p + 4);
        const len = buf.readInt32BE(q);
        q += 4;
        if (len === -1) {
          at[2 * i] = q;
          at[2 * i + 1] = -1;
          continue;
        }
        if (len < 0) throw new CopyFormatError(`a field length of ${len}`);
        if (end - q < len) return this.#keep(buf, p, q - p + len);
        at[2 * i] = q;
        at[2 * i + 1] = len;
        q += len;
      }
      this.tuples += 1;
      if (this.#onTuple(buf, at) === false) {
        this.#stopped = true;
        this.#keep(buf, end, 0);
        return false;
      }
      p = q;
    }
  }

  /** The pending bytes as one stream: the byte at `i`. */
  #byte(i: number): number {
    for (const b of this.#pending) {
      if (i < b.length) return b[i]!;
      i -= b.length;
    }
    throw new RangeError('past the pending bytes');
  }

  #int(at: number, bytes: 2 | 4): number {
    let v = 0;
    for (let i = 0; i < bytes; i++) v = v * 256 + this.#byte(at + i);
    // Two's complement: the lengths and counts are signed.
    return v >= 2 ** (8 * bytes - 1) ? v - 2 ** (8 * bytes) : v;
  }

  /**
   * The length of the tuple (or trailer) the pending bytes begin with, read across the chunks; minus
   * the bytes needed to know it when they are fewer. Refuses what #parse refuses.
   */
  #tupleSpan(): number {
    const have = this.#have;
    if (have < 2) return -2;
    const n = this.#int(0, 2);
    if (n === -1) return 2;
    if (n !== this.#fields) throw new CopyFormatError(`a tuple of ${n} fields where ${this.#fields} were expected`);
    let q = 2;
    for (let i = 0; i < n; i++) {
      if (have < q + 4) return -(q + 4);
      const len = this.#int(q, 4);
      q += 4;
      if (len === -1) continue;
      if (len < 0) throw new CopyFormatError(`a field length of ${len}`);
      if (have < q + len) return -(q + len);
      q += len;
    }
    return q;
  }

  /** The stream has ended: throws unless it ended with the trailer (or the handler stopped it). */
  end(): void {
    if (this.#stopped || this.#trailerRead) return;
    throw new CopyFormatError(
      this.#headerRead
        ? `the COPY stream ended after ${this.tuples} tuples without its trailer (${this.#have} bytes of a tuple left): cut off`
        : 'the COPY stream ended before its header: cut off',
    );
  }

  /** Checks the header; returns the offset after it, or minus the bytes it needs when `buf` is too short. */
  #header(buf: Buffer): number {
    if (buf.length < HEADER) return -HEADER;
    if (!buf.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new CopyFormatError('not a COPY binary stream (signature)');
    const flags = buf.readUInt32BE(SIGNATURE.length);
    // Bits 16-31 are critical (bit 16: OIDs included); a reader must refuse what it does not expect.
    if (flags >>> 16 !== 0) throw new CopyFormatError(`unexpected critical COPY flags 0x${flags.toString(16)}`);
    const ext = buf.readInt32BE(SIGNATURE.length + 4);
    if (ext < 0) throw new CopyFormatError('a negative COPY header extension length');
    if (buf.length < HEADER + ext) return -(HEADER + ext);
    return HEADER + ext;
  }

  /** Keeps `buf` from `from` as the pending bytes, needing `need` of them before the next try. */
  #keep(buf: Buffer, from: number, need: number): boolean {
    const rest = from === 0 ? buf : buf.subarray(from);
    this.#pending = rest.length ? [rest] : [];
    this.#have = rest.length;
    this.#need = need;
    return true;
  }
}

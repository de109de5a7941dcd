/**
 * Bounds-checked access to FlatBuffers tables.
 *
 * The npm `flatbuffers` runtime reads little-endian scalars but, in
 * JavaScript, has no verifier: an offset past the end of a truncated file
 * reads `undefined` bytes as zeros and returns garbage. Every position this
 * reader follows (table, vtable, field, vector, string) is checked against the
 * buffer first, so a damaged file fails with one message that says where.
 */
import { ByteBuffer } from "flatbuffers";

/** A malformed buffer: the caller turns it into an error that names the file. */
export class FlatBufferError extends Error {}

export class FlatReader {
  readonly bb: ByteBuffer;
  readonly size: number;
  constructor(readonly bytes: Uint8Array) {
    this.bb = new ByteBuffer(bytes);
    this.size = bytes.byteLength;
  }

  /** Throws unless bytes [pos, pos + len) lie inside the buffer. */
  need(pos: number, len: number, what: string): void {
    if (!Number.isSafeInteger(pos) || pos < 0 || len < 0 || pos + len > this.size) {
      throw new FlatBufferError(
        `${what} at byte ${pos} (${len} bytes) lies outside the ${this.size}-byte file (truncated or corrupt)`,
      );
    }
  }

  u8(pos: number, what: string): number {
    this.need(pos, 1, what);
    return this.bb.readUint8(pos);
  }
  i8(pos: number, what: string): number {
    this.need(pos, 1, what);
    return this.bb.readInt8(pos);
  }
  u16(pos: number, what: string): number {
    this.need(pos, 2, what);
    return this.bb.readUint16(pos);
  }
  i32(pos: number, what: string): number {
    this.need(pos, 4, what);
    return this.bb.readInt32(pos);
  }
  u32(pos: number, what: string): number {
    this.need(pos, 4, what);
    return this.bb.readUint32(pos);
  }
  f32(pos: number, what: string): number {
    this.need(pos, 4, what);
    return this.bb.readFloat32(pos);
  }
  i64(pos: number, what: string): bigint {
    this.need(pos, 8, what);
    return this.bb.readInt64(pos);
  }
  u64(pos: number, what: string): bigint {
    this.need(pos, 8, what);
    return this.bb.readUint64(pos);
  }

  /** The root table (uoffset at byte 0). */
  root(what: string): Table {
    return this.table(this.u32(0, `${what} root offset`), what);
  }

  /** The table at `pos`, with its vtable checked. */
  table(pos: number, what: string): Table {
    this.need(pos, 4, what);
    const vt = pos - this.bb.readInt32(pos);
    this.need(vt, 4, `${what} vtable`);
    const vtSize = this.bb.readUint16(vt);
    const objSize = this.bb.readUint16(vt + 2);
    if (vtSize < 4 || vtSize % 2 !== 0) throw new FlatBufferError(`${what} has a malformed vtable at byte ${vt}`);
    this.need(vt, vtSize, `${what} vtable`);
    this.need(pos, objSize, what);
    return new Table(this, pos, vt, vtSize, objSize, what);
  }
}

/** One table: fields are looked up by their index in the schema (vtable slot 4 + 2 * index). */
export class Table {
  constructor(
    readonly r: FlatReader,
    readonly pos: number,
    private readonly vt: number,
    private readonly vtSize: number,
    private readonly objSize: number,
    readonly what: string,
  ) {}

  /** Absolute position of field `index`, or 0 when the field is absent (its default applies). */
  private field(index: number, size: number, name: string): number {
    const slot = 4 + 2 * index;
    if (slot + 2 > this.vtSize) return 0;
    const off = this.r.bb.readUint16(this.vt + slot);
    if (off === 0) return 0;
    if (off + size > this.objSize) {
      throw new FlatBufferError(`${this.what}.${name} points outside its table (corrupt file)`);
    }
    return this.pos + off;
  }

  has(index: number): boolean {
    return this.field(index, 0, "?") !== 0;
  }
  u8(index: number, name: string, dflt = 0): number {
    const p = this.field(index, 1, name);
    return p === 0 ? dflt : this.r.u8(p, `${this.what}.${name}`);
  }
  i8(index: number, name: string, dflt = 0): number {
    const p = this.field(index, 1, name);
    return p === 0 ? dflt : this.r.i8(p, `${this.what}.${name}`);
  }
  i32(index: number, name: string, dflt = 0): number {
    const p = this.field(index, 4, name);
    return p === 0 ? dflt : this.r.i32(p, `${this.what}.${name}`);
  }
  u32(index: number, name: string, dflt = 0): number {
    const p = this.field(index, 4, name);
    return p === 0 ? dflt : this.r.u32(p, `${this.what}.${name}`);
  }
  f32(index: number, name: string, dflt = 0): number {
    const p = this.field(index, 4, name);
    return p === 0 ? dflt : this.r.f32(p, `${this.what}.${name}`);
  }
  u64(index: number, name: string, dflt = 0n): bigint {
    const p = this.field(index, 8, name);
    return p === 0 ? dflt : this.r.u64(p, `${this.what}.${name}`);
  }

  /** Position of the target of an offset field, or 0 when absent. */
  private indirect(index: number, name: string): number {
    const p = this.field(index, 4, name);
    if (p === 0) return 0;
    return p + this.r.u32(p, `${this.what}.${name}`);
  }

  /** A sub-table, or null when absent. */
  table(index: number, name: string): Table | null {
    const p = this.indirect(index, name);
    return p === 0 ? null : this.r.table(p, `${this.what}.${name}`);
  }

  /** Start and length of a vector of `elemSize`-byte elements, or null when absent. */
  vector(index: number, name: string, elemSize: number): { start: number; length: number } | null {
    const p = this.indirect(index, name);
    if (p === 0) return null;
    const length = this.r.u32(p, `${this.what}.${name} length`);
    this.r.need(p + 4, length * elemSize, `${this.what}.${name} (${length} elements)`);
    return { start: p + 4, length };
  }

  string(index: number, name: string): string | null {
    const v = this.vector(index, name, 1);
    if (!v) return null;
    return Buffer.from(this.r.bytes.buffer, this.r.bytes.byteOffset + v.start, v.length).toString("utf8");
  }

  i32s(index: number, name: string): number[] | null {
    const v = this.vector(index, name, 4);
    if (!v) return null;
    return Array.from({ length: v.length }, (_, i) => this.r.bb.readInt32(v.start + 4 * i));
  }
  f32s(index: number, name: string): number[] | null {
    const v = this.vector(index, name, 4);
    if (!v) return null;
    return Array.from({ length: v.length }, (_, i) => this.r.bb.readFloat32(v.start + 4 * i));
  }
  i64s(index: number, name: string): bigint[] | null {
    const v = this.vector(index, name, 8);
    if (!v) return null;
    return Array.from({ length: v.length }, (_, i) => this.r.bb.readInt64(v.start + 8 * i));
  }
  /** A [ubyte] vector as a view into the file (no copy). */
  bytes(index: number, name: string): Uint8Array | null {
    const v = this.vector(index, name, 1);
    if (!v) return null;
    return this.r.bytes.subarray(v.start, v.start + v.length);
  }
  /** A vector of tables. */
  tables(index: number, name: string): Table[] {
    const v = this.vector(index, name, 4);
    if (!v) return [];
    return Array.from({ length: v.length }, (_, i) => {
      const p = v.start + 4 * i;
      return this.r.table(p + this.r.bb.readUint32(p), `${this.what}.${name}[${i}]`);
    });
  }
}

/**
 * Pacemaker's operation digests (`op-digest`, `op-restart-digest`, `op-secure-digest`): md5 (hex)
 * of the parameters written as one `<parameters/>` element with attributes in sorted order. A
 * changed digest tells the scheduler that the resource's definition changed and it must be
 * restarted (or reloaded).
 *
 * Pure (no node:crypto): the scheduler is a pure core and compares digests itself, and the
 * executor records them; both use this one implementation so they always agree.
 */

/** The text Pacemaker hashes: ` <parameters a="1" b="2"/>` and a newline, names sorted. */
export function digestInput(params: Readonly<Record<string, string>> | ReadonlyMap<string, string>): string {
  const entries: [string, string][] =
    params instanceof Map ? [...params] : Object.entries(params as Readonly<Record<string, string>>);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const attrs = entries.map(([k, v]) => ` ${k}="${escapeAttr(v)}"`).join('');
  return ` <parameters${attrs}/>\n`;
}

function escapeAttr(v: string): string {
  return v
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/\n/g, '&#10;');
}

/** Pacemaker's `op-digest` of a parameter set. */
export function opDigest(params: Readonly<Record<string, string>> | ReadonlyMap<string, string>): string {
  return md5Hex(digestInput(params));
}

// ---------------------------------------------------------------------------------------------
// MD5 (RFC 1321) over the UTF-8 bytes of a string.

/** Per-round left-rotation amounts. */
const SHIFTS = [
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
  14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15,
  21, 6, 10, 15, 21,
] as const;

/** floor(abs(sin(i + 1)) * 2^32), as the RFC defines the table. */
const SINES: readonly number[] = Array.from(
  { length: 64 },
  (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0,
);

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** md5 of `text` (UTF-8) as 32 lowercase hex digits. */
export function md5Hex(text: string): string {
  const msg = utf8(text);
  const bitLen = msg.length * 8;
  const padded = new Uint8Array((((msg.length + 8) >>> 6) + 1) * 64);
  padded.set(msg);
  padded[msg.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, bitLen >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(bitLen / 2 ** 32) >>> 0, true);
  let a0 = 0x67452301;
  let b0 = 0xefcdab89;
  let c0 = 0x98badcfe;
  let d0 = 0x10325476;
  const m = new Array<number>(16);
  for (let off = 0; off < padded.length; off += 64) {
    for (let j = 0; j < 16; j++) m[j] = view.getUint32(off + j * 4, true);
    let a = a0;
    let b = b0;
    let c = c0;
    let d = d0;
    for (let i = 0; i < 64; i++) {
      let f: number;
      let g: number;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      const sum = (a + f + SINES[i]! + m[g]!) | 0;
      const s = SHIFTS[i]!;
      a = d;
      d = c;
      c = b;
      b = (b + ((sum << s) | (sum >>> (32 - s)))) | 0;
    }
    a0 = (a0 + a) | 0;
    b0 = (b0 + b) | 0;
    c0 = (c0 + c) | 0;
    d0 = (d0 + d) | 0;
  }
  let hex = '';
  for (const word of [a0, b0, c0, d0]) {
    for (let k = 0; k < 4; k++) hex += ((word >>> (8 * k)) & 0xff).toString(16).padStart(2, '0');
  }
  return hex;
}

/**
 * The heartbeat payload (inside a sealed datagram on the heartbeat channel). JSON keeps it
 * readable in a packet dump once decrypted; it is ~60 bytes. The sender's id and boot epoch are
 * in the authenticated packet header, not here.
 */
export interface Heartbeat {
  /** Beat number within the sender's boot epoch; the same beat goes out on every link. */
  readonly beat: number;
  /** Sender's wall clock when sent (ms since the Unix epoch), for the clock-skew check. */
  readonly wallMs: number;
  /**
   * The receiver's boot epoch as last heard by the sender (0: never heard). A receiver counts a
   * heartbeat as proof of life only when it echoes its current epoch: recorded traffic replayed
   * after the receiver restarted echoes an old epoch and proves nothing, although it is
   * authentic and new to the receiver's fresh replay window.
   */
  readonly echo: number;
  /** Set by a witness: the node it votes for, or null for nobody. */
  readonly witnessVote?: number | null;
}

/** Heartbeats are tiny; anything bigger is not one. */
export const MAX_HEARTBEAT_BYTES = 512;

/*
 * TextEncoder/TextDecoder rather than Buffer: membership is a pure core and stays free of node:*.
 * `ignoreBOM` keeps a leading byte-order mark in the text (as Buffer's decoding does), so such a
 * payload is still refused as not JSON.
 */
const UTF8_ENCODER = new TextEncoder();
const UTF8_DECODER = new TextDecoder('utf-8', { ignoreBOM: true });

export function encodeHeartbeat(hb: Heartbeat): Uint8Array {
  return UTF8_ENCODER.encode(JSON.stringify(hb));
}

/** Returns the heartbeat, or a reason it is not one. Never throws. */
export function decodeHeartbeat(bytes: Uint8Array): Heartbeat | string {
  if (bytes.length > MAX_HEARTBEAT_BYTES) return `heartbeat of ${bytes.length} bytes is too big`;
  let v: unknown;
  try {
    v = JSON.parse(UTF8_DECODER.decode(bytes));
  } catch {
    return 'heartbeat is not JSON';
  }
  if (typeof v !== 'object' || v === null) return 'heartbeat is not an object';
  const o = v as Record<string, unknown>;
  if (!Number.isSafeInteger(o.beat) || (o.beat as number) < 0)
    return 'heartbeat.beat is not a non-negative integer';
  if (typeof o.wallMs !== 'number' || !Number.isFinite(o.wallMs)) return 'heartbeat.wallMs is not a number';
  if (!Number.isInteger(o.echo) || (o.echo as number) < 0 || (o.echo as number) > 0xffff_ffff) {
    return 'heartbeat.echo is not a boot epoch';
  }
  const wv = o.witnessVote;
  if (
    wv !== undefined &&
    wv !== null &&
    !(Number.isInteger(wv) && (wv as number) >= 1 && (wv as number) <= 0xffff)
  ) {
    return 'heartbeat.witnessVote is not a node id';
  }
  const hb: Heartbeat = { beat: o.beat as number, wallMs: o.wallMs, echo: o.echo as number };
  return wv === undefined ? hb : { ...hb, witnessVote: wv as number | null };
}

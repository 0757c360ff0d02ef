/**
 * Durations as Pacemaker accepts them in `interval`, `timeout`, `start-delay` and properties:
 * a bare number (seconds), a number with a unit (`ms`, `msec`, `us`, `usec`, `s`, `sec`, `m`,
 * `min`, `h`, `hr`), or an ISO 8601 duration (`PT10S`, `P1DT2H`). Returns milliseconds.
 */
export type DurationParse = { ok: true; ms: number } | { ok: false; reason: string };

const UNIT_MS: Readonly<Record<string, number>> = {
  '': 1000,
  s: 1000,
  sec: 1000,
  secs: 1000,
  ms: 1,
  msec: 1,
  msecs: 1,
  us: 0.001,
  usec: 0.001,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
};

export function parseDuration(text: string): DurationParse {
  const s = text.trim();
  const plain = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(s);
  if (plain) {
    const unit = plain[2]!.toLowerCase();
    const factor = UNIT_MS[unit];
    if (factor === undefined) return { ok: false, reason: `'${text}' has an unknown unit '${plain[2]}'` };
    return { ok: true, ms: Math.round(Number(plain[1]) * factor) };
  }
  // Pacemaker also accepts a short form without `T` when no minutes are involved (`P10S`,
  // `P1H`); 20 of its regression inputs use it. `P1M` stays a month.
  const short = /^P(?:(\d+)H)?(?:(\d+(?:\.\d+)?)S)?$/i.exec(s);
  const iso =
    /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i.exec(
      s,
    );
  if (short && s.length > 1) {
    return { ok: true, ms: Math.round(Number(short[1] ?? 0) * 3_600_000 + Number(short[2] ?? 0) * 1000) };
  }
  if (iso && s.length > 1 && !/T$/i.test(s)) {
    const n = (i: number): number => (iso[i] ? Number(iso[i]) : 0);
    const days = n(1) * 365 + n(2) * 30 + n(3) * 7 + n(4);
    const ms = ((days * 24 + n(5)) * 60 + n(6)) * 60_000 + n(7) * 1000;
    return { ok: true, ms: Math.round(ms) };
  }
  return { ok: false, reason: `'${text}' is not a duration (expected e.g. 10s, 500ms, 2min or PT10S)` };
}

/** Like `parseDuration` but returns `fallbackMs` for text that is not a duration. */
export function durationMsOr(text: string | undefined, fallbackMs: number): number {
  if (text === undefined) return fallbackMs;
  const r = parseDuration(text);
  return r.ok ? r.ms : fallbackMs;
}

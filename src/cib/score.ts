/**
 * Pacemaker scores: integers clamped to ±INFINITY (1 000 000), where -INFINITY beats
 * +INFINITY ("never" outranks "must"). Every score sum in halo goes through `addScores`.
 */
export const INFINITY = 1_000_000;
export const MINUS_INFINITY = -INFINITY;

export type ScoreParse = { ok: true; score: number } | { ok: false; reason: string };

/**
 * Parses a score as written in a CIB or crm text: `INFINITY`, `+INFINITY`, `-INFINITY`,
 * `inf`/`-inf` (crm shell), `mandatory`/`advisory` (crm order kinds), or an integer. Integers
 * beyond ±INFINITY clamp to it, as Pacemaker does. `red`/`yellow`/`green` depend on the
 * cluster's node-score-* properties and are resolved with `colours`.
 */
export function parseScore(text: string, colours?: Readonly<Record<string, number>>): ScoreParse {
  const s = text.trim();
  const lower = s.toLowerCase();
  if (lower === 'infinity' || lower === '+infinity' || lower === 'inf' || lower === '+inf') {
    return { ok: true, score: INFINITY };
  }
  if (lower === '-infinity' || lower === '-inf') return { ok: true, score: MINUS_INFINITY };
  if (colours && Object.hasOwn(colours, lower)) return { ok: true, score: colours[lower]! };
  if (/^[+-]?\d+$/.test(s)) return { ok: true, score: clampScore(Number.parseInt(s, 10)) };
  return { ok: false, reason: `'${text}' is not a score (expected an integer, INFINITY or -INFINITY)` };
}

export function clampScore(n: number): number {
  if (n >= INFINITY) return INFINITY;
  if (n <= MINUS_INFINITY) return MINUS_INFINITY;
  return Math.trunc(n);
}

/** Pacemaker's pcmk__add_scores: -INFINITY wins, then +INFINITY, else a clamped sum. */
export function addScores(a: number, b: number): number {
  if (a <= MINUS_INFINITY || b <= MINUS_INFINITY) return MINUS_INFINITY;
  if (a >= INFINITY || b >= INFINITY) return INFINITY;
  return clampScore(a + b);
}

/** Formats a score as Pacemaker prints it: `INFINITY`, `-INFINITY` or the integer. */
export function formatScore(n: number): string {
  if (n >= INFINITY) return 'INFINITY';
  if (n <= MINUS_INFINITY) return '-INFINITY';
  return String(n);
}

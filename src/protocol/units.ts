// Durations and sizes as people write them on a command line or in a policy file.
import { CorralError } from './errors.ts';

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `2s`, `5m`, `1h` or a plain number of milliseconds. */
export function parseDuration(text: string | number, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(String(text));
  const value = m ? Number(m[1]) * durationUnits[(m[2] ?? 'ms').toLowerCase()]! : NaN;
  if (!Number.isFinite(value) || value > 2 ** 31 - 1)
    throw new CorralError('INVALID_ARGUMENT', `${what} must be a duration like 500ms, 2s, 5m, 1h or a number of milliseconds (at most 24 days), got '${text}'`, { [what]: String(text) });
  return Math.round(value);
}

/** A whole number of bytes with an optional unit (k, m, g, t: powers of 1024): `64m`, `1g`, `512k`, `1048576`. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (!m) throw new CorralError('INVALID_ARGUMENT', `${what} must be a size like 1048576, 512k, 10M or 2G, got '${text}'`, { [what]: text });
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const n = Number(m[1]) * mult;
  if (!Number.isSafeInteger(n)) throw new CorralError('INVALID_ARGUMENT', `${what} is too large: ${text}`, { [what]: text });
  return n;
}

// Query parameters, read strictly: unknown names refused, each given at most once, booleans only
// `true` or `false`. Every route reads its query through these, so the errors read the same.
import type { Context } from 'hono';
import { CorralError } from '../protocol/errors.ts';
import type { ApiEnv } from './api-types.ts';

function invalid(message: string, details: Record<string, unknown> = {}): CorralError {
  return new CorralError('INVALID_ARGUMENT', message, details);
}

/** Refuses any query parameter not in `allowed`. */
export function onlyQuery(c: Context<ApiEnv>, allowed: string[]): void {
  for (const key of Object.keys(c.req.queries()))
    if (!allowed.includes(key)) throw invalid(`unknown query parameter '${key.slice(0, 40)}'${allowed.length ? `: use ${allowed.join(', ')}` : ''}`, { parameter: key.slice(0, 40) });
}

/** A query parameter given at most once. */
export function oneQuery(c: Context<ApiEnv>, name: string): string | undefined {
  const values = c.req.queries(name) ?? [];
  if (values.length > 1) throw invalid(`give ${name} at most once`, { parameter: name });
  return values[0];
}

/** `true` or `false`; undefined when absent. */
export function boolQuery(c: Context<ApiEnv>, name: string): boolean | undefined {
  const v = oneQuery(c, name);
  if (v === undefined) return undefined;
  if (v !== 'true' && v !== 'false') throw invalid(`${name} must be true or false, got '${v.slice(0, 40)}'`, { parameter: name });
  return v === 'true';
}

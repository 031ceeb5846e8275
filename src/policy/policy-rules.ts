// Matching one rule against one classified part, and ordering actions and limits by strictness.
import { globToRegExp, pathMatches } from './path-globs.ts';
import type { CommandPart, PolicyAction, PolicyLimits, PolicyRule, RuleMatch } from './policy-types.ts';

const rank: Record<PolicyAction, number> = { allow: 0, allow_with_checkpoint: 1, require_approval: 2, deny: 3 };

export function stricter(a: PolicyAction, b: PolicyAction): boolean {
  return rank[a] > rank[b];
}

const anyGlob = (globs: string[], value: string | undefined): boolean =>
  value !== undefined && globs.some((g) => globToRegExp(g).test(value));

export function ruleMatches(match: RuleMatch, part: CommandPart): boolean {
  if (match.program && !anyGlob(match.program, part.program)) return false;
  if (match.subcommand && !anyGlob(match.subcommand, part.subcommand)) return false;
  if (match.flags && !match.flags.some((f) => part.flags.includes(f))) return false;
  if (match.args && !part.argv.slice(1).some((a) => match.args!.some((g) => globToRegExp(g).test(a)))) return false;
  if (match.paths && ![...part.paths, ...part.redirects].some((p) => match.paths!.some((g) => pathMatches(g, p)))) return false;
  if (match.writes && ![...part.paths, ...part.redirects].some((p) => p.write && match.writes!.some((g) => pathMatches(g, p)))) return false;
  if (match.redirects && !part.redirects.some((p) => match.redirects!.some((g) => pathMatches(g, p)))) return false;
  if (match.network !== undefined && part.categories.includes('networked') !== match.network) return false;
  if (match.category && !match.category.some((c) => part.categories.includes(c))) return false;
  if (match.mark && !match.mark.some((m) => part.marks.includes(m))) return false;
  return true;
}

export function firstMatch(rules: PolicyRule[], part: CommandPart): PolicyRule | undefined {
  return rules.find((r) => ruleMatches(r.match, part));
}

/** Combines limits: the smallest value of each field wins. */
export function strictestLimits(...all: (PolicyLimits | undefined)[]): PolicyLimits | undefined {
  const out: PolicyLimits = {};
  for (const l of all) {
    if (!l) continue;
    for (const key of ['timeoutMs', 'memoryBytes', 'pids'] as const) {
      const value = l[key];
      if (value !== undefined && (out[key] === undefined || value < out[key])) out[key] = value;
    }
  }
  return Object.keys(out).length ? out : undefined;
}

// Policy files (YAML or JSON): validated with zod, compiled on top of the preset they extend.
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CorralError } from '../protocol/errors.ts';
import { presetDef, presetNames, type PolicyDef } from './policy-presets.ts';
import { commandCategories, policyActions, riskMarks, type CommandCategory, type PolicyLimits, type PolicyRule, type RiskMark } from './policy-types.ts';

const MAX_FILE = 1 << 20;

const list = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .describe('a string or a non-empty list of strings');

const enumList = <T extends string>(values: readonly T[]) =>
  z.union([z.enum(values as [T, ...T[]]), z.array(z.enum(values as [T, ...T[]])).min(1)]).transform((v): T[] => (Array.isArray(v) ? v : [v]));

const durationMs = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+(\.\d+)?\s*(ms|s|m|h)$/, 'expected a duration such as "500ms", "30s", "5m" or "1h"').transform((s) => {
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(s)!;
    return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']);
  }),
]);

const bytes = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+(\.\d+)?\s*([KMGT]i?B?|B)?$/i, 'expected a size such as "512M", "1G" or a number of bytes').transform((s) => {
    const m = /^(\d+(?:\.\d+)?)\s*([KMGT])?/i.exec(s)!;
    const unit = (m[2] ?? '').toUpperCase();
    return Math.round(Number(m[1]) * 1024 ** (unit ? 'KMGT'.indexOf(unit) + 1 : 0));
  }),
]);

const limitsSchema = z
  .strictObject({
    timeout: durationMs.optional().describe('wall-clock limit: milliseconds, or "30s", "5m"'),
    timeoutMs: z.number().int().positive().optional().describe('wall-clock limit in milliseconds'),
    memory: bytes.optional().describe('memory limit: bytes, or "512M", "1G"'),
    memoryBytes: z.number().int().positive().optional().describe('memory limit in bytes'),
    pids: z.number().int().positive().optional().describe('most processes at once'),
  })
  .transform((l): PolicyLimits => {
    const out: PolicyLimits = {};
    const timeoutMs = l.timeoutMs ?? l.timeout;
    const memoryBytes = l.memoryBytes ?? l.memory;
    if (timeoutMs !== undefined) out.timeoutMs = timeoutMs;
    if (memoryBytes !== undefined) out.memoryBytes = memoryBytes;
    if (l.pids !== undefined) out.pids = l.pids;
    return out;
  });

const matchSchema = z.strictObject({
  program: list.optional().describe('program basenames (globs): "rm", "python*"'),
  subcommand: list.optional().describe('first non-option argument (after git/npm global options): "install", "reset"'),
  flags: list.optional().describe('any of these options: "-f", "--hard" (short clusters like -rf are split)'),
  args: list.optional().describe('any argument matches one of these globs'),
  paths: list.optional().describe('any path named (arguments or redirections) matches: "/etc/**", "~/.ssh/**", ".git/**" (workspace-relative)'),
  writes: list.optional().describe('any path the command writes matches'),
  redirects: list.optional().describe('any redirection target matches'),
  network: z.boolean().optional().describe('the command uses the network (true) or does not (false)'),
  category: enumList(commandCategories).optional().describe('any of these categories'),
  mark: enumList(riskMarks).optional().describe('any of these risk shapes'),
});

const ruleSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/, 'expected letters, digits, "_", ".", ":" or "-"').optional(),
  match: matchSchema.default({}),
  action: z.enum(policyActions as ['allow', ...PolicyRule['action'][]]),
  reason: z.string().min(1).max(2000).optional(),
  limits: limitsSchema.optional(),
});

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const policyFileSchema = z.strictObject({
  name: z.string().min(1).max(100).optional(),
  description: z.string().max(2000).optional(),
  extends: z.enum(presetNames as [string, ...string[]]).optional().describe('the preset this file builds on'),
  default: z.enum(policyActions as ['allow', ...PolicyRule['action'][]]).optional().describe('action when no rule matches (default: the preset\'s, or require_approval)'),
  rules: z.array(ruleSchema).max(2000).default([]),
  env: z.strictObject({ allow: z.array(z.string().regex(envName, 'expected an environment variable name')).default([]) }).optional(),
  network: z.boolean().optional(),
  readonly: z.boolean().optional(),
  limits: limitsSchema.optional(),
});

export type PolicyFile = z.infer<typeof policyFileSchema>;

function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out ? `.${String(key)}` : String(key);
  return out || '(top level)';
}

/** Reads, validates and compiles a policy file. Errors are POLICY_INVALID naming the file, the field and what is expected. */
export function readPolicyFile(spec: string): PolicyDef {
  const file = resolve(spec);
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new CorralError('POLICY_INVALID', `policy file ${file} is not a regular file`, { file });
    if (st.size > MAX_FILE) throw new CorralError('POLICY_INVALID', `policy file ${file} is larger than 1 MiB`, { file });
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof CorralError) throw e;
    throw new CorralError('POLICY_INVALID', `cannot read policy file ${file} (${(e as Error).message}): give a preset name (${presetNames.join(', ')}) or a path to a readable .yaml/.yml/.json file`, { file }, e);
  }
  let data: unknown;
  try {
    data = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new CorralError('POLICY_INVALID', `policy file ${file} is not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${(e as Error).message}`, { file }, e);
  }
  const parsed = policyFileSchema.safeParse(data ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: fieldPath(i.path), message: i.message }));
    const first = issues[0]!;
    throw new CorralError('POLICY_INVALID', `policy file ${file}: ${first.path}: ${first.message}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`, { file, issues });
  }
  return compileFile(parsed.data, file);
}

export function compileFile(f: PolicyFile, file: string): PolicyDef {
  const base: PolicyDef = f.extends
    ? presetDef(f.extends)
    : { name: '', description: '', floor: [], rules: [], fallback: { action: 'require_approval', reason: 'no rule in the policy file covers this command. Ask a person to approve it.' }, envAllow: [] };
  const rules: PolicyRule[] = f.rules.map((r, i) => {
    const out: PolicyRule = {
      id: r.id ?? `file:rules[${i}]`,
      match: { ...r.match } as PolicyRule['match'] & { category?: CommandCategory[]; mark?: RiskMark[] },
      action: r.action,
      reason: r.reason ?? `${r.action === 'allow' ? 'allowed' : r.action === 'deny' ? 'denied' : r.action === 'require_approval' ? 'needs approval' : 'allowed after a checkpoint'} by rule ${r.id ?? `rules[${i}]`} of ${file}.`,
    };
    if (r.limits && Object.keys(r.limits).length) out.limits = r.limits;
    return out;
  });
  const def: PolicyDef = {
    name: f.name ?? file,
    description: f.description ?? (f.extends ? `${file} (extends ${f.extends})` : file),
    floor: [...base.floor],
    rules: [...rules, ...base.rules],
    fallback: f.default ? { action: f.default, reason: `the default action of ${file}.` } : base.fallback,
    envAllow: [...base.envAllow, ...(f.env?.allow ?? [])],
  };
  const network = f.network ?? base.network;
  const readonly = f.readonly ?? base.readonly;
  if (network !== undefined) def.network = network;
  if (readonly !== undefined) def.readonly = readonly;
  const limits = f.limits ?? base.limits;
  if (limits && Object.keys(limits).length) def.limits = limits;
  return def;
}

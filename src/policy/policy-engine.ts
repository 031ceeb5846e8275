// The policy engine: load a preset or file once (async, it loads the bash parser), then evaluate
// requests synchronously. Every part of a command is decided on its own; the command gets the strictest.
import { CorralError } from '../protocol/errors.ts';
import { classifyArgv, classifyScript } from './command-classifier.ts';
import { isDangerousEnv, isValidEnvName } from './env-rules.ts';
import { isPresetName, presetDef, presetNames } from './policy-presets.ts';
import { firstMatch, ruleMatches, stricter, strictestLimits } from './policy-rules.ts';
import type { CommandAnalysis, CommandCategory, CommandPart, Decision, Policy, PolicyAction, PolicyLimits, PolicyRequest } from './policy-types.ts';
import { loadShellParser, type ShellParser } from './shell-parser.ts';

export { listPresets } from './policy-presets.ts';
export { loadShellParser } from './shell-parser.ts';

/** A preset name (workstation, strict, read-only...) or a path to a .yaml/.yml/.json policy file. */
export async function loadPolicy(spec: string): Promise<Policy> {
  const parser = await loadShellParser();
  if (isPresetName(spec)) return { ...presetDef(spec), parser };
  if (/\.(ya?ml|json)$/i.test(spec)) {
    // zod and yaml cost ~30 ms to load: only policy files need them, presets do not.
    const { readPolicyFile } = await import('./policy-file.ts');
    const def = readPolicyFile(spec);
    const policy: Policy = { ...def, parser };
    if (def.network === false)
      policy.floor = [...def.floor, { id: 'policy.network-off', match: { category: ['networked', 'package_install'] }, action: 'deny', reason: 'the network is off under this policy. Work with files already in the workspace.' }];
    return policy;
  }
  throw new CorralError('POLICY_INVALID', `unknown policy "${spec}": use one of ${presetNames.join(', ')}, or a path to a .yaml/.yml/.json policy file`, { policy: spec, presets: presetNames });
}

/** Parses and classifies the command of a request without deciding anything. */
export function analyzeCommand(request: Pick<PolicyRequest, 'argv' | 'shell' | 'cwd'>, parser: ShellParser): CommandAnalysis {
  const hasArgv = request.argv !== undefined;
  const hasShell = request.shell !== undefined;
  if (hasArgv === hasShell) throw new CorralError('INVALID_ARGUMENT', 'give exactly one of argv or shell', {});
  const ctx = { cwd: request.cwd || '/', parser, depth: 0 };
  let parts: CommandPart[];
  let parseError = false;
  if (hasArgv) {
    if (request.argv!.length === 0) throw new CorralError('INVALID_ARGUMENT', 'argv is empty: give the program and its arguments', {});
    parts = classifyArgv(request.argv!, ctx);
  } else {
    const result = classifyScript(request.shell!, ctx);
    parts = result.parts;
    parseError = result.parseError;
  }
  return { parts, categories: union(parts.map((p) => p.categories)), parseError };
}

interface PartDecision {
  action: PolicyAction;
  rule: string;
  reason: string;
  limits?: PolicyLimits;
  part?: CommandPart;
}

/** Decides a request. Synchronous: the parser is loaded by loadPolicy. */
export function evaluate(policy: Policy, request: PolicyRequest): Decision {
  const analysis = analyzeCommand(request, policy.parser);
  const decisions: PartDecision[] = [...envDecisions(policy, request.env ?? {}, analysis.parts)];
  for (const part of analysis.parts) decisions.push(decidePart(policy, part));
  const networkAsked = request.network === true;
  if (networkAsked) {
    if (policy.network === false) decisions.push({ action: 'deny', rule: 'policy.network-off', reason: `network access was requested, but the ${policy.name} policy has no network. Run without network, or use a policy that allows it.` });
    else {
      const part: CommandPart = { argv: [], program: '', wrappers: [], categories: ['networked'], flags: [], paths: [], redirects: [], marks: [], env: [], source: '(network access requested)', notes: [] };
      decisions.push(decidePart(policy, part));
    }
  }
  let decided = decisions[0] ?? { action: 'allow' as PolicyAction, rule: 'policy.empty', reason: 'the command is empty.' };
  for (const d of decisions) if (stricter(d.action, decided.action)) decided = d;

  const categories = union([...analysis.parts.map((p) => p.categories), networkAsked ? ['networked' as CommandCategory] : []]);
  const readonly = policy.readonly === true || request.readonly === true;
  const network = policy.network === false ? false : networkAsked || categories.includes('networked') || categories.includes('package_install');
  let action = decided.action;
  let reason = decided.reason;
  if (action === 'allow_with_checkpoint' && readonly) {
    action = 'allow';
    reason += ' The workspace is read-only for this run, so no checkpoint is needed.';
  }
  const decision: Decision = { action, categories, reason, rule: decided.rule, constraints: { readonly, network } };
  const limits = strictestLimits(policy.limits, ...decisions.map((d) => d.limits));
  if (limits) decision.limits = limits;
  return decision;
}

function decidePart(policy: Policy, part: CommandPart): PartDecision {
  const label = part.source.length > 80 ? `${part.source.slice(0, 77)}...` : part.source;
  const prefix = part.program || part.source ? `\`${label}\`: ` : '';
  const notes = part.notes.length && part.categories.includes('unknown') ? ` (${part.notes.join('; ')})` : '';
  let decided: PartDecision | undefined;
  for (const r of policy.floor) {
    if (!ruleMatches(r.match, part)) continue;
    if (!decided || stricter(r.action, decided.action)) decided = { action: r.action, rule: r.id, reason: prefix + r.reason + notes, ...(r.limits ? { limits: r.limits } : {}), part };
  }
  const r = firstMatch(policy.rules, part);
  const chosen: PartDecision = r
    ? { action: r.action, rule: r.id, reason: prefix + r.reason + notes, ...(r.limits ? { limits: r.limits } : {}), part }
    : { action: policy.fallback.action, rule: `${policy.name}.default`, reason: prefix + policy.fallback.reason + notes, part };
  if (!decided || stricter(chosen.action, decided.action)) return chosen;
  return decided;
}

function envDecisions(policy: Policy, env: Record<string, string>, parts: CommandPart[]): PartDecision[] {
  const out: PartDecision[] = [];
  const allowed = (name: string): boolean => policy.envAllow.includes(name);
  for (const [name, value] of Object.entries(env)) {
    if (!isValidEnvName(name) || typeof value !== 'string' || value.includes('\0'))
      out.push({ action: 'deny', rule: 'env.invalid', reason: `environment variable ${JSON.stringify(name)} has an invalid name or a NUL byte in its value. Use names of letters, digits and _ only.` });
    else if (isDangerousEnv(name) && !allowed(name))
      out.push({ action: 'deny', rule: 'env.dangerous', reason: `environment variable ${name} can change what every program loads or runs, so it is refused. Remove it, or allow it by name in a policy file (env.allow: [${name}]).` });
  }
  for (const part of parts)
    for (const name of part.env)
      if (isDangerousEnv(name) && !allowed(name))
        out.push({ action: 'deny', rule: 'env.dangerous', reason: `\`${part.source}\` sets ${name}, which can change what programs load or run, so it is refused. Remove it, or allow it by name in a policy file (env.allow: [${name}]).`, part });
  return out;
}

function union(lists: CommandCategory[][]): CommandCategory[] {
  return [...new Set(lists.flat())].sort();
}

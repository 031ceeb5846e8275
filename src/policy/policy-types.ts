// Shared types of the policy engine. The exec pipeline imports the request/decision names from here.
import type { ShellParser } from './shell-parser.ts';

export type PolicyAction = 'allow' | 'deny' | 'require_approval' | 'allow_with_checkpoint';

export type CommandCategory =
  | 'read_only'
  | 'mutating'
  | 'destructive'
  | 'networked'
  | 'package_install'
  | 'privilege_escalation'
  | 'host_escape_risk'
  | 'interactive'
  | 'unknown';

export const commandCategories: readonly CommandCategory[] = [
  'read_only', 'mutating', 'destructive', 'networked', 'package_install',
  'privilege_escalation', 'host_escape_risk', 'interactive', 'unknown',
];

export const policyActions: readonly PolicyAction[] = ['allow', 'allow_with_checkpoint', 'require_approval', 'deny'];

export interface PolicyLimits { timeoutMs?: number; memoryBytes?: number; pids?: number }

export interface Decision {
  action: PolicyAction;
  /** Union over all parts, sorted, unique. */
  categories: CommandCategory[];
  /** For a model and a person: why, and what to do instead when not allowed. */
  reason: string;
  /** Id of the rule that decided, e.g. 'workstation.network-approval' or 'file:rules[3]'. */
  rule: string;
  /** Limits the deciding/allowing rules attach (strictest wins). */
  limits?: PolicyLimits;
  /** What the sandbox must enforce. */
  constraints?: { readonly?: boolean; network?: boolean };
}

export interface PolicyRequest {
  /** Exactly one of argv / shell. */
  argv?: string[];
  /** Run as bash -c. */
  shell?: string;
  /** Vault path, already normalised, e.g. '/' or '/src'. */
  cwd: string;
  /** Env the caller asked for (not the defaults). */
  env: Record<string, string>;
  network?: boolean;
  readonly?: boolean;
}

/** Signals a rule can match with `mark` (risk shapes the classifier recognises). */
export type RiskMark =
  | 'fork-bomb'
  | 'root-wipe'
  | 'disk-wipe'
  | 'dd-zero'
  | 'world-writable'
  | 'pipe-to-shell'
  | 'host-path'
  | 'leaves-workspace';

export const riskMarks: readonly RiskMark[] = [
  'fork-bomb', 'root-wipe', 'disk-wipe', 'dd-zero', 'world-writable', 'pipe-to-shell', 'host-path', 'leaves-workspace',
];

/** A path a command names, resolved against the request's cwd. */
export interface PathRef {
  /** As written (after quote removal; $HOME shown as ~). */
  text: string;
  /** 'workspace': inside /workspace (path is relative to its root, '' for the root); 'host': an absolute path outside it; 'home': ~ or ~user; 'dynamic': cannot be known. */
  kind: 'workspace' | 'host' | 'home' | 'dynamic';
  /** Normalised: workspace-relative ('src/a.ts'), absolute ('/etc/hosts') or '~/.ssh/id_rsa'. */
  path: string;
  write: boolean;
}

/** One simple command after wrappers are looked through, with what it was classified as and why. */
export interface CommandPart {
  /** The effective command's words (quotes removed; dynamic words keep their source text). */
  argv: string[];
  /** Basename of the effective program; '' when there is none (a bare redirection). */
  program: string;
  /** First non-option argument (after the global options of git, npm...). */
  subcommand?: string;
  /** Wrappers looked through, outermost first (sudo, env, timeout, xargs, bash -c...). */
  wrappers: string[];
  categories: CommandCategory[];
  /** Options as written, plus short clusters split: `-rf` gives '-rf', '-r', '-f'; `--out=x` gives '--out'. */
  flags: string[];
  paths: PathRef[];
  /** Redirection targets (files read or written), normalised like paths. */
  redirects: PathRef[];
  marks: RiskMark[];
  /** Environment names the command sets (prefix assignments, env NAME=..., export). */
  env: string[];
  /** Source text of the simple command, for messages. */
  source: string;
  /** Why the classifier chose what it did, when it is not obvious. */
  notes: string[];
}

export interface CommandAnalysis {
  parts: CommandPart[];
  categories: CommandCategory[];
  /** The script did not parse cleanly (the parts still hold what could be read; one part is 'unknown'). */
  parseError: boolean;
}

/** What a rule can match; every key given must match (a list matches when any element does). */
export interface RuleMatch {
  program?: string[];
  subcommand?: string[];
  flags?: string[];
  args?: string[];
  paths?: string[];
  writes?: string[];
  redirects?: string[];
  network?: boolean;
  category?: CommandCategory[];
  mark?: RiskMark[];
}

export interface PolicyRule {
  id: string;
  match: RuleMatch;
  action: PolicyAction;
  reason: string;
  limits?: PolicyLimits;
}

/** A compiled policy: build with loadPolicy(); evaluate() uses it synchronously. */
export interface Policy {
  name: string;
  description: string;
  /** Rules that always apply, strictest of all that match; a file extending a preset cannot loosen them. */
  floor: PolicyRule[];
  /** Rules tried in order; the first that matches a part decides it. File rules come before the preset's. */
  rules: PolicyRule[];
  /** Decision for a part no rule matches. */
  fallback: { action: PolicyAction; reason: string };
  /** false: the sandbox has no network and networked commands are denied; true/undefined: rules decide. */
  network?: boolean;
  readonly?: boolean;
  /** Dangerous environment names allowed by name. */
  envAllow: string[];
  limits?: PolicyLimits;
  parser: ShellParser;
}

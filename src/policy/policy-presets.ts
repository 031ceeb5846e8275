// The built-in policies. Floors hold what a file extending a preset cannot loosen; rules are tried in order.
import { CorralError } from '../protocol/errors.ts';
import { sensitiveHostGlobs } from './command-classifier.ts';
import type { Policy, PolicyAction, PolicyRule, RuleMatch } from './policy-types.ts';

export type PresetName = 'permissive' | 'workstation' | 'strict' | 'paranoid' | 'read-only' | 'workspace-write' | 'full-access';

/** A policy without its parser: what presets and files compile to. */
export type PolicyDef = Omit<Policy, 'parser'>;

const rule = (id: string, match: RuleMatch, action: PolicyAction, reason: string): PolicyRule => ({ id, match, action, reason });

/** Paths no preset but full-access lets a command name: the user's home and host system locations. */
export const hostPathGlobs = ['~*/**', ...sensitiveHostGlobs];

function catastrophic(p: string): PolicyRule[] {
  return [
    rule(`${p}.fork-bomb`, { mark: ['fork-bomb'] }, 'deny', 'this is a fork bomb: it would exhaust the process table. Do not run it.'),
    rule(`${p}.root-wipe`, { mark: ['root-wipe'] }, 'deny', 'this deletes the whole filesystem, the home or the workspace root. Name the files inside the workspace to delete instead.'),
    rule(`${p}.disk-wipe`, { mark: ['disk-wipe'] }, 'deny', 'this writes to a raw disk or memory device or formats a filesystem. Work with files in the workspace instead.'),
  ];
}

function hostPaths(p: string): PolicyRule[] {
  return [
    rule(`${p}.host-paths`, { paths: hostPathGlobs }, 'deny', 'this names a host path outside the workspace (a home directory, /etc, /home, /var, /root...). Use paths inside the workspace; the sandbox does not expose host files.'),
    rule(`${p}.leaves-workspace`, { mark: ['leaves-workspace'] }, 'deny', 'a relative path climbs out of the workspace with "..". Use paths inside the workspace.'),
  ];
}

function blocklist(p: string): PolicyRule[] {
  return [
    rule(`${p}.pipe-to-shell`, { mark: ['pipe-to-shell'] }, 'deny', 'this pipes downloaded or generated code into a shell or interpreter. Save the script to a file, review it, then run the file.'),
    rule(`${p}.dd-zero`, { mark: ['dd-zero'] }, 'deny', 'dd from /dev/zero or /dev/urandom is blocked (it fills disks or overwrites files). Use truncate or head -c to make a file of a given size.'),
    rule(`${p}.chmod-777`, { mark: ['world-writable'] }, 'deny', 'making files world-writable (chmod 777, o+w) is blocked. Use 755 for directories and 644 or 755 for files.'),
    rule(`${p}.privilege`, { category: ['privilege_escalation'] }, 'deny', 'sudo, su and other privilege changes are blocked. Run the command without them; the sandbox gives you what the workspace needs.'),
  ];
}

/** The workstation rule list, reused by strict under its own prefix. */
function workstationRules(p: string): PolicyRule[] {
  return [
    rule(`${p}.privilege`, { category: ['privilege_escalation'] }, 'require_approval', 'this runs with raised privileges (sudo, su, setuid). Run it without them, or ask a person to approve it.'),
    rule(`${p}.host-escape`, { category: ['host_escape_risk'] }, 'deny', 'this can reach beyond the sandbox (containers, mounts, namespaces, system services, kernel settings). It is not allowed here.'),
    rule(`${p}.package-approval`, { category: ['package_install'] }, 'require_approval', 'this installs packages from the network. A person must approve it; or use the dependencies already in the workspace.'),
    rule(`${p}.network-approval`, { category: ['networked'] }, 'require_approval', 'this uses the network. A person must approve it; or work with files already in the workspace.'),
    rule(`${p}.unknown`, { category: ['unknown'] }, 'require_approval', 'this cannot be analysed (eval, source, a computed program name, code piped into a shell, or a parse error). Write the commands out literally, or ask a person to approve it.'),
    rule(`${p}.destructive-checkpoint`, { category: ['destructive'] }, 'allow_with_checkpoint', 'this deletes or overwrites files: a checkpoint is taken first so it can be undone.'),
    rule(`${p}.mutating-checkpoint`, { category: ['mutating'] }, 'allow_with_checkpoint', 'this can change files: a checkpoint is taken first so it can be undone.'),
    rule(`${p}.interactive-checkpoint`, { category: ['interactive'] }, 'allow_with_checkpoint', 'this is an interactive program (it may wait for input; use a TTY): a checkpoint is taken first.'),
    rule(`${p}.read-only`, { category: ['read_only'] }, 'allow', 'this only reads files.'),
  ];
}

const paranoidPrograms = ['ls', 'cat', 'grep', 'egrep', 'fgrep', 'rg', 'find', 'tree', 'pwd', 'echo', 'printf', 'head', 'tail', 'wc', 'diff', 'cmp',
  'stat', 'file', 'du', 'sort', 'uniq', 'cut', 'tr', 'basename', 'dirname', 'realpath', 'true', 'false', 'test', '[', 'which', 'date', 'sha256sum', 'md5sum', 'jq'];

const defs: Record<PresetName, PolicyDef> = {
  permissive: {
    name: 'permissive',
    description: 'Allows everything; privilege escalation and host-escape risks need approval; fork bombs and disk or root wipes are denied.',
    floor: catastrophic('permissive'),
    rules: [
      rule('permissive.privilege', { category: ['privilege_escalation'] }, 'require_approval', 'this runs with raised privileges. Ask a person to approve it, or run it without sudo/su.'),
      rule('permissive.host-escape', { category: ['host_escape_risk'] }, 'require_approval', 'this can reach beyond the sandbox or names a host path. Ask a person to approve it.'),
    ],
    fallback: { action: 'allow', reason: 'allowed by the permissive policy.' },
    envAllow: [],
  },
  workstation: {
    name: 'workstation',
    description: 'The default: reads are allowed, changes get a checkpoint first, network and package installs need approval, host paths outside the workspace are denied.',
    floor: [...catastrophic('workstation'), ...hostPaths('workstation')],
    rules: workstationRules('workstation'),
    fallback: { action: 'require_approval', reason: 'no rule covers this command. Ask a person to approve it.' },
    envAllow: [],
  },
  strict: {
    name: 'strict',
    description: 'Workstation plus a blocklist: sudo/su, curl | bash, chmod 777, dd from /dev/zero are denied.',
    floor: [...catastrophic('strict'), ...hostPaths('strict'), ...blocklist('strict')],
    rules: workstationRules('strict'),
    fallback: { action: 'require_approval', reason: 'no rule covers this command. Ask a person to approve it.' },
    envAllow: [],
  },
  paranoid: {
    name: 'paranoid',
    description: 'Only an allowlist of read-only programs runs freely; everything else needs approval; network, privilege and host escapes are denied.',
    floor: [
      ...catastrophic('paranoid'), ...hostPaths('paranoid'), ...blocklist('paranoid'),
      rule('paranoid.network', { category: ['networked', 'package_install'] }, 'deny', 'the network is off under the paranoid policy. Work with files already in the workspace.'),
      rule('paranoid.host-escape', { category: ['host_escape_risk'] }, 'deny', 'this can reach beyond the sandbox. It is not allowed under the paranoid policy.'),
    ],
    rules: [
      rule('paranoid.git-read', { program: ['git'], subcommand: ['status', 'log', 'diff', 'show', 'branch', 'rev-parse', 'ls-files', 'blame'], category: ['read_only'] }, 'allow', 'this only reads the repository.'),
      rule('paranoid.allowlist', { program: paranoidPrograms, category: ['read_only'] }, 'allow', 'this program is on the paranoid allowlist of read-only tools.'),
    ],
    fallback: { action: 'require_approval', reason: 'only allowlisted read-only programs run without approval under the paranoid policy. Ask a person to approve it.' },
    network: false,
    envAllow: [],
  },
  'read-only': {
    name: 'read-only',
    description: 'Codex-style read-only sandbox: only read-only commands, the workspace is mounted read-only, no network.',
    floor: [...catastrophic('read-only'), ...hostPaths('read-only')],
    rules: [
      rule('read-only.no-network', { category: ['networked', 'package_install'] }, 'deny', 'the network is off in read-only mode. Work with files already in the workspace.'),
      rule('read-only.read', { category: ['read_only'] }, 'allow', 'this only reads files.'),
    ],
    fallback: { action: 'deny', reason: 'read-only mode allows only commands that read files. Switch to workspace-write to change files.' },
    network: false,
    readonly: true,
    envAllow: [],
  },
  'workspace-write': {
    name: 'workspace-write',
    description: 'Codex-style workspace-write sandbox: anything may change the workspace, no network, no host paths, no privilege or host escapes.',
    floor: [
      ...catastrophic('workspace-write'), ...hostPaths('workspace-write'),
      rule('workspace-write.privilege', { category: ['privilege_escalation'] }, 'deny', 'privilege changes are not available in workspace-write mode. Run the command without sudo/su.'),
      rule('workspace-write.host-escape', { category: ['host_escape_risk'] }, 'deny', 'this can reach beyond the sandbox. It is not allowed in workspace-write mode.'),
    ],
    rules: [
      rule('workspace-write.no-network', { category: ['networked', 'package_install'] }, 'deny', 'the network is off in workspace-write mode. Work with files already in the workspace, or use full-access.'),
    ],
    fallback: { action: 'allow', reason: 'workspace-write mode: the sandbox confines writes to the workspace.' },
    network: false,
    envAllow: [],
  },
  'full-access': {
    name: 'full-access',
    description: 'Codex-style full access: every command is allowed and the network is on (dangerous environment variables are still refused).',
    floor: [],
    rules: [],
    fallback: { action: 'allow', reason: 'allowed by the full-access policy.' },
    network: true,
    envAllow: [],
  },
};

export const presetNames = Object.keys(defs) as PresetName[];

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(defs, name);
}

export function presetDef(name: string): PolicyDef {
  if (!isPresetName(name))
    throw new CorralError('POLICY_INVALID', `unknown policy preset "${name}": use one of ${presetNames.join(', ')}, or a path to a .yaml/.yml/.json policy file`, { preset: name, presets: presetNames });
  return defs[name];
}

export function listPresets(): { name: string; description: string }[] {
  return presetNames.map((name) => ({ name, description: defs[name].description }));
}

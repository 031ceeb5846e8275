// What known programs do, by program and subcommand. Pure data and small functions of the argument list;
// wrappers (sudo, env, xargs, bash -c...) are looked through before this table is consulted.
import type { CommandCategory, RiskMark } from './policy-types.ts';

export interface Verdict {
  categories: CommandCategory[];
  marks?: RiskMark[];
  notes?: string[];
  /** Which arguments the command writes: all of its path arguments, only the last, or none. */
  writes?: 'args' | 'last' | 'none';
  /** Extra words that name files (for example dd's if=/of= or an interpreter's string literals). */
  extraPaths?: { text: string; write: boolean }[];
}

type Handler = (args: string[]) => Verdict;

const RO: CommandCategory[] = ['read_only'];
const MUT: CommandCategory[] = ['mutating'];
const NET: CommandCategory[] = ['networked'];

const v = (categories: CommandCategory[], extra: Omit<Verdict, 'categories'> = {}): Verdict => ({ categories, ...extra });

const readOnly = [
  'ls', 'll', 'la', 'dir', 'vdir', 'cat', 'bat', 'batcat', 'grep', 'egrep', 'fgrep', 'rg', 'ag', 'ack', 'tree', 'pwd', 'echo', 'printf',
  'head', 'tail', 'wc', 'cut', 'tr', 'diff', 'cmp', 'comm', 'join', 'paste', 'fold', 'fmt', 'nl', 'tac', 'rev', 'od', 'hexdump',
  'strings', 'file', 'stat', 'du', 'df', 'which', 'whereis', 'type', 'basename', 'dirname', 'realpath', 'readlink', 'date', 'printenv',
  'whoami', 'id', 'groups', 'uname', 'hostname', 'true', 'false', 'test', '[', ':', 'seq', 'sleep', 'md5sum', 'sha1sum', 'sha224sum',
  'sha256sum', 'sha384sum', 'sha512sum', 'b2sum', 'cksum', 'sum', 'base64', 'base32', 'basenc', 'jq', 'yq', 'column', 'expand',
  'unexpand', 'yes', 'locale', 'tput', 'nproc', 'arch', 'uptime', 'free', 'ps', 'pgrep', 'getconf', 'look', 'expr', 'bc', 'dc',
  'cal', 'factor', 'numfmt', 'shuf', 'cd', 'pushd', 'popd', 'dirs', 'set', 'shopt', 'unset', 'export', 'declare', 'local', 'readonly',
  'typeset', 'unalias', 'read', 'getopts', 'shift', 'return', 'exit', 'break', 'continue', 'umask', 'ulimit', 'hash', 'times', 'let',
  'wait', 'jobs', 'help', 'history', 'tty', 'env', 'ldd', 'lsblk', 'lscpu', 'lsof', 'fc-list', 'iconv', 'zcat', 'zgrep', 'bzcat',
  'xzcat', 'zstdcat', 'tsort', 'ptx', 'pr', 'logname', 'users', 'who', 'w', 'last', 'vmstat', 'sha1', 'md5',
];

const mutating = [
  'touch', 'mkdir', 'mv', 'chown', 'chgrp', 'tee', 'patch', 'zip', 'gzip', 'gunzip', 'bzip2', 'bunzip2', 'xz', 'unxz', 'zstd',
  'unzstd', '7z', 'split', 'csplit', 'make', 'gmake', 'cmake', 'ninja', 'meson', 'gcc', 'g++', 'cc', 'c++', 'clang', 'clang++', 'ld',
  'as', 'rustc', 'javac', 'java', 'tsc', 'esbuild', 'vite', 'webpack', 'jest', 'vitest', 'mocha', 'pytest', 'tox', 'rmdir', 'rename',
  'setfacl', 'chattr', 'kill', 'pkill', 'killall', 'mkfifo', 'ruff', 'black', 'prettier', 'eslint', 'gofmt', 'rustfmt', 'sqlite3',
  'convert', 'ffmpeg', 'pandoc', 'link', 'sync',
];

const destructive = ['rm', 'unlink', 'shred', 'wipe', 'srm', 'truncate'];

const networked = [
  'curl', 'wget', 'aria2c', 'http', 'https', 'xh', 'scp', 'sftp', 'nc', 'ncat', 'netcat', 'socat', 'ping', 'ping6', 'traceroute',
  'tracepath', 'dig', 'nslookup', 'host', 'whois', 'nmap', 'ssh-keyscan', 'ssh-copy-id', 'gh', 'hub', 'wscat', 'websocat', 'ftp',
  'telnet', 'mosh', 'lynx', 'w3m', 'links', 'rclone', 's3cmd', 'aws', 'gcloud', 'az',
];

const privilege = ['su', 'sudo', 'doas', 'pkexec', 'run0', 'sudoedit', 'setcap', 'capsh', 'passwd', 'chpasswd', 'useradd', 'usermod',
  'userdel', 'groupadd', 'groupdel', 'gpasswd', 'visudo', 'newgrp', 'sg', 'login', 'setpriv'];

const hostEscape = ['chroot', 'nsenter', 'unshare', 'mount', 'umount', 'losetup', 'insmod', 'rmmod', 'modprobe', 'sysctl', 'reboot',
  'shutdown', 'halt', 'poweroff', 'init', 'telinit', 'systemctl', 'service', 'crontab', 'at', 'batch', 'iptables', 'ip6tables', 'nft',
  'ifconfig', 'route', 'docker', 'podman', 'nerdctl', 'ctr', 'crictl', 'kubectl', 'virsh', 'lxc', 'incus', 'bwrap', 'firejail',
  'mknod', 'debugfs', 'kexec', 'swapon', 'swapoff', 'dmesg', 'journalctl'];

const interactive = ['vim', 'vi', 'nvim', 'nano', 'pico', 'joe', 'micro', 'ed', 'less', 'more', 'most', 'man', 'info', 'top', 'htop',
  'btop', 'atop', 'iotop', 'watch', 'tmux', 'screen', 'mc', 'ranger', 'nnn', 'fzf', 'vimdiff', 'tig', 'lazygit', 'gdb', 'lldb', 'irb',
  'pry', 'ipython', 'emacs'];

const diskDevice = /^\/dev\/(sd|hd|vd|xvd|nvme|mmcblk|disk|loop|md|dm-|mapper\/|mem$|kmem$|port$)/;

/** Programs named by a path outside these directories run code from the workspace, not the tool the name suggests. */
export const systemDirs = ['/bin', '/usr/bin', '/usr/local/bin', '/sbin', '/usr/sbin', '/usr/local/sbin'];

function nonOptions(args: string[]): string[] {
  const out: string[] = [];
  let ended = false;
  for (const a of args) {
    if (!ended && a === '--') ended = true;
    else if (ended || !a.startsWith('-') || a === '-') out.push(a);
  }
  return out;
}

const has = (args: string[], ...flags: string[]): boolean =>
  args.some((a) => flags.includes(a) || flags.some((f) => f.length === 2 && /^-[a-zA-Z]+$/.test(a) && !a.startsWith('--') && a.includes(f[1]!)));

function chmod(args: string[]): Verdict {
  const modes = nonOptions(args).slice(0, 1);
  const marks: RiskMark[] = [];
  const categories: CommandCategory[] = ['mutating'];
  for (const m of modes) {
    if (/^0?[0-7]?[0-7][0-7][2367]$/.test(m) || /(^|,)[ugo]*[ao][ugo]*[+=][rxXst]*w/.test(m)) marks.push('world-writable');
    if (/^0?[4-7][0-7]{3}$/.test(m) || /[+=][rwxX]*s/.test(m)) categories.push('privilege_escalation');
  }
  return v(categories, { marks });
}

function rm(args: string[]): Verdict {
  const marks: RiskMark[] = [];
  const recursive = has(args, '-r', '-R', '--recursive');
  const targets = nonOptions(args);
  if (has(args, '--no-preserve-root') || (recursive && targets.some((t) => /^(\/+\*?|~\/?\*?|\/workspace\/?|\.\.?\/?\*?)$/.test(t) && !/^\.\/?\*?$/.test(t))))
    marks.push('root-wipe');
  return v(['destructive'], { marks });
}

function dd(args: string[]): Verdict {
  const extraPaths: Verdict['extraPaths'] = [];
  const marks: RiskMark[] = [];
  const categories: CommandCategory[] = ['mutating'];
  for (const a of args) {
    const m = /^(if|of)=(.*)$/s.exec(a);
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    extraPaths.push({ text: value, write: key === 'of' });
    if (key === 'if' && /^\/dev\/(zero|u?random)$/.test(value)) marks.push('dd-zero');
    if (key === 'of') {
      categories.push('destructive');
      if (diskDevice.test(value)) {
        marks.push('disk-wipe');
        categories.push('host_escape_risk');
      }
    }
  }
  return v(categories, { marks, extraPaths, writes: 'none' });
}

function curl(args: string[]): Verdict {
  const writes = has(args, '-o', '-O', '--output', '--remote-name', '--remote-name-all', '-c', '--cookie-jar', '-D', '--dump-header');
  const extraPaths = args.filter((a) => a.startsWith('file://')).map((a) => ({ text: decodeURIComponent(a.slice('file://'.length)) || '/', write: false }));
  return v(writes ? ['networked', 'mutating'] : NET, { extraPaths, writes: writes ? 'args' : 'none' });
}

function wget(args: string[]): Verdict {
  const toStdout = args.some((a, i) => (a === '-O' && args[i + 1] === '-') || a === '-O-' || a === '--output-document=-' || /^-[a-zA-Z]*O-$/.test(a) || a === '--spider');
  return v(toStdout ? NET : ['networked', 'mutating'], { writes: 'none' });
}

function tar(args: string[]): Verdict {
  const first = args[0] ?? '';
  const list = has(args, '-t', '--list') || (/^[a-zA-Z]+$/.test(first) && first.includes('t'));
  return v(list ? RO : MUT);
}

// A sed command letter after an optional address (`1e id`, `/x/,$w out`).
const sedAddress = String.raw`(?:\d+|\$|\/(?:[^/\\]|\\.)*\/[IM]*)`;
const sedCommand = (letter: string): RegExp => new RegExp(String.raw`(^|[;\n{}])\s*(${sedAddress}(\s*,\s*${sedAddress})?)?\s*!?\s*${letter}(\s|;|$)`);

function sed(args: string[]): Verdict {
  const inPlace = args.some((a) => a === '-i' || a.startsWith('--in-place') || /^-[a-zA-Z]*i/.test(a) && !a.startsWith('--'));
  const script = args.find((a, i) => !a.startsWith('-') && (i === 0 || !['-e', '-f', '--expression', '--file'].includes(args[i - 1]!))) ?? '';
  const scripts = [script, ...args.filter((_a, i) => i > 0 && ['-e', '--expression'].includes(args[i - 1]!))].join(';');
  if (sedCommand('e').test(scripts) || /s(.).*?\1.*?\1[gpiImM0-9w]*e/.test(scripts)) return v(['unknown'], { notes: ['sed script runs shell commands (the e command)'] });
  const writesFile = sedCommand('w').test(scripts) || /s(.).*?\1.*?\1[gpiImM0-9e]*w/.test(scripts);
  return v(inPlace || writesFile ? MUT : RO, { writes: inPlace ? 'args' : 'none' });
}

function awk(args: string[]): Verdict {
  if (args.some((a) => a === '-f' || a.startsWith('--file'))) return v(MUT, { notes: ['awk program from a file is not analysed'], writes: 'none' });
  const program = args.find((a, i) => !a.startsWith('-') && !['-F', '-v', '--field-separator', '--assign'].includes(args[i - 1] ?? '')) ?? '';
  if (/system\s*\(|\|\s*getline|\|&|print[^;}]*\|/.test(program)) return v(['unknown'], { notes: ['awk program runs shell commands'] });
  return v(/printf?[^;}]*>/.test(program) ? MUT : RO, { writes: 'none' });
}

function find(args: string[]): Verdict {
  if (has(args, '-delete')) return v(['destructive']);
  if (args.some((a) => /^-(fprint|fprint0|fprintf|fls)$/.test(a))) return v(MUT);
  return v(RO);
}

function sortCmd(args: string[]): Verdict {
  return v(args.some((a) => a === '-o' || a.startsWith('--output') || /^-[a-zA-Z]*o/.test(a)) ? MUT : RO, { writes: 'none' });
}

// git: global options that take a value, subcommands by what they do.
const gitValueOptions = new Set(['-C', '-c', '--git-dir', '--work-tree', '--namespace', '--exec-path', '--config-env']);
const gitReadOnly = new Set(['status', 'log', 'diff', 'show', 'rev-parse', 'ls-files', 'ls-tree', 'blame', 'grep', 'describe', 'shortlog',
  'cat-file', 'merge-base', 'name-rev', 'rev-list', 'show-ref', 'for-each-ref', 'whatchanged', 'count-objects', 'fsck', 'check-ignore',
  'version', 'help', 'var', 'annotate', 'show-branch', 'cherry', 'range-diff', 'diff-tree', 'diff-files', 'diff-index', 'ls-remote']);
const gitNetworked = new Set(['clone', 'fetch', 'pull', 'push', 'ls-remote', 'send-email', 'request-pull']);
const gitDestructive = new Set(['clean', 'reset', 'restore', 'rm', 'filter-branch', 'filter-repo', 'prune']);
const gitDangerousConfig = /^(core\.(sshcommand|pager|editor|hookspath|fsmonitor|askpass|gitproxy|alternaterefscommand)|alias\.|filter\.|diff\..*\.(command|textconv)|credential\.|protocol\.|uploadpack\.|receivepack\.|sequence\.editor|gpg\.program|http\.proxy)/i;

export function gitSubcommand(args: string[]): { sub: string | undefined; rest: string[]; globals: string[] } {
  const globals: string[] = [];
  let i = 0;
  while (i < args.length && args[i]!.startsWith('-')) {
    const a = args[i]!;
    globals.push(a);
    if (gitValueOptions.has(a)) globals.push(args[++i] ?? '');
    i++;
  }
  return { sub: args[i], rest: args.slice(i + 1), globals };
}

function git(args: string[]): Verdict {
  const { sub, rest, globals } = gitSubcommand(args);
  const configs = globals.filter((_g, i) => globals[i - 1] === '-c').concat(globals.filter((g) => g.startsWith('--config-env')));
  if (configs.some((c) => gitDangerousConfig.test(c))) return v(['unknown'], { notes: ['git -c sets a configuration that runs commands'] });
  if (sub === undefined) return v(RO);
  const cats = new Set<CommandCategory>();
  if (sub === 'ls-remote') cats.add('networked');
  if (gitReadOnly.has(sub)) cats.add('read_only');
  else if (gitNetworked.has(sub)) {
    cats.add('networked');
    if (sub !== 'push') cats.add('mutating');
    if (sub === 'push' && has(rest, '-f', '--force', '--force-with-lease', '--delete', '-d', '--mirror')) cats.add('destructive');
  } else if (gitDestructive.has(sub)) cats.add('destructive');
  else if (sub === 'branch' || sub === 'tag') {
    if (has(rest, '-D', '-d', '--delete')) cats.add('destructive');
    else if (nonOptions(rest).length === 0 || has(rest, '-l', '--list', '-a', '-r', '-v', '--show-current', '--contains')) cats.add('read_only');
    else cats.add('mutating');
  } else if (sub === 'remote') {
    const op = nonOptions(rest)[0];
    if (op === undefined || op === 'show' || op === 'get-url') cats.add('read_only');
    else if (op === 'update') cats.add('networked').add('mutating');
    else cats.add('mutating');
  } else if (sub === 'config') {
    cats.add(has(rest, '--get', '--get-all', '--get-regexp', '--list', '-l', '--show-origin') || nonOptions(rest).length === 1 ? 'read_only' : 'mutating');
    if (rest.some((a) => gitDangerousConfig.test(a)) && !cats.has('read_only')) return v(['unknown'], { notes: ['git config sets a key that runs commands'] });
  } else if (sub === 'stash') {
    const op = nonOptions(rest)[0];
    if (op === 'list' || op === 'show') cats.add('read_only');
    else if (op === 'drop' || op === 'clear') cats.add('destructive');
    else cats.add('mutating');
  } else if (sub === 'reflog') {
    const op = nonOptions(rest)[0];
    cats.add(op === 'expire' || op === 'delete' ? 'destructive' : 'read_only');
  } else if (sub === 'checkout' || sub === 'switch') {
    cats.add(has(rest, '-f', '--force', '--discard-changes') || rest.includes('--') || rest.includes('.') ? 'destructive' : 'mutating');
  } else if (sub === 'submodule') {
    cats.add('mutating');
    const op = nonOptions(rest)[0];
    if (op === 'update' || op === 'add' || op === 'sync') cats.add('networked');
  } else if (sub === 'gc') cats.add(rest.some((a) => a.startsWith('--prune')) ? 'destructive' : 'mutating');
  else cats.add('mutating');
  if (sub === 'commit' && !rest.some((a) => /^(-m|--message|-F|--file|--no-edit|-C|--reuse-message|--fixup|--squash|--allow-empty-message)/.test(a) || /^-[a-zA-Z]*m/.test(a) && !a.startsWith('--')))
    cats.add('interactive');
  if ((sub === 'rebase' && has(rest, '-i', '--interactive')) || (sub === 'add' && has(rest, '-p', '-i', '--patch', '--interactive'))) cats.add('interactive');
  return v([...cats]);
}

// Package managers.
const pkg = (cats: CommandCategory[]): Verdict => v(cats, { writes: 'none' });
const INSTALL: CommandCategory[] = ['package_install', 'networked', 'mutating'];

function npmLike(tool: string, args: string[]): Verdict {
  const sub = nonOptions(args)[0];
  if (has(args, '-v', '--version', '-h', '--help') && sub === undefined) return pkg(RO);
  if (sub === undefined) return pkg(tool === 'yarn' ? INSTALL : tool === 'bun' ? RO : RO);
  const install = ['install', 'i', 'isntall', 'in', 'ci', 'add', 'update', 'up', 'upgrade', 'dedupe', 'dlx', 'x', 'exec', 'create', 'init', 'link', 'global'];
  const readonly = ['ls', 'list', 'll', 'la', 'view', 'info', 'show', 'v', 'outdated', 'audit', 'search', 'help', 'root', 'bin', 'prefix', 'whoami', 'explain', 'why', 'config', 'get', 'doctor', 'licenses', 'query', 'fund', 'version', '--version'];
  const remove = ['uninstall', 'remove', 'rm', 'un', 'r', 'unlink', 'prune', 'cache'];
  const publish = ['publish', 'unpublish', 'deprecate', 'login', 'logout', 'adduser', 'owner', 'access', 'token', 'dist-tag', 'team'];
  if (sub === 'init' && nonOptions(args).length === 1) return pkg(MUT);
  if (sub === 'exec' && tool !== 'npm') return pkg(MUT);
  if (install.includes(sub)) return pkg(INSTALL);
  if (readonly.includes(sub)) return pkg(['view', 'info', 'show', 'v', 'outdated', 'audit', 'search', 'whoami'].includes(sub) ? ['read_only', 'networked'] : RO);
  if (remove.includes(sub)) return pkg(MUT);
  if (publish.includes(sub)) return pkg(['networked', 'mutating']);
  return pkg(MUT);
}

function cargo(args: string[]): Verdict {
  const sub = nonOptions(args)[0];
  if (sub === undefined) return pkg(RO);
  if (sub === 'install' || sub === 'add' || sub === 'binstall') return pkg(INSTALL);
  if (['fetch', 'update', 'search', 'publish', 'login', 'yank', 'owner'].includes(sub)) return pkg(['networked', 'mutating']);
  if (['tree', 'metadata', 'locate-project', 'version', 'help', 'pkgid', 'verify-project', 'read-manifest'].includes(sub)) return pkg(RO);
  return pkg(MUT);
}

function pip(args: string[]): Verdict {
  const sub = nonOptions(args)[0];
  if (sub === 'install' || sub === 'download' || sub === 'wheel') return pkg(INSTALL);
  if (sub === 'uninstall') return pkg(MUT);
  return pkg(RO);
}

function subInstall(installs: string[], readonly: string[]): Handler {
  return (args) => {
    const sub = nonOptions(args)[0];
    if (sub === undefined) return pkg(RO);
    if (installs.includes(sub) || args.some((a) => /^-S[a-z]*$/.test(a) && installs.includes('-S'))) return pkg(INSTALL);
    if (readonly.includes(sub)) return pkg(RO);
    return pkg(MUT);
  };
}

function goCmd(args: string[]): Verdict {
  const sub = nonOptions(args)[0];
  if (sub === 'install' || sub === 'get') return pkg(INSTALL);
  if (sub === 'mod') return pkg(['networked', 'mutating']);
  if (['version', 'env', 'list', 'doc', 'help', 'vet'].includes(sub ?? 'help')) return pkg(RO);
  return pkg(MUT);
}

function uv(args: string[]): Verdict {
  const [sub, op] = nonOptions(args);
  if (sub === 'add' || sub === 'sync' || sub === 'lock' || (sub === 'pip' && (op === 'install' || op === 'sync')) || (sub === 'tool' && op === 'install') || sub === 'tool' && op === 'run') return pkg(INSTALL);
  if (sub === 'uvx') return pkg(INSTALL);
  if (sub === 'run' || sub === 'remove' || sub === 'venv' || sub === 'init') return pkg(MUT);
  return pkg(RO);
}

function rsync(args: string[]): Verdict {
  return v(nonOptions(args).some((a) => /^[^/]*:/.test(a) && !a.startsWith('/')) ? ['networked', 'mutating'] : MUT, { writes: 'last' });
}

function sshLike(args: string[]): Verdict {
  // ssh with a remote command is not interactive; ssh alone opens a shell.
  const rest = nonOptions(args.filter((_a, i) => !/^-[bcDEeFIiJLlmOopQRSWw]$/.test(args[i - 1] ?? '')));
  return v(rest.length > 1 ? NET : ['networked', 'interactive']);
}

function dbClient(args: string[]): Verdict {
  return v(has(args, '-c', '-e', '--command', '--execute', '-f', '--file') ? ['networked', 'mutating'] : ['networked', 'interactive']);
}

function ip(args: string[]): Verdict {
  const [obj, op] = nonOptions(args);
  if (obj === undefined || op === undefined || ['show', 'list', 'ls', 'get'].includes(op)) return v(RO);
  return v(['host_escape_risk']);
}

function editorUnlessBatch(args: string[]): Verdict {
  return has(args, '--batch', '--script', '-batch') ? v(MUT) : v(['interactive', 'mutating']);
}

function xxd(args: string[]): Verdict {
  return has(args, '-r', '-revert') || nonOptions(args).length > 1 ? v(MUT, { writes: 'last' }) : v(RO);
}

function uniq(args: string[]): Verdict {
  return nonOptions(args).length > 1 ? v(MUT, { writes: 'last' }) : v(RO);
}

function unzip(args: string[]): Verdict {
  return has(args, '-l', '-v', '-t', '-Z') ? v(RO) : v(MUT, { writes: 'none' });
}

function mkfs(): Verdict {
  return v(['destructive', 'host_escape_risk'], { marks: ['disk-wipe'] });
}

const handlers: Record<string, Handler> = {
  chmod, rm, dd, curl, wget, tar, sed, gsed: sed, awk, gawk: awk, mawk: awk, nawk: awk, find, sort: sortCmd, git, rsync, ip, xxd, uniq, unzip,
  ssh: sshLike, mysql: dbClient, psql: dbClient, mongo: dbClient, mongosh: dbClient, 'redis-cli': dbClient, emacs: editorUnlessBatch,
  npm: (a) => npmLike('npm', a), pnpm: (a) => npmLike('pnpm', a), yarn: (a) => npmLike('yarn', a), bun: (a) => npmLike('bun', a),
  npx: () => pkg(INSTALL), pnpx: () => pkg(INSTALL), bunx: () => pkg(INSTALL), uvx: () => pkg(INSTALL),
  cargo, pip, pip3: pip, pipx: (a) => (['install', 'run', 'inject', 'upgrade'].includes(nonOptions(a)[0] ?? '') ? pkg(INSTALL) : pkg(RO)), uv, go: goCmd,
  gem: subInstall(['install', 'update'], ['list', 'info', 'search', 'env', 'which', 'contents']),
  composer: subInstall(['install', 'require', 'update', 'create-project', 'global'], ['show', 'info', 'outdated', 'why', 'depends', 'validate']),
  poetry: subInstall(['add', 'install', 'update', 'lock', 'self'], ['show', 'check', 'env', 'version', 'config']),
  conda: subInstall(['install', 'create', 'update', 'upgrade'], ['list', 'info', 'search']),
  mamba: subInstall(['install', 'create', 'update', 'upgrade'], ['list', 'info', 'search']),
  brew: subInstall(['install', 'upgrade', 'reinstall', 'tap', 'update'], ['list', 'info', 'search', 'outdated', 'deps', 'config', 'doctor']),
  apt: subInstall(['install', 'reinstall', 'upgrade', 'full-upgrade', 'dist-upgrade', 'update', 'build-dep', 'source'], ['list', 'search', 'show', 'policy', 'depends', 'rdepends']),
  'apt-get': subInstall(['install', 'reinstall', 'upgrade', 'dist-upgrade', 'update', 'build-dep', 'source', 'download'], ['check', 'changelog']),
  aptitude: subInstall(['install', 'reinstall', 'upgrade', 'safe-upgrade', 'full-upgrade', 'update'], ['search', 'show']),
  yum: subInstall(['install', 'reinstall', 'upgrade', 'update', 'groupinstall', 'localinstall'], ['list', 'info', 'search', 'provides']),
  dnf: subInstall(['install', 'reinstall', 'upgrade', 'update', 'groupinstall'], ['list', 'info', 'search', 'provides']),
  apk: subInstall(['add', 'upgrade', 'update', 'fix'], ['info', 'search', 'list', 'policy']),
  pacman: subInstall(['-S', '-U'], ['-Q', '-Qi', '-Ql', '-Ss', '-Si']),
  zypper: subInstall(['install', 'in', 'update', 'up', 'dist-upgrade', 'dup'], ['search', 'se', 'info', 'list-updates']),
  dpkg: (a) => (has(a, '-i', '--install', '--unpack') ? pkg(INSTALL) : has(a, '-r', '-P', '--remove', '--purge') ? pkg(MUT) : pkg(RO)),
  snap: subInstall(['install', 'refresh'], ['list', 'info', 'find']),
  flatpak: subInstall(['install', 'update'], ['list', 'info', 'search']),
  cp: () => v(MUT, { writes: 'last' }),
  install: () => v(MUT, { writes: 'last' }),
  ln: () => v(MUT, { writes: 'last' }),
  mkfs, mke2fs: mkfs, mkswap: mkfs, fdisk: mkfs, sfdisk: mkfs, parted: mkfs, wipefs: mkfs, sgdisk: mkfs, cfdisk: mkfs,
};

const table = new Map<string, CommandCategory[]>();
const add = (names: string[], cats: CommandCategory[]): void => {
  for (const n of names) table.set(n, [...(table.get(n) ?? []), ...cats]);
};
add(readOnly, RO);
add(mutating, MUT);
add(destructive, ['destructive']);
add(networked, NET);
add(privilege, ['privilege_escalation']);
add(hostEscape, ['host_escape_risk']);
add(interactive, ['interactive']);
table.set('scp', ['networked', 'mutating']);
table.set('sftp', ['networked', 'interactive']);
table.set('telnet', ['networked', 'interactive']);
table.set('ftp', ['networked', 'interactive']);

/** The verdict for a known program, or undefined when the program is not in the catalog. */
export function lookupProgram(program: string, args: string[]): Verdict | undefined {
  if (program.startsWith('mkfs')) return mkfs();
  const handler = handlers[program];
  if (handler) return handler(args);
  const cats = table.get(program);
  if (!cats) return undefined;
  return v(cats, { writes: cats.includes('mutating') || cats.includes('destructive') ? 'args' : 'none' });
}

export function isDiskDevice(path: string): boolean {
  return diskDevice.test(path);
}

// Interpreter one-liners cannot be parsed as their language here; these signals decide what they may do.
const codeSpawns = /\b(os\.system|subprocess|popen|os\.exec|os\.spawn|spawn|execSync|execFile|exec\s*\(|eval\s*\(|compile\s*\(|__import__|getattr|importlib|child_process|system\s*\(|shell_exec|passthru|proc_open|pty\.|ctypes|Deno\.run|Deno\.Command|Bun\.spawn|`)/i;
const codeNet = /\b(socket|urllib|requests|http\.client|httpx|aiohttp|urlopen|fetch\s*\(|https?:\/\/|require\s*\(\s*['"](?:node:)?(?:http|https|net|dgram|tls|http2)['"]|from\s+['"](?:node:)?(?:http|https|net|dgram|tls)['"]|LWP|Net::|IO::Socket|open-uri|Net::HTTP|smtplib|ftplib|paramiko)/;
const codeDestructive = /\b(rmtree|os\.remove|os\.unlink|unlinkSync|\.unlink\s*\(|rmSync|rmdirSync|os\.rmdir|\.rmdir\s*\(|shutil\.move|File\.delete|FileUtils\.rm|remove_dir_all|unlink\s*\(|truncate)/;

/** Categories for inline interpreter code (python -c, node -e, perl -e...): never read-only, since code can do anything. */
export function classifyInlineCode(code: string): Verdict {
  const categories: CommandCategory[] = ['mutating'];
  const notes: string[] = ['inline interpreter code is checked for signals only; it can change files'];
  if (codeSpawns.test(code)) {
    categories.push('unknown');
    notes.push('the code can run other programs or evaluate code, which cannot be analysed');
  }
  if (codeNet.test(code)) categories.push('networked');
  if (codeDestructive.test(code)) categories.push('destructive');
  const extraPaths = [...code.matchAll(/(?:^|[\s'"`(,=])((?:~[A-Za-z0-9_-]*|\/)[^\s'"`;,()]*)/g)].map((m) => ({ text: m[1]!, write: false }));
  return v(categories, { notes, extraPaths, writes: 'none' });
}

// Path resolution and glob matching for policy rules. A command runs with the workspace at /workspace
// and its cwd under it; a path is either inside the workspace, a host path, or under a home directory.
import { posix } from 'node:path';
import type { PathRef } from './policy-types.ts';

export const WORKSPACE_ROOT = '/workspace';

/** Resolves a word naming a path against the vault cwd ('/' or '/src'). */
export function resolvePath(text: string, dynamic: boolean, cwd: string, write: boolean): PathRef {
  if (text.startsWith('~')) {
    const slash = text.indexOf('/');
    const user = slash < 0 ? text.slice(1) : text.slice(1, slash);
    const rest = slash < 0 ? '' : text.slice(slash);
    const path = '~' + user + (rest ? posix.normalize(rest).replace(/\/$/, '') : '');
    return { text, kind: 'home', path, write };
  }
  if (dynamic && !text.startsWith('/') && !text.startsWith('.')) return { text, kind: 'dynamic', path: text, write };
  const base = posix.join(WORKSPACE_ROOT, cwd.startsWith('/') ? cwd : `/${cwd}`);
  const abs = posix.resolve(base, text).replace(/(.)\/$/, '$1');
  if (abs === WORKSPACE_ROOT) return { text, kind: 'workspace', path: '', write };
  if (abs.startsWith(WORKSPACE_ROOT + '/')) return { text, kind: 'workspace', path: abs.slice(WORKSPACE_ROOT.length + 1), write };
  return { text, kind: dynamic ? 'dynamic' : 'host', path: abs, write };
}

/** True when a word could name a file (not an option, URL, or remote spec). */
export function looksLikePath(text: string): boolean {
  if (text === '' || text.startsWith('-')) return false;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return false;
  return true;
}

const cache = new Map<string, RegExp>();

/**
 * Glob to RegExp: `**` crosses '/', `*` and `?` do not, `{a,b}` alternatives, `[...]` classes.
 * A trailing `/**` also matches the directory itself; a pattern with no '/' matches a basename anywhere.
 */
export function globToRegExp(glob: string): RegExp {
  const hit = cache.get(glob);
  if (hit) return hit;
  let re = '';
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '{') {
      braces++;
      re += '(?:';
    } else if (c === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (c === ',' && braces > 0) re += '|';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^$()|\\\]]/g, '\\$&');
  }
  if (glob.endsWith('/**')) re = re.slice(0, -'/.*'.length) + '(?:/.*)?';
  const anchored = glob.includes('/') ? `^${re}$` : `^(?:.*/)?${re}$`;
  const out = new RegExp(anchored, 's');
  cache.set(glob, out);
  return out;
}

/**
 * Does a path match a rule glob? Globs starting with '/' match absolute paths (workspace paths as /workspace/...),
 * '~' globs match home paths, other globs match workspace-relative paths. '**' matches every path, even a computed one.
 */
export function pathMatches(glob: string, ref: PathRef): boolean {
  if (glob === '**') return true;
  if (ref.kind === 'dynamic') return false;
  if (glob.startsWith('/')) {
    const abs = ref.kind === 'workspace' ? posix.join(WORKSPACE_ROOT, ref.path) : ref.kind === 'host' ? ref.path : null;
    return abs !== null && globToRegExp(glob).test(abs);
  }
  if (glob.startsWith('~')) {
    if (ref.kind !== 'home') return false;
    // '~/x' covers the caller's home; '~*/x' any user's.
    return globToRegExp(glob).test(ref.path);
  }
  return ref.kind === 'workspace' && globToRegExp(glob).test(ref.path);
}

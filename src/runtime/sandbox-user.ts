// Which user a command runs as inside a sandbox: "UID", "UID:GID", or a name of the host's
// /etc/passwd (the sandbox shows the host's /etc read-only, so names mean the same inside).
import { readFileSync } from 'node:fs';
import { CorralError } from '../protocol/errors.ts';

export interface SandboxUser {
  uid: number;
  gid: number;
}

const MAX_ID = 65534;

function bad(user: string, why: string): CorralError {
  return new CorralError('INVALID_ARGUMENT', `user '${user.slice(0, 40)}' ${why}: give a uid (1000), uid:gid (1000:1000) or a user name of /etc/passwd`, { user: user.slice(0, 40) });
}

export function resolveSandboxUser(user: string, passwd = '/etc/passwd'): SandboxUser {
  if (typeof user !== 'string' || user.length === 0 || user.length > 64) throw bad(String(user), 'is not a user');
  const numeric = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(user);
  if (numeric) {
    const uid = Number(numeric[1]);
    const gid = numeric[2] === undefined ? uid : Number(numeric[2]);
    if (uid > MAX_ID || gid > MAX_ID) throw bad(user, `is out of range (0-${MAX_ID})`);
    return { uid, gid };
  }
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(user)) throw bad(user, 'is not a user name');
  let text = '';
  try {
    text = readFileSync(passwd, 'utf8');
  } catch {
    throw bad(user, `cannot be looked up (no ${passwd})`);
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === user && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw bad(user, 'is not in /etc/passwd');
}

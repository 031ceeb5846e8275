// The overlay path of change detection: with the warm checkout as the lower layer and a fresh
// upper directory per exec, the upper directory holds exactly what the command changed. Only the
// upper is walked (O(changes)); the lower is looked at only where the upper holds a directory, to
// tell a merged directory from one that replaced a file or link.
//
// The overlay must be mounted without metacopy and without redirect_dir (a metadata-only copy-up
// or a redirected directory rename would leave content only in the lower layer). With `userxattr`
// (unprivileged mounts) both are off; a root mount should say `metacopy=off,redirect_dir=off`.
// Whiteouts are character devices 0/0; opaque directories carry the xattr
// `user.overlay.opaque` (or `trusted.overlay.opaque` for a root mount without userxattr) = "y",
// which the caller reads (Node has no xattr call) and passes in.
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { errnoCode, hostError, readLinkText } from './host-files.ts';
import { entryPath, specialKind, type FsChangeSet } from './fs-changes.ts';


/**
 * The change set an overlay upper directory holds. `opaqueDirs` are upper-relative paths ('a/b')
 * of directories marked opaque: the lower directory there is deleted and the upper one's content
 * added. Copy-ups that changed nothing (chmod back, touch) come out as writes: applying them
 * changes nothing.
 */
export function readUpperChanges(upperDir: string, lowerDir: string, opaqueDirs: ReadonlySet<string>): FsChangeSet {
  const out: FsChangeSet = { changes: [], skipped: [] };
  walk(upperDir, lowerDir, '', '/', true, opaqueDirs, out);
  return out;
}

/** The lower entry at `lowerPath`, when the lower directory above it is known to be a real directory. */
function lowerStat(lowerPath: string): Stats | undefined {
  try {
    return lstatSync(lowerPath, { throwIfNoEntry: false });
  } catch (e) {
    if (errnoCode(e) === 'ENOTDIR') return undefined;
    throw hostError(e, lowerPath);
  }
}

function walk(upper: string, lower: string, rel: string, path: string, lowerIsDir: boolean, opaque: ReadonlySet<string>, out: FsChangeSet): void {
  let names: Buffer[];
  try {
    names = readdirSync(upper, { encoding: 'buffer' });
  } catch (e) {
    throw hostError(e, upper);
  }
  for (const raw of names) {
    const entry = entryPath(raw, path, out.skipped);
    if (!entry) continue;
    const { name, path: p } = entry;
    const r = rel === '' ? name : `${rel}/${name}`;
    const upperPath = upper + '/' + name;
    const lowerPath = lower + '/' + name;
    let st: Stats | undefined;
    try {
      st = lstatSync(upperPath, { throwIfNoEntry: false });
    } catch (e) {
      throw hostError(e, upperPath);
    }
    if (!st) continue;
    if (st.isCharacterDevice() && st.rdev === 0) {
      out.changes.push({ op: 'delete', path: p });
      continue;
    }
    if (st.isDirectory()) {
      const low = lowerIsDir ? lowerStat(lowerPath) : undefined;
      const merged = low?.isDirectory() === true && !opaque.has(r);
      if (low && !merged) out.changes.push({ op: 'delete', path: p });
      out.changes.push({ op: 'dir', path: p, mode: st.mode & 0o7777 });
      walk(upperPath, lowerPath, r, p, merged, opaque, out);
    } else if (st.isFile()) {
      out.changes.push({ op: 'file', path: p, hostPath: upperPath, mode: st.mode & 0o7777, size: st.size, dev: st.dev, ino: st.ino });
    } else if (st.isSymbolicLink()) {
      let target: string | undefined;
      try {
        target = readLinkText(upperPath);
      } catch (e) {
        throw hostError(e, upperPath);
      }
      if (target === undefined) {
        out.skipped.push({ path: p, reason: 'link target is not valid UTF-8' });
        out.changes.push({ op: 'delete', path: p });
        continue;
      }
      out.changes.push({ op: 'symlink', path: p, target });
    } else {
      // The vault cannot hold it; whatever the lower had there is gone all the same.
      out.skipped.push({ path: p, reason: specialKind(st) });
      out.changes.push({ op: 'delete', path: p });
    }
  }
}

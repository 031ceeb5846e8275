// What a command did to a directory, before it is committed: the change set both detectors
// (stat-index.ts on a plain directory, overlay-changes.ts on an overlay upper) produce, and how it
// is applied to a vault tree. File contents are read only here, at commit time, through
// readHostFile (O_NOFOLLOW, and the dev/ino the scan saw), so nothing outside is ever read.
import { CorralError } from '../protocol/errors.ts';
import { MAX_COMPONENT_BYTES, MAX_PATH_BYTES, joinPath, normalizePath, parentOf } from '../protocol/paths.ts';
import { EMPTY_TREE, sha256, type Entry, type ObjectStore } from '../store/object-store.ts';
import { lookup } from '../store/tree-diff.ts';
import type { TreeEditor } from '../store/tree-editor.ts';
import { readHostFile } from './host-files.ts';
import { checkFileSize } from './transfer-limits.ts';

export type FsChange =
  /** A regular file exists at `path` after the command; its content is read from `hostPath` at commit. */
  | { op: 'file'; path: string; hostPath: string; mode: number; size: number; dev?: number; ino?: number }
  | { op: 'symlink'; path: string; target: string }
  /** A directory exists after the command (new, or its mode may have changed). */
  | { op: 'dir'; path: string; mode: number }
  /** Gone, with anything below. */
  | { op: 'delete'; path: string };

export interface FsChangeSet {
  changes: FsChange[];
  /** Entries the vault cannot hold (fifos, sockets, devices, names that are not UTF-8 or too long). */
  skipped: { path: string; reason: string }[];
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/**
 * The vault path of the directory entry `raw` found under the vault path `dir`, or undefined when
 * the vault cannot hold it (not UTF-8, too long): then it is added to `skipped`.
 */
export function entryPath(raw: Buffer, dir: string, skipped: FsChangeSet['skipped']): { name: string; path: string } | undefined {
  let name: string;
  try {
    name = strictUtf8.decode(raw);
  } catch {
    skipped.push({ path: joinPath(dir, raw.toString('utf8')), reason: 'name is not valid UTF-8' });
    return undefined;
  }
  const path = joinPath(dir, name);
  if (raw.length > MAX_COMPONENT_BYTES || (path.length * 3 > MAX_PATH_BYTES && encoder.encode(path).length > MAX_PATH_BYTES)) {
    skipped.push({ path: path.slice(0, 200), reason: 'path is too long for the vault' });
    return undefined;
  }
  return { name, path };
}

/** Host file kinds the vault cannot hold, named for the `skipped` list. */
export function specialKind(st: { isSocket(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  const kind = st.isSocket() ? 'socket' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'character device' : st.isBlockDevice() ? 'block device' : 'special file';
  return `${kind} (not a file, directory or symlink)`;
}

function same(a: Pick<Entry, 'kind' | 'hash' | 'mode'>, b: Pick<Entry, 'kind' | 'hash' | 'mode'> | undefined): boolean {
  return b !== undefined && a.kind === b.kind && a.hash === b.hash && a.mode === b.mode;
}

/**
 * Applies a change set to `editor`: deletes first, then directories parents first, then files and
 * links. An entry equal (kind, content, mode) to the one the tree held before keeps that entry, its
 * mtime included, so a copy-up that changed nothing, or a directory deleted and recreated the
 * same, leaves the tree exactly as it was: both detectors then give the same tree.
 */
export function applyFsChanges(editor: TreeEditor, set: FsChangeSet, maxFileSize: number | null, objects: ObjectStore): void {
  // Before any change: lstat('/') names the editor's starting root.
  const baseRoot = editor.lstat('/')!.hash;
  const before = (path: string): Entry | undefined => lookup(objects, baseRoot, path);
  const checked = (path: string): string => {
    if (normalizePath(path) !== path || path === '/') throw new CorralError('INVALID_PATH', `change set holds an invalid path ${JSON.stringify(path.slice(0, 200))}`, { path: path.slice(0, 200) });
    return path;
  };
  const byPath = (a: FsChange, b: FsChange): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  const deletes = set.changes.filter((c) => c.op === 'delete').sort(byPath);
  const dirs = set.changes.filter((c) => c.op === 'dir').sort(byPath);
  const leaves = set.changes.filter((c) => c.op === 'file' || c.op === 'symlink').sort(byPath);
  const recreated: string[] = [];

  for (const c of deletes) if (editor.lstat(checked(c.path))) editor.remove(c.path);

  for (const c of dirs) {
    const path = checked(c.path);
    const mode = c.mode & 0o7777;
    const cur = editor.lstat(path);
    if (cur?.kind === 'dir') {
      if (cur.mode !== mode) editor.set(path, { ...editor.entry(path)!, mode });
      continue;
    }
    editor.mkdirs(parentOf(path));
    editor.set(path, { kind: 'dir', mode, hash: EMPTY_TREE, size: 0, mtime: editor.mtime, files: 0 });
    if (before(path)?.kind === 'dir') recreated.push(path);
  }

  for (const c of leaves) {
    const path = checked(c.path);
    let entry: Omit<Entry, 'name'>;
    if (c.op === 'symlink') {
      const data = encoder.encode(c.target);
      checkFileSize(path, data.length, maxFileSize);
      entry = { kind: 'symlink', mode: 0o777, hash: sha256(data), size: data.length, mtime: editor.mtime };
      if (!same(entry, before(path)) && !same(entry, editor.lstat(path))) objects.putBlob(data);
    } else {
      checkFileSize(path, c.size, maxFileSize);
      const scanned = c.dev !== undefined && c.ino !== undefined ? { dev: c.dev, ino: c.ino } : undefined;
      const data = readHostFile(c.hostPath, path, c.size, scanned, maxFileSize);
      checkFileSize(path, data.length, maxFileSize);
      // No setuid, setgid or sticky bits from a command: a vault never carries privilege out of a sandbox.
      entry = { kind: 'file', mode: c.mode & 0o777, hash: sha256(data), size: data.length, mtime: editor.mtime };
      if (!same(entry, before(path)) && !same(entry, editor.lstat(path))) objects.putBlob(data);
    }
    const cur = editor.lstat(path);
    if (same(entry, cur)) continue;
    const old = before(path);
    editor.mkdirs(parentOf(path));
    editor.set(path, same(entry, old) ? old! : entry);
  }

  // A directory deleted and made again: when it ends up as it was, it is put back as it was.
  for (const path of recreated.reverse()) {
    const now = editor.entry(path);
    const old = before(path);
    if (now && old && same(now, old) && now.mtime !== old.mtime) editor.set(path, old);
  }
}

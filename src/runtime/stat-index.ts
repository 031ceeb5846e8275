// A git-like index of a checkout directory: for each regular file, the stat it had when its
// content hash was last known. scanChanges uses it to hash only the candidates: files whose stat
// differs (size, mtime ns, ctime ns, inode, device, mode) or that are "racily clean" (changed
// within a timestamp tick of when they were recorded, so a later write may not show in the stat).
// The ctime cannot be set from user space, so any write, chmod, rename or link shows in it.
// Where the index is missing or corrupt, every file is a candidate: slow, still exact.
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readdirSync, readSync, renameSync, rmSync, writeFileSync, type BigIntStats } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { dirname, basename, join } from 'node:path';
import { CorralError } from '../protocol/errors.ts';
import { joinPath } from '../protocol/paths.ts';
import { sha256, type Entry, type ObjectStore } from '../store/object-store.ts';
import { walkTree } from '../store/tree-diff.ts';
import { errnoCode, hostError, readLinkText } from './host-files.ts';
import { entryPath, specialKind, type FsChange, type FsChangeSet } from './fs-changes.ts';

/**
 * How much older than the moment it was recorded a file's timestamps must be for its entry to be
 * trusted: file timestamps come from the kernel's coarse clock (one jiffy, up to 10 ms) while
 * Date.now() is precise, so a write just after the stat can carry a time before the record.
 */
export const RACY_MARGIN_MS = 50;

export interface IndexEntry {
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: number;
  dev: number;
  /** st_mode: the kind bits and permissions. */
  mode: number;
  /** sha256 of the content the file had with this stat. */
  hash: string;
  /** Date.now() before the stat was taken. */
  recordedAt: number;
}

export interface StatIndex {
  /** The tree the directory matched when the index was built (for information: entries stand on their own). */
  tree: string;
  /** Vault path → entry, for regular files. */
  entries: Map<string, IndexEntry>;
}

const INDEX_VERSION = 1;
const encoder = new TextEncoder();

export function emptyIndex(tree = ''): StatIndex {
  return { tree, entries: new Map() };
}

function entryFrom(st: BigIntStats, hash: string, recordedAt: number): IndexEntry {
  return { size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: Number(st.ino), dev: Number(st.dev), mode: Number(st.mode), hash, recordedAt };
}

/** True when the index entry still vouches for the file's content: same stat, and not racily clean. */
export function entryMatches(e: IndexEntry | undefined, st: BigIntStats): e is IndexEntry {
  if (!e) return false;
  if (e.size !== Number(st.size) || e.mtimeNs !== st.mtimeNs || e.ctimeNs !== st.ctimeNs || e.ino !== Number(st.ino) || e.dev !== Number(st.dev) || e.mode !== Number(st.mode)) return false;
  const limit = BigInt(e.recordedAt - RACY_MARGIN_MS) * 1_000_000n;
  return st.mtimeNs < limit && st.ctimeNs < limit;
}

/**
 * Indexes a directory just materialised (or synced) from `tree`: a file whose size and mtime are
 * the tree's (Corral wrote them so) gets the tree's hash; any other file is hashed.
 */
export function buildIndex(dir: string, tree: string, objects: ObjectStore): StatIndex {
  const index = emptyIndex(tree);
  const recordedAt = Date.now();
  walkTree(objects, tree, '/', (path, e) => {
    if (e.kind !== 'file') return;
    const entry = indexFile(dir + path, path, e, recordedAt);
    if (entry) index.entries.set(path, entry);
  });
  return index;
}

/** The index entry for the file at `host`, expected to hold tree entry `e`; undefined when it is not a file. */
export function indexFile(host: string, path: string, e: Entry, recordedAt: number): IndexEntry | undefined {
  let st: BigIntStats | undefined;
  try {
    st = lstatSync(host, { bigint: true, throwIfNoEntry: false });
  } catch (err) {
    if (errnoCode(err) === 'ENOTDIR' || errnoCode(err) === 'ELOOP') return undefined;
    throw hostError(err, host);
  }
  if (!st?.isFile()) return undefined;
  const mtimeMs = Number((st.mtimeNs + 500_000n) / 1_000_000n);
  if (Number(st.size) === e.size && mtimeMs === e.mtime && (Number(st.mode) & 0o7777) === e.mode) return entryFrom(st, e.hash, recordedAt);
  const h = hashHostFile(host, path, st);
  return h === undefined ? undefined : entryFrom(st, h, recordedAt);
}

/**
 * sha256 of a host file, opened without following a symlink and checked to be the inode `st`
 * describes (a directory swapped for a symlink on the way would lead elsewhere). Undefined when it
 * vanished or was replaced meanwhile: the caller then treats it as changed.
 */
export function hashHostFile(host: string, path: string, st: BigIntStats): string | undefined {
  let fd: number;
  try {
    fd = openSync(host, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    const code = errnoCode(e);
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENXIO') return undefined;
    throw hostError(e, host);
  }
  try {
    const now = fstatSync(fd, { bigint: true });
    if (now.dev !== st.dev || now.ino !== st.ino || !now.isFile()) return undefined;
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(256 * 1024);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } catch (e) {
    throw hostError(e, `${host} (${path})`);
  } finally {
    closeSync(fd);
  }
}

export interface ScanResult extends FsChangeSet {
  /** Files whose content is known now (unchanged, or hashed as candidates): the next index. */
  observed: Map<string, IndexEntry>;
}

/**
 * What differs in `dir` from the tree `baseTree`: exact, whatever wrote there. Every directory is
 * listed (readdir + lstat per entry); only candidate files are read.
 */
export function scanChanges(dir: string, index: StatIndex, objects: ObjectStore, baseTree: string): FsChangeSet {
  const { changes, skipped } = scanDir(dir, index, objects, baseTree);
  return { changes, skipped };
}

/** scanChanges, also returning what it learnt for the next index. */
export function scanDir(dir: string, index: StatIndex, objects: ObjectStore, baseTree: string): ScanResult {
  const out: ScanResult = { changes: [], skipped: [], observed: new Map() };
  const recordedAt = Date.now();
  const root = lstatSync(dir, { bigint: true, throwIfNoEntry: false });
  if (!root?.isDirectory()) throw new CorralError('PATH_NOT_FOUND', `${dir} is not a directory any more: check it out again`, { hostPath: dir });
  scanLevel(dir, '/', baseTree, index, objects, recordedAt, out);
  return out;
}

function treeMap(objects: ObjectStore, hash: string | undefined): Map<string, Entry> {
  const m = new Map<string, Entry>();
  if (hash !== undefined) for (const e of objects.getTree(hash)) m.set(e.name, e);
  return m;
}

function scanLevel(host: string, path: string, baseHash: string | undefined, index: StatIndex, objects: ObjectStore, recordedAt: number, out: ScanResult): void {
  const base = treeMap(objects, baseHash);
  let names: Buffer[];
  try {
    names = readdirSync(host, { encoding: 'buffer' });
  } catch (e) {
    // Swapped for something else since its lstat: what it held is unknown, so it counts as changed.
    if (errnoCode(e) === 'ENOTDIR' || errnoCode(e) === 'ENOENT') throw new CorralError('CONFLICT', `${host} changed while it was scanned: retry once it stops changing`, { hostPath: host });
    throw hostError(e, host);
  }
  const seen = new Set<string>();
  for (const raw of names) {
    const entry = entryPath(raw, path, out.skipped);
    if (!entry) continue;
    const { name, path: p } = entry;
    seen.add(name);
    const hostPath = host + '/' + name;
    const was = base.get(name);
    let st: BigIntStats | undefined;
    try {
      st = lstatSync(hostPath, { bigint: true, throwIfNoEntry: false });
    } catch (e) {
      throw hostError(e, hostPath);
    }
    if (!st) {
      // Vanished since the listing: gone.
      if (was) out.changes.push({ op: 'delete', path: p });
      continue;
    }
    const mode = Number(st.mode) & 0o7777;
    if (st.isDirectory()) {
      if (was && was.kind !== 'dir') out.changes.push({ op: 'delete', path: p });
      if (!was || was.kind !== 'dir' || was.mode !== mode) out.changes.push({ op: 'dir', path: p, mode });
      scanLevel(hostPath, p, was?.kind === 'dir' ? was.hash : undefined, index, objects, recordedAt, out);
      // Swapped for a symlink while listed: what was listed came from elsewhere.
      const after = lstatSync(hostPath, { bigint: true, throwIfNoEntry: false });
      if (!after?.isDirectory() || after.ino !== st.ino || after.dev !== st.dev) throw new CorralError('CONFLICT', `${hostPath} was replaced while it was scanned: retry once it stops changing`, { hostPath });
    } else if (st.isFile()) {
      let hash: string | undefined;
      const known = index.entries.get(p);
      if (entryMatches(known, st)) hash = known.hash;
      else if (was?.kind === 'file' && was.size === Number(st.size)) hash = hashHostFile(hostPath, p, st);
      if (hash !== undefined) out.observed.set(p, entryMatches(known, st) ? known : entryFrom(st, hash, recordedAt));
      if (was?.kind === 'file' && hash === was.hash && was.mode === mode) continue;
      out.changes.push({ op: 'file', path: p, hostPath, mode, size: Number(st.size), dev: Number(st.dev), ino: Number(st.ino) });
    } else if (st.isSymbolicLink()) {
      let target: string | undefined;
      try {
        target = readLinkText(hostPath);
      } catch (e) {
        // Gone, or no longer a link, since its lstat: what was there is gone.
        if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'EINVAL') {
          if (was) out.changes.push({ op: 'delete', path: p });
          continue;
        }
        throw hostError(e, hostPath);
      }
      if (target === undefined) {
        out.skipped.push({ path: p, reason: 'link target is not valid UTF-8' });
        if (was) out.changes.push({ op: 'delete', path: p });
        continue;
      }
      if (was?.kind === 'symlink' && was.hash === sha256(encoder.encode(target))) continue;
      out.changes.push({ op: 'symlink', path: p, target });
    } else {
      out.skipped.push({ path: p, reason: specialKind(st) });
      if (was) out.changes.push({ op: 'delete', path: p });
    }
  }
  for (const name of base.keys()) if (!seen.has(name)) out.changes.push({ op: 'delete', path: joinPath(path, name) } satisfies FsChange);
}

// ---- persistence ----------------------------------------------------------------------------

type EncodedEntry = [string, number, string, string, number, number, number, string, number];

/** Writes the index to `file` through a temp file and a rename: a reader sees the old or the new one whole. */
export function saveIndex(file: string, index: StatIndex): void {
  const entries: EncodedEntry[] = [];
  for (const [p, e] of index.entries) entries.push([p, e.size, e.mtimeNs.toString(), e.ctimeNs.toString(), e.ino, e.dev, e.mode, e.hash, e.recordedAt]);
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, JSON.stringify({ version: INDEX_VERSION, tree: index.tree, entries }), { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw hostError(e, file);
  }
}

/** Reads an index; a missing, unreadable or malformed one gives an empty index (every file a candidate). */
export function loadIndex(file: string): StatIndex {
  let text: string;
  try {
    text = readTextNoFollow(file);
  } catch {
    return emptyIndex();
  }
  try {
    const doc = JSON.parse(text) as { version?: unknown; tree?: unknown; entries?: unknown };
    if (doc.version !== INDEX_VERSION || typeof doc.tree !== 'string' || !Array.isArray(doc.entries)) return emptyIndex();
    const index = emptyIndex(doc.tree);
    for (const row of doc.entries as unknown[]) {
      if (!Array.isArray(row) || row.length !== 9) return emptyIndex();
      const [p, size, mtime, ctime, ino, dev, mode, hash, recordedAt] = row as unknown[];
      if (typeof p !== 'string' || !p.startsWith('/') || typeof mtime !== 'string' || typeof ctime !== 'string' || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) return emptyIndex();
      if (![size, ino, dev, mode, recordedAt].every((n) => typeof n === 'number' && Number.isSafeInteger(n))) return emptyIndex();
      if (!/^\d{1,30}$/.test(mtime) || !/^\d{1,30}$/.test(ctime)) return emptyIndex();
      index.entries.set(p, { size: size as number, mtimeNs: BigInt(mtime), ctimeNs: BigInt(ctime), ino: ino as number, dev: dev as number, mode: mode as number, hash, recordedAt: recordedAt as number });
    }
    return index;
  } catch {
    return emptyIndex();
  }
}

function readTextNoFollow(file: string): string {
  const fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const chunks: Buffer[] = [];
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

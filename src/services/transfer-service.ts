// Moving files between a vault and the host: directories (import/export) and tar streams.
// Imports plan the whole tree first, then build its trees bottom-up inside ONE mutate(), so an
// import is one commit and a failure leaves the vault unchanged. Symlinks are stored and written
// as links, never followed, on either side.
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  futimesSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { once } from 'node:events';
import { resolve as resolveHost } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Header } from 'tar-stream';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import { MAX_COMPONENT_BYTES, MAX_PATH_BYTES, baseName, joinPath, normalizePath, parentOf } from '../protocol/paths.ts';
import type { Caller, Commit, CorralStore } from '../store/corral-store.ts';
import type { Entry } from '../store/object-store.ts';
import type { TreeEditor } from '../store/tree-editor.ts';
import type { ServiceDeps } from './corral.ts';

/** Largest single file or tar entry: SQLite's largest value (SQLITE_MAX_LENGTH). */
export const MAX_ENTRY_BYTES = 1_000_000_000;
/** Most entries one tar stream may hold. */
export const MAX_TAR_ENTRIES = 2_000_000;
/** Most bytes one tar stream may carry. */
export const MAX_TAR_BYTES = 64 * 1024 ** 3;
/** File data a tar import keeps in memory before writing it to the database ahead of the commit. */
const TAR_PENDING_BYTES = 32 * 1024 * 1024;
const PROGRESS_EVERY = 64;

export type ProgressCallback = (done: number, total?: number) => void;

export interface ImportOptions {
  onProgress?: ProgressCallback;
  message?: string;
}

export interface ExportOptions {
  onProgress?: ProgressCallback;
  /** A checkpoint, commit id or HEAD~N instead of the head. */
  ref?: string;
  /** Write into a non-empty HOSTDIR, replacing files (never through a symlink). */
  force?: boolean;
}

export interface TarExportOptions {
  ref?: string;
  onProgress?: ProgressCallback;
  /** End `output` when done (default: yes, except for process.stdout and process.stderr). */
  end?: boolean;
}

export interface TransferCounts {
  /** Regular files. */
  files: number;
  /** Directories below the imported or exported root. */
  dirs: number;
  symlinks: number;
  /** Bytes of file contents (symlink targets not counted). */
  bytes: number;
}

export interface SkippedEntry {
  path: string;
  reason: string;
}

export interface OutsideLink {
  path: string;
  target: string;
}

export interface ImportResult extends TransferCounts {
  /** Where in the vault the tree went. */
  path: string;
  commit: Commit | null;
  /** Entries not imported (sockets, fifos, devices, hard links, unreadable names) and why. */
  skipped: SkippedEntry[];
  /** Symlinks whose target is absolute or leaves the imported tree: stored as links, but they point outside. */
  outside: OutsideLink[];
}

export interface ExportResult extends TransferCounts {
  path: string;
  /** The host directory written (directory exports) or the file written (a single file). */
  hostPath?: string;
}

// ---- the plan: what an import will build -----------------------------------------------------

interface PlanDir {
  kind: 'dir';
  mode: number;
  mtime: number;
  children: Map<string, PlanNode>;
  entry?: Entry;
}

interface PlanFile {
  kind: 'file';
  mode: number;
  mtime: number;
  size: number;
  /** Read from the host at build time (directory imports)... */
  host?: string;
  /** ...or held in memory until written (tar imports)... */
  data?: Uint8Array;
  /** ...or already written ahead of the commit (large tar imports). */
  hash?: string;
  entry?: Entry;
}

interface PlanLink {
  kind: 'symlink';
  mtime: number;
  target: string;
  entry?: Entry;
}

type PlanNode = PlanDir | PlanFile | PlanLink;

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function quotaError(path: string, size: number, limit: number): CorralError {
  // Same shape as TreeEditor.set's, so every write path reports this quota alike.
  return new CorralError('QUOTA_EXCEEDED', `${path} is ${size} bytes, over the vault's max file size of ${limit}: raise it with 'corral quota set --max-file-size N' (nothing was changed)`, {
    path,
    size,
    limit,
    quota: 'maxFileSize',
  });
}

function tooLarge(path: string, size: number): CorralError {
  return new CorralError('PAYLOAD_TOO_LARGE', `${path} is ${size} bytes; Corral stores files of at most ${MAX_ENTRY_BYTES} bytes (nothing was changed)`, { path, size, limit: MAX_ENTRY_BYTES });
}

function hostError(e: unknown, path: string): CorralError {
  if (e instanceof CorralError) return e;
  const err = toCorralError(e);
  if (err.code === 'HOST_IO_ERROR') return new CorralError('HOST_IO_ERROR', `${path}: ${err.message}`, { ...err.details, hostPath: path }, e);
  return err;
}

/** True when a link at directory depth `depth` below the import root points outside it. */
function pointsOutside(depth: number, target: string): boolean {
  if (target.startsWith('/')) return true;
  let d = depth;
  for (const part of target.split('/')) {
    if (part === '..') {
      if (d === 0) return true;
      d--;
    } else if (part !== '' && part !== '.') d++;
  }
  return false;
}

function checkVaultPathLength(path: string): void {
  if (path.length * 3 > MAX_PATH_BYTES && encoder.encode(path).length > MAX_PATH_BYTES)
    throw new CorralError('INVALID_PATH', `${path.slice(0, 80)}… is longer than ${MAX_PATH_BYTES} bytes inside the vault (nothing was changed)`, { path: path.slice(0, 200) });
}

/** A tree entry name safe to use as one host path component. */
function checkEntryName(name: string, dir: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || encoder.encode(name).length > MAX_COMPONENT_BYTES)
    throw new CorralError('STORAGE_CORRUPT', `the vault holds an entry with an unsafe name ${JSON.stringify(name.slice(0, 80))} in ${dir}; refusing to export it`, { dir, name: name.slice(0, 80) });
}

function unsafe(hostPath: string, what: string): CorralError {
  return new CorralError('UNSAFE_HOST_PATH', `${hostPath} ${what}; Corral never writes through a symlink on the host: remove it, or export into an empty directory`, { hostPath });
}

export class TransferService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }

  // ---- import of a host directory ----------------------------------------------------------

  /** Imports the host directory `hostDir` (recursively) at `vaultPath`, merging into what is there, as one commit. */
  importDir(vault: string, hostDir: string, vaultPath = '/', options: ImportOptions = {}): ImportResult {
    const p = normalizePath(vaultPath);
    const v = this.store.getVault(vault);
    const source = resolveHost(hostDir);
    let st: Stats;
    try {
      st = statSync(source);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') throw new CorralError('PATH_NOT_FOUND', `no such host directory: ${source}`, { hostPath: source });
      throw hostError(e, source);
    }
    if (!st.isDirectory()) throw new CorralError('NOT_A_DIRECTORY', `${source} is not a directory: import takes a directory (to add one file, use 'corral write PATH < FILE')`, { hostPath: source });

    const skipped: SkippedEntry[] = [];
    const outside: OutsideLink[] = [];
    const root: PlanDir = { kind: 'dir', mode: st.mode & 0o777, mtime: Math.floor(st.mtimeMs), children: new Map() };
    const scan = { entries: 0 };
    this.scanDir(source, p, 0, root, v.quota.maxFileSize, skipped, outside, scan);

    return this.commitPlan(vault, p, root, {
      message: options.message ?? `import ${source} into ${p}`,
      details: { source },
      onProgress: options.onProgress,
      total: scan.entries,
      skipped,
      outside,
    });
  }

  /** Reads one host directory level into `dir` (metadata only: file contents are read at build time). */
  private scanDir(host: string, vaultDir: string, depth: number, dir: PlanDir, maxFileSize: number | null, skipped: SkippedEntry[], outside: OutsideLink[], scan: { entries: number }): void {
    let names: string[];
    try {
      names = readdirSync(host);
    } catch (e) {
      throw hostError(e, host);
    }
    for (const name of names) {
      const hostPath = host + '/' + name;
      const path = joinPath(vaultDir, name);
      checkVaultPathLength(path);
      let st: Stats | undefined;
      try {
        st = lstatSync(hostPath, { throwIfNoEntry: false });
      } catch (e) {
        throw hostError(e, hostPath);
      }
      if (!st) {
        // Names that are not UTF-8 decode lossily and then cannot be found again.
        skipped.push({ path, reason: name.includes('\uFFFD') ? 'name is not valid UTF-8' : 'vanished during the import' });
        continue;
      }
      const mtime = Math.floor(st.mtimeMs);
      if (st.isDirectory()) {
        const child: PlanDir = { kind: 'dir', mode: st.mode & 0o777, mtime, children: new Map() };
        dir.children.set(name, child);
        this.scanDir(hostPath, path, depth + 1, child, maxFileSize, skipped, outside, scan);
      } else if (st.isFile()) {
        if (st.size > MAX_ENTRY_BYTES) throw tooLarge(path, st.size);
        if (maxFileSize !== null && st.size > maxFileSize) throw quotaError(path, st.size, maxFileSize);
        dir.children.set(name, { kind: 'file', mode: st.mode & 0o777, mtime, size: st.size, host: hostPath });
        scan.entries++;
      } else if (st.isSymbolicLink()) {
        let target: string;
        try {
          target = strictUtf8.decode(readlinkSync(hostPath, { encoding: 'buffer' }));
        } catch (e) {
          if (e instanceof TypeError) {
            skipped.push({ path, reason: 'link target is not valid UTF-8' });
            continue;
          }
          throw hostError(e, hostPath);
        }
        if (pointsOutside(depth, target)) outside.push({ path, target });
        dir.children.set(name, { kind: 'symlink', mtime, target });
        scan.entries++;
      } else {
        const kind = st.isSocket() ? 'socket' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'character device' : st.isBlockDevice() ? 'block device' : 'special file';
        skipped.push({ path, reason: `${kind} (not a file, directory or symlink)` });
      }
    }
  }

  // ---- import of a tar stream --------------------------------------------------------------

  /** Imports a tar stream (ustar, pax, GNU) at `vaultPath` as one commit. Hostile names fail the whole import. */
  async importTar(vault: string, input: NodeJS.ReadableStream | Readable, vaultPath = '/', options: ImportOptions = {}): Promise<ImportResult> {
    const p = normalizePath(vaultPath);
    const v = this.store.getVault(vault);
    const head = this.store.getCommit(v.head);
    const now = this.store.now();
    const root: PlanDir = { kind: 'dir', mode: 0o755, mtime: now, children: new Map() };
    const skipped: SkippedEntry[] = [];
    const outside: OutsideLink[] = [];
    const pending: PlanFile[] = [];
    let pendingBytes = 0;
    let entries = 0;
    let streamed = 0;

    // Loaded on first use: most commands never touch a tar, and every command loads this module.
    const { extract: tarExtract } = await import('tar-stream');
    const extract = tarExtract();
    const source = input as Readable;
    let inputError: Error | undefined;
    const onInputError = (e: Error): void => {
      inputError = e;
      extract.destroy(e);
    };
    source.once('error', onInputError);
    source.pipe(extract as unknown as NodeJS.WritableStream);
    try {
      for await (const entry of extract) {
        const h = entry.header;
        if (++entries > MAX_TAR_ENTRIES) throw new CorralError('PAYLOAD_TOO_LARGE', `the tar stream has more than ${MAX_TAR_ENTRIES} entries (nothing was changed)`, { limit: MAX_TAR_ENTRIES });
        const parts = tarEntryParts(h.name, p);
        const path = parts.length ? joinPath(p, parts.join('/')) : p;
        const mtime = tarMtime(h, now);
        const type = h.type ?? 'file';
        if (type === 'file' || type === 'contiguous-file') {
          const size = h.size ?? 0;
          if (size > MAX_ENTRY_BYTES) throw tooLarge(path, size);
          if (v.quota.maxFileSize !== null && size > v.quota.maxFileSize) throw quotaError(path, size, v.quota.maxFileSize);
          streamed += size;
          if (streamed > MAX_TAR_BYTES) throw new CorralError('PAYLOAD_TOO_LARGE', `the tar stream carries more than ${MAX_TAR_BYTES} bytes (nothing was changed)`, { limit: MAX_TAR_BYTES });
          // Cannot fit: even after replacing everything the vault holds, the quota would be passed.
          if (v.quota.maxBytes !== null && streamed > v.quota.maxBytes + head.size)
            throw new CorralError('QUOTA_EXCEEDED', `the tar stream carries at least ${streamed} bytes of files, more than vault '${vault}' may hold (quota ${v.quota.maxBytes}): raise it with 'corral quota set --max-bytes N' (nothing was changed)`, {
              quota: 'maxBytes',
              limit: v.quota.maxBytes,
            });
          const data = await readEntry(entry as unknown as AsyncIterable<Buffer>, size, path);
          const node: PlanFile = { kind: 'file', mode: (h.mode ?? 0o644) & 0o777, mtime, size: data.length, data };
          placeInPlan(root, parts, node, p, now);
          pending.push(node);
          pendingBytes += data.length;
          if (pendingBytes >= TAR_PENDING_BYTES) {
            this.writeAhead(pending);
            pending.length = 0;
            pendingBytes = 0;
          }
        } else {
          await drain(entry as unknown as AsyncIterable<Buffer>);
          if (type === 'directory') {
            placeInPlan(root, parts, { kind: 'dir', mode: (h.mode ?? 0o755) & 0o777, mtime, children: new Map() }, p, now);
          } else if (type === 'symlink') {
            const target = h.linkname ?? '';
            if (target === '' || target.includes('\0') || encoder.encode(target).length > MAX_PATH_BYTES)
              throw new CorralError('INVALID_PATH', `tar entry ${JSON.stringify(h.name.slice(0, 200))} is a symlink with an empty, over-long or NUL-holding target (nothing was changed)`, { path });
            if (parts.length === 0) throw new CorralError('INVALID_PATH', `tar entry ${JSON.stringify(h.name)} would replace the import root with a symlink (nothing was changed)`, { path });
            if (pointsOutside(parts.length - 1, target)) outside.push({ path, target });
            placeInPlan(root, parts, { kind: 'symlink', mtime, target }, p, now);
          } else if (type === 'link') {
            skipped.push({ path, reason: `hard link to ${h.linkname ?? '?'} (not supported: store a copy or a symlink)` });
          } else {
            skipped.push({ path, reason: `${type} (not a file, directory or symlink)` });
          }
        }
        options.onProgress?.(entries);
      }
    } catch (e) {
      source.unpipe?.(extract as unknown as NodeJS.WritableStream);
      if (e instanceof CorralError) throw e;
      if (inputError) throw hostError(inputError, 'reading the tar stream');
      throw new CorralError('INVALID_ARGUMENT', `not a valid tar stream: ${(e as Error).message} (a .tar.gz must be gunzipped first, e.g. 'zcat x.tgz | corral import --tar -'; nothing was changed)`, {}, e);
    } finally {
      source.removeListener('error', onInputError);
    }

    return this.commitPlan(vault, p, root, {
      message: options.message ?? `import tar into ${p}`,
      details: { source: 'tar' },
      onProgress: undefined,
      total: 0,
      skipped,
      outside,
    });
  }

  /** Writes held file data as blobs ahead of the commit; if the import then fails, `gc` reclaims them. */
  private writeAhead(files: PlanFile[]): void {
    this.store.db.transaction(() => {
      for (const f of files) {
        f.hash = this.store.objects.putBlob(f.data!).hash;
        f.data = undefined;
      }
    });
  }

  // ---- building and committing a plan ------------------------------------------------------

  private commitPlan(
    vault: string,
    p: string,
    root: PlanDir,
    o: { message: string; details: Record<string, unknown>; onProgress: ProgressCallback | undefined; total: number; skipped: SkippedEntry[]; outside: OutsideLink[] },
  ): ImportResult {
    const counts: TransferCounts = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
    const { commit } = this.store.mutate(this.caller, vault, { op: 'transfer.import', target: p, message: o.message, origin: 'import', details: o.details }, (editor, v) => {
      const progress = { done: 0, total: o.total, report: o.onProgress };
      this.build(root, p, v.quota.maxFileSize, counts, progress);
      o.onProgress?.(progress.done, o.total || undefined);
      this.graft(editor, p, root);
      return null;
    });
    return { path: p, ...counts, commit, skipped: o.skipped, outside: o.outside };
  }

  /** Writes the blobs and trees of a planned directory, bottom-up; returns its entry. */
  private build(dir: PlanDir, path: string, maxFileSize: number | null, counts: TransferCounts, progress: { done: number; total: number; report: ProgressCallback | undefined }): Entry {
    const objects = this.store.objects;
    const entries: Entry[] = [];
    for (const [name, node] of dir.children) {
      const at = joinPath(path, name);
      let e: Entry;
      if (node.kind === 'dir') {
        e = { ...this.build(node, at, maxFileSize, counts, progress), name };
        counts.dirs++;
      } else {
        if (node.kind === 'file') {
          let hash = node.hash;
          let size = node.size;
          if (hash === undefined) {
            const data = node.data ?? readHostFile(node.host!, at, node.size);
            if (data.length > MAX_ENTRY_BYTES) throw tooLarge(at, data.length);
            if (maxFileSize !== null && data.length > maxFileSize) throw quotaError(at, data.length, maxFileSize);
            ({ hash, size } = objects.putBlob(data));
            node.data = undefined;
          }
          e = { name, kind: 'file', mode: node.mode, hash, size, mtime: node.mtime };
          counts.files++;
          counts.bytes += size;
        } else {
          const blob = objects.putBlob(encoder.encode(node.target));
          e = { name, kind: 'symlink', mode: 0o777, hash: blob.hash, size: blob.size, mtime: node.mtime };
          counts.symlinks++;
        }
        if (++progress.done % PROGRESS_EVERY === 0) progress.report?.(progress.done, progress.total || undefined);
      }
      node.entry = e;
      entries.push(e);
    }
    const tree = objects.putTreeRef(entries);
    const entry: Entry = { name: '', kind: 'dir', mode: dir.mode, hash: tree.hash, size: tree.size, mtime: dir.mtime, files: tree.files };
    dir.entry = entry;
    return entry;
  }

  /** Puts the built tree at `p`: merged into a directory already there, entry by entry, like `cp -r`. */
  private graft(editor: TreeEditor, p: string, root: PlanDir): void {
    const existing = editor.lstat(p);
    if (existing && existing.kind !== 'dir')
      throw new CorralError('NOT_A_DIRECTORY', `${p} is a ${existing.kind} in the vault: import into a directory, or remove it first with 'corral rm ${p}'`, { path: p });
    if (!existing) {
      editor.mkdirs(parentOf(p));
      editor.set(p, root.entry!);
      return;
    }
    const merge = (path: string, node: PlanNode): void => {
      const there = editor.lstat(path);
      if (there?.kind === 'dir' && node.kind === 'dir') {
        for (const [name, child] of node.children) merge(joinPath(path, name), child);
      } else {
        editor.set(path, node.entry!);
      }
    };
    for (const [name, child] of root.children) merge(joinPath(p, name), child);
  }

  // ---- export to a host directory ----------------------------------------------------------

  /**
   * Writes `vaultPath` (a directory's contents, or one file or link) into the host directory
   * `hostDir`, keeping modes, mtimes and symlinks. `hostDir` is created when missing and must be
   * empty unless `force`; nothing is ever written through a symlink on the host.
   */
  exportDir(vault: string, vaultPath: string, hostDir: string, options: ExportOptions = {}): ExportResult {
    const p = normalizePath(vaultPath);
    const v = this.store.getVault(vault);
    const commit = options.ref === undefined ? this.store.getCommit(v.head) : this.store.resolveRef(v, options.ref);
    const objects = this.store.objects;
    const rootEntry = this.entryAt(commit.tree, p);
    const dest = resolveHost(hostDir);
    const force = options.force === true;

    let created = false;
    let st: Stats | undefined;
    try {
      st = statSync(dest, { throwIfNoEntry: false });
      if (!st) {
        mkdirSync(dest, { recursive: true, mode: 0o755 });
        created = true;
      } else if (!st.isDirectory()) {
        throw new CorralError('NOT_A_DIRECTORY', `${dest} exists and is not a directory: export into a directory`, { hostPath: dest });
      }
    } catch (e) {
      throw hostError(e, dest);
    }

    const counts: TransferCounts = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
    const total = rootEntry.kind === 'dir' ? (rootEntry.files ?? 0) : 1;
    let done = 0;
    const tick = (): void => {
      if (++done % PROGRESS_EVERY === 0) options.onProgress?.(done, total);
    };

    const writeLeaf = (at: string, e: Entry, existing: boolean): void => {
      if (e.kind === 'file') {
        const data = objects.getBlob(e.hash);
        writeHostFile(at, data, e.mode & 0o777, e.mtime, existing);
        counts.files++;
        counts.bytes += data.length;
      } else {
        writeHostLink(at, new TextDecoder().decode(objects.getBlob(e.hash)), e.mtime, existing);
        counts.symlinks++;
      }
      tick();
    };

    if (rootEntry.kind !== 'dir') {
      const at = dest + '/' + rootEntry.name;
      const there = lstatSync(at, { throwIfNoEntry: false });
      if (there && !force) throw new CorralError('PATH_EXISTS', `${at} already exists: pass --force to replace it`, { hostPath: at });
      if (there?.isDirectory()) throw new CorralError('IS_A_DIRECTORY', `${at} is a directory on the host; not replacing it with a ${rootEntry.kind}`, { hostPath: at });
      try {
        writeLeaf(at, rootEntry, there !== undefined);
      } catch (e) {
        throw hostError(e, at);
      }
      options.onProgress?.(done, total);
      return { path: p, ...counts, hostPath: at };
    }

    // In a directory Corral created (or found empty) nothing can be in the way, so no checks are needed there.
    const fresh = created || readdirSync(dest).length === 0;
    if (!fresh && !force) throw new CorralError('DIRECTORY_NOT_EMPTY', `${dest} is not empty: export into an empty or new directory, or pass --force to write over its files`, { hostPath: dest });

    const writeDir = (host: string, hash: string, path: string, check: boolean): void => {
      for (const e of objects.getTree(hash)) {
        checkEntryName(e.name, path);
        const at = host + '/' + e.name;
        const vpath = joinPath(path, e.name);
        try {
          if (e.kind === 'dir') {
            const made = makeHostDir(at, check);
            writeDir(at, e.hash, vpath, check && !made);
            finishHostDir(at, e.mode & 0o777, e.mtime);
            counts.dirs++;
          } else {
            writeLeaf(at, e, check);
          }
        } catch (err) {
          throw hostError(err, at);
        }
      }
    };
    writeDir(dest, rootEntry.hash, p, !fresh);
    if (created && p !== '/') finishHostDir(dest, rootEntry.mode & 0o777, rootEntry.mtime);
    options.onProgress?.(done, total);
    return { path: p, ...counts, hostPath: dest };
  }

  /** The entry at `p` of a committed tree, without following symlinks; the root as a directory entry. */
  private entryAt(tree: string, p: string): Entry {
    const objects = this.store.objects;
    if (p === '/') {
      const t = objects.totals(tree);
      return { name: '', kind: 'dir', mode: 0o755, hash: tree, size: t.size, mtime: 0, files: t.files };
    }
    let found: Entry | undefined;
    let at = '';
    for (const part of p.slice(1).split('/')) {
      if (found && found.kind === 'symlink') throw new CorralError('IS_A_SYMLINK', `${at} is a symlink; Corral does not follow symlinks in paths (use the link's target)`, { path: at });
      if (found && found.kind !== 'dir') throw new CorralError('NOT_A_DIRECTORY', `${at} is a file, not a directory`, { path: at });
      const dir: string = found ? found.hash : tree;
      at += '/' + part;
      found = objects.lookupEntry(dir, part);
      if (!found) throw new CorralError('PATH_NOT_FOUND', `no such file or directory: ${at}`, { path: at });
    }
    return found!;
  }

  // ---- export as a tar stream --------------------------------------------------------------

  /** Writes `vaultPath` as a tar stream (names relative to it; a single file by its name) to `output`. */
  async exportTar(vault: string, vaultPath: string, output: Writable | NodeJS.WritableStream, options: TarExportOptions = {}): Promise<ExportResult> {
    const p = normalizePath(vaultPath);
    const v = this.store.getVault(vault);
    const commit = options.ref === undefined ? this.store.getCommit(v.head) : this.store.resolveRef(v, options.ref);
    const objects = this.store.objects;
    const rootEntry = this.entryAt(commit.tree, p);
    const out = output as Writable;
    const counts: TransferCounts = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
    const total = rootEntry.kind === 'dir' ? (rootEntry.files ?? 0) : 1;
    let done = 0;

    const { pack: tarPack } = await import('tar-stream');
    const pack = tarPack();
    let failure: Error | undefined;
    const onError = (e: Error): void => {
      failure ??= e;
      pack.destroy(e);
    };
    out.on('error', onError);
    // Copies the packed bytes to `out`, waiting whenever `out` is full.
    const pump = (async () => {
      for await (const chunk of pack) {
        if (!out.write(chunk)) await once(out, 'drain');
      }
    })();
    pump.catch(() => undefined);

    const add = (header: Partial<Header> & { name: string }, data?: Uint8Array): Promise<void> =>
      new Promise((resolve, reject) => {
        const cb = (err?: Error | null): void => (err ? reject(failure ?? err) : resolve());
        if (data) pack.entry(header, Buffer.from(data.buffer, data.byteOffset, data.byteLength), cb);
        else pack.entry(header, cb);
      });
    const addLeaf = async (name: string, e: Entry): Promise<void> => {
      const mtime = new Date(e.mtime);
      if (e.kind === 'file') {
        const data = objects.getBlob(e.hash);
        await add({ name, type: 'file', mode: e.mode & 0o777, mtime, size: data.length }, data);
        counts.files++;
        counts.bytes += data.length;
      } else {
        const linkname = new TextDecoder().decode(objects.getBlob(e.hash));
        if (linkname === '') throw new CorralError('STORAGE_CORRUPT', `${name} is a symlink with an empty target; a tar cannot hold it`, { path: name });
        await add({ name, type: 'symlink', mode: 0o777, mtime, linkname });
        counts.symlinks++;
      }
      if (++done % PROGRESS_EVERY === 0) options.onProgress?.(done, total);
    };
    const addDir = async (hash: string, prefix: string, path: string): Promise<void> => {
      for (const e of objects.getTree(hash)) {
        checkEntryName(e.name, path);
        const name = prefix + e.name;
        if (e.kind === 'dir') {
          await add({ name, type: 'directory', mode: e.mode & 0o777, mtime: new Date(e.mtime) });
          counts.dirs++;
          await addDir(e.hash, name + '/', joinPath(path, e.name));
        } else {
          await addLeaf(name, e);
        }
      }
    };

    try {
      if (rootEntry.kind === 'dir') await addDir(rootEntry.hash, '', p);
      else await addLeaf(baseName(p), rootEntry);
      pack.finalize();
      await pump;
      if (failure) throw failure;
      const end = options.end ?? (output !== process.stdout && output !== process.stderr);
      if (end) {
        out.end();
        if (!out.writableFinished) await once(out, 'finish');
      }
    } catch (e) {
      pack.destroy();
      throw hostError(e, 'tar output');
    } finally {
      out.removeListener('error', onError);
    }
    options.onProgress?.(done, total);
    return { path: p, ...counts };
  }
}

// ---- host file helpers ---------------------------------------------------------------------------

/**
 * Reads a file found by the scan. O_NOFOLLOW refuses a symlink put there since; O_NONBLOCK makes a
 * fifo fail instead of hang; reads are bounded, so even a device swapped in cannot run forever.
 */
function readHostFile(path: string, vaultPath: string, expected: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    throw hostError(e, path);
  }
  try {
    const buf = Buffer.allocUnsafeSlow(expected);
    let off = 0;
    while (off < expected) {
      const n = readSync(fd, buf, off, expected - off, null);
      if (n === 0) return buf.subarray(0, off);
      off += n;
    }
    // Grown since the scan: take the rest too, up to the largest file Corral stores.
    const more: Buffer[] = [];
    let total = off;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > MAX_ENTRY_BYTES) throw tooLarge(vaultPath, total);
      more.push(chunk.subarray(0, n));
    }
    return more.length ? Buffer.concat([buf, ...more]) : buf;
  } catch (e) {
    throw hostError(e, path);
  } finally {
    closeSync(fd);
  }
}

/** Creates a file (or truncates one, when `existing` may be there) without ever following a symlink. */
function writeHostFile(path: string, data: Uint8Array, mode: number, mtime: number, existing: boolean): void {
  const open = (flags: number): number => {
    try {
      return openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | flags, mode);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ELOOP') throw unsafe(path, 'is a symlink');
      if (code === 'EISDIR') throw new CorralError('IS_A_DIRECTORY', `${path} is a directory on the host; not replacing it with a file`, { hostPath: path });
      throw e;
    }
  };
  // A new name must really be new (O_EXCL): nothing planted there meanwhile, not even a hard link, is written into.
  let fd = open(existing ? 0 : fsc.O_EXCL);
  try {
    if (existing) {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new CorralError('HOST_IO_ERROR', `${path} is not a regular file on the host; not writing into it`, { hostPath: path });
      if (st.nlink > 1) {
        // A hard link shares its content with another file: replace the name, do not write through it.
        closeSync(fd);
        fd = -1;
        unlinkSync(path);
        fd = open(fsc.O_EXCL);
      } else {
        ftruncateSync(fd, 0);
      }
    }
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fchmodSync(fd, mode);
    futimesSync(fd, mtime / 1000, mtime / 1000);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Creates a symlink; an existing file or link at `path` is replaced (unlink never follows a link). */
function writeHostLink(path: string, target: string, mtime: number, existing: boolean): void {
  try {
    symlinkSync(target, path);
  } catch (e) {
    if (!existing || (e as { code?: string }).code !== 'EEXIST') throw e;
    if (lstatSync(path).isDirectory()) throw new CorralError('IS_A_DIRECTORY', `${path} is a directory on the host; not replacing it with a symlink`, { hostPath: path });
    unlinkSync(path);
    symlinkSync(target, path);
  }
  lutimesSync(path, mtime / 1000, mtime / 1000);
}

/** Sets a directory's mode and mtime through a descriptor opened without following a symlink. */
function finishHostDir(path: string, mode: number, mtime: number): void {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (e) {
    if ((e as { code?: string }).code === 'ELOOP' || (e as { code?: string }).code === 'ENOTDIR') throw unsafe(path, 'was replaced while exporting');
    throw e;
  }
  try {
    fchmodSync(fd, mode);
    futimesSync(fd, mtime / 1000, mtime / 1000);
  } finally {
    closeSync(fd);
  }
}

/** Makes a directory; when `check`, an existing one is accepted only if it is a real directory. Returns true when made. */
function makeHostDir(path: string, check: boolean): boolean {
  try {
    mkdirSync(path, 0o700);
    return true;
  } catch (e) {
    if (!check || (e as { code?: string }).code !== 'EEXIST') throw e;
  }
  const st = lstatSync(path);
  if (st.isSymbolicLink()) throw unsafe(path, 'is a symlink where the vault has a directory');
  if (st.isDirectory()) return false;
  // A file where the vault has a directory: replace it (unlink does not follow anything).
  unlinkSync(path);
  mkdirSync(path, 0o700);
  return true;
}

// ---- tar helpers ---------------------------------------------------------------------------------

/** The components of a tar entry name below the import root; hostile names fail the import. */
function tarEntryParts(name: string, root: string): string[] {
  const shown = JSON.stringify(name.replaceAll('\0', '\\0').slice(0, 200));
  if (name.includes('\0')) throw new CorralError('INVALID_PATH', `tar entry ${shown} holds a NUL byte (nothing was changed)`, { entry: name.replaceAll('\0', '\\0').slice(0, 200) });
  if (name.startsWith('/')) throw new CorralError('INVALID_PATH', `tar entry ${shown} is an absolute path; Corral imports only relative names (nothing was changed)`, { entry: name.slice(0, 200) });
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new CorralError('INVALID_PATH', `tar entry ${shown} contains '..', which could escape ${root} (nothing was changed)`, { entry: name.slice(0, 200) });
    parts.push(part);
  }
  if (parts.length) normalizePath(joinPath(root, parts.join('/')));
  return parts;
}

function tarMtime(h: Header, fallback: number): number {
  const pax = h.pax as { mtime?: string } | null | undefined;
  const precise = pax?.mtime !== undefined ? Number(pax.mtime) * 1000 : NaN;
  if (Number.isFinite(precise) && precise >= 0) return Math.floor(precise);
  const t = h.mtime?.getTime();
  return t !== undefined && Number.isFinite(t) && t >= 0 ? t : fallback;
}

/** Puts a node at `parts` below `root`, creating missing parents; later entries replace earlier ones, as in tar. */
function placeInPlan(root: PlanDir, parts: string[], node: PlanNode, base: string, now: number): void {
  if (parts.length === 0) {
    if (node.kind === 'dir') {
      root.mode = node.mode;
      root.mtime = node.mtime;
      return;
    }
    throw new CorralError('INVALID_PATH', `a tar entry would replace the import root ${base} with a ${node.kind} (nothing was changed)`, { path: base });
  }
  let dir = root;
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i]!;
    let next = dir.children.get(part);
    if (!next) {
      next = { kind: 'dir', mode: 0o755, mtime: now, children: new Map() };
      dir.children.set(part, next);
    } else if (next.kind !== 'dir') {
      const at = joinPath(base, parts.slice(0, i + 1).join('/'));
      throw new CorralError('INVALID_PATH', `tar entry ${joinPath(base, parts.join('/'))} lies below ${at}, which the stream made a ${next.kind}; Corral never follows links while importing (nothing was changed)`, { path: at });
    }
    dir = next;
  }
  const name = parts[parts.length - 1]!;
  const existing = dir.children.get(name);
  if (existing?.kind === 'dir') {
    if (node.kind !== 'dir')
      throw new CorralError('INVALID_PATH', `tar entry ${joinPath(base, parts.join('/'))} would replace a directory of the same stream with a ${node.kind} (nothing was changed)`, { path: joinPath(base, parts.join('/')) });
    existing.mode = node.mode;
    existing.mtime = node.mtime;
    return;
  }
  dir.children.set(name, node);
}

async function readEntry(entry: AsyncIterable<Buffer>, size: number, path: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let got = 0;
  for await (const chunk of entry) {
    got += chunk.length;
    if (got > size) throw new CorralError('INVALID_ARGUMENT', `tar entry ${path} carries more data than its header says (nothing was changed)`, { path });
    chunks.push(chunk);
  }
  if (got !== size) throw new CorralError('INVALID_ARGUMENT', `tar entry ${path} is truncated: ${got} of ${size} bytes (nothing was changed)`, { path });
  // A copy: the chunks may be views of larger read buffers that must not stay alive with the plan.
  return Buffer.concat(chunks, got);
}

async function drain(entry: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of entry) void chunk;
}

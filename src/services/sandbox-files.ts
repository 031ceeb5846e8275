// The files of a sandbox: its vault read and changed through the workspace layer (FileService,
// TransferService), so every write is one commit with an audit record and the vault's quotas apply.
// Every call takes the caller's scope: another tenant's sandbox is not found, a destroyed one is
// SANDBOX_STATE. Paths are vault paths (normalizePath), so nothing here can leave the vault.
import type { Readable, Writable } from 'node:stream';
import { CorralError, isCorralError } from '../protocol/errors.ts';
import { joinPath, normalizePath, parentOf } from '../protocol/paths.ts';
import type { Caller, Commit, CorralStore } from '../store/corral-store.ts';
import { EMPTY_TREE, type Entry } from '../store/object-store.ts';
import { diffTrees, lookup, type Change } from '../store/tree-diff.ts';
import type { TreeReader } from '../store/tree-reader.ts';
import { checkFileSize } from '../runtime/transfer-limits.ts';
import { FileService } from './file-service.ts';
import type { SandboxService, Scope } from './sandbox-service.ts';
import { TransferService, type ExportResult, type ImportResult } from './transfer-service.ts';

export interface SandboxFilesDeps {
  sandboxes: Pick<SandboxService, 'get' | 'tenantOf' | 'checkStorageQuota'>;
  files: FileService;
  transfer: TransferService;
  store: CorralStore;
}

/** One entry as the files API shows it. */
export interface FileInfo {
  path: string;
  name: string;
  kind: 'file' | 'dir' | 'symlink';
  /** Permission bits (420 = 0o644). */
  mode: number;
  /** Bytes: a file's length, a link target's length, or all files below a directory. */
  size: number;
  /** ISO 8601 time. */
  mtime: string;
  /** sha256 of the content (files, link targets) or of the tree (directories). */
  hash: string;
  /** Directories: files and links below. */
  files?: number;
  /** Symlinks: where the link points. */
  target?: string;
}

export interface FileContent {
  /** The file read (symlinks inside the vault followed). */
  path: string;
  /** The whole file's size, whatever the range. */
  size: number;
  mode: number;
  offset: number;
  data: Uint8Array;
}

export interface FileWriteResult {
  path: string;
  size: number;
  mode: number;
  /** The new commit's id, or null when the content did not change. */
  commit: string | null;
}

export interface FileEditRequest {
  path: string;
  oldText: string;
  newText: string;
  replaceAll?: boolean;
}

export interface FileListing {
  path: string;
  entries: FileInfo[];
  /** True when `limit` cut the listing short. */
  truncated: boolean;
}

export type FileChangeKind = 'created' | 'modified' | 'deleted';

export interface FileChange {
  path: string;
  kind: FileChangeKind;
  /** The commit that made the change. */
  commit: string;
}

/** A watch of a directory, started at a commit: `changes` yields what later commits change below it. */
export interface FileWatch {
  path: string;
  /** The head the watch started from (changes are those of later commits). */
  commit: string;
  /** Batches of changes, one per poll that saw some, until `signal` aborts or the sandbox goes. */
  changes(signal: AbortSignal): AsyncGenerator<FileChange[]>;
}

export const LIST_DEFAULT_LIMIT = 1000;
export const LIST_MAX_LIMIT = 10_000;
/** How often a watch looks at the vault's head. */
export const WATCH_INTERVAL_MS = 150;
/** Commits a watch walks back to name each change's own commit; past that, one diff names the head. */
const WATCH_MAX_COMMITS = 64;

function invalid(message: string, details: Record<string, unknown> = {}): CorralError {
  return new CorralError('INVALID_ARGUMENT', message, details);
}

function commitId(c: Commit | null): string | null {
  return c?.id ?? null;
}

/** Permission bits only: setuid, setgid and sticky bits are not for files an API client writes. */
function checkMode(mode: number | undefined): void {
  if (mode !== undefined && (!Number.isSafeInteger(mode) || mode < 0 || mode > 0o777))
    throw invalid(`mode must be permission bits from 0 to 0777, got ${String(mode).slice(0, 20)}`, { mode: String(mode).slice(0, 20) });
}

function checkCount(value: number | undefined, name: string, min: number, max: number): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < min || value > max))
    throw invalid(`${name} must be a whole number from ${min} to ${max}, got ${String(value).slice(0, 20)}`, { [name]: String(value).slice(0, 20) });
}

/** Non-overlapping occurrences of `needle` in `haystack`, up to `max` (all when undefined). */
function occurrences(haystack: Buffer, needle: Buffer, max = Infinity): number[] {
  const at: number[] = [];
  let from = 0;
  while (at.length < max) {
    const i = haystack.indexOf(needle, from);
    if (i < 0) break;
    at.push(i);
    from = i + needle.length;
  }
  return at;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

const kindOf = { added: 'created', modified: 'modified', deleted: 'deleted' } as const satisfies Record<Change['change'], FileChangeKind>;

export class SandboxFiles {
  private readonly sandboxes: Pick<SandboxService, 'get' | 'tenantOf' | 'checkStorageQuota'>;
  private readonly files: FileService;
  private readonly transfer: TransferService;
  private readonly store: CorralStore;

  constructor(deps: SandboxFilesDeps) {
    this.sandboxes = deps.sandboxes;
    this.files = deps.files;
    this.transfer = deps.transfer;
    this.store = deps.store;
  }

  /** The same files, with every change recorded (commits, audit) as made by `caller`: the API's requester, origin api. */
  as(caller: Caller): SandboxFiles {
    return new SandboxFiles({ sandboxes: this.sandboxes, store: this.store, files: new FileService({ store: this.store, caller }), transfer: new TransferService({ store: this.store, caller }) });
  }

  /** The vault of a live sandbox the caller may see; a destroyed one is SANDBOX_STATE. */
  vaultOf(id: string, scope: Scope): string {
    const sb = this.sandboxes.get(id, scope);
    if (sb.state === 'destroyed') throw new CorralError('SANDBOX_STATE', `sandbox ${sb.id} is destroyed: its files are gone with it`, { sandbox: sb.id, state: sb.state });
    return sb.vault;
  }

  /** Runs `fn` on the sandbox's vault; the vault vanishing meanwhile (the sandbox destroyed) is SANDBOX_STATE. */
  private onVault<T>(id: string, scope: Scope, fn: (vault: string) => T): T {
    const vault = this.vaultOf(id, scope);
    try {
      const out = fn(vault);
      if (out instanceof Promise) return out.catch((e: unknown) => Promise.reject(this.vanished(e, id, vault))) as T;
      return out;
    } catch (e) {
      throw this.vanished(e, id, vault);
    }
  }

  private vanished(e: unknown, id: string, vault: string): unknown {
    if (isCorralError(e, 'VAULT_NOT_FOUND') && !this.store.findVault(vault))
      return new CorralError('SANDBOX_STATE', `sandbox ${id} was destroyed while the request ran: nothing more was changed`, { sandbox: id, state: 'destroyed' });
    return e;
  }

  private info(reader: TreeReader, path: string, e: Entry): FileInfo {
    return {
      path,
      name: path === '/' ? '' : e.name,
      kind: e.kind,
      mode: e.mode,
      size: e.size,
      mtime: new Date(e.mtime).toISOString(),
      hash: e.hash,
      ...(e.kind === 'dir' ? { files: e.files ?? 0 } : {}),
      ...(e.kind === 'symlink' ? { target: reader.linkTarget(e) } : {}),
    };
  }

  /** The entry at `path` itself (a symlink is described, not followed). */
  stat(id: string, path: string, scope: Scope): FileInfo {
    const p = normalizePath(path);
    return this.onVault(id, scope, (vault) => {
      const r = this.files.reader(vault);
      return this.info(r, p, r.mustLstat(p));
    });
  }

  /**
   * A directory's entries, dotfiles included, in name order (depth first with `recursive`), at most
   * `limit` (default 1000, at most 10000); a file or link lists as itself.
   */
  list(id: string, path: string, options: { recursive?: boolean; limit?: number }, scope: Scope): FileListing {
    const p = normalizePath(path);
    checkCount(options.limit, 'limit', 1, LIST_MAX_LIMIT);
    const limit = options.limit ?? LIST_DEFAULT_LIMIT;
    return this.onVault(id, scope, (vault) => {
      const r = this.files.reader(vault);
      const top = r.mustLstat(p);
      if (top.kind !== 'dir') return { path: p, entries: [this.info(r, p, top)], truncated: false };
      const entries: FileInfo[] = [];
      let truncated = false;
      // Depth first with an explicit stack, stopping at the limit without reading further trees.
      const stack: { hash: string; at: string; i: number; list: readonly Entry[] }[] = [{ hash: top.hash, at: p, i: 0, list: r.objects.getTree(top.hash) }];
      while (stack.length > 0) {
        const frame = stack[stack.length - 1]!;
        const e = frame.list[frame.i++];
        if (!e) {
          stack.pop();
          continue;
        }
        if (entries.length >= limit) {
          truncated = true;
          break;
        }
        const at = joinPath(frame.at, e.name);
        entries.push(this.info(r, at, e));
        if (options.recursive && e.kind === 'dir') stack.push({ hash: e.hash, at, i: 0, list: r.objects.getTree(e.hash) });
      }
      return { path: p, entries, truncated };
    });
  }

  /**
   * A file's bytes from `offset` (default 0), `length` of them at most (default: to the end).
   * Symlinks inside the vault are followed; a directory is IS_A_DIRECTORY.
   */
  read(id: string, path: string, range: { offset?: number; length?: number }, scope: Scope): FileContent {
    const p = normalizePath(path);
    checkCount(range.offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
    checkCount(range.length, 'length', 0, Number.MAX_SAFE_INTEGER);
    return this.onVault(id, scope, (vault) => {
      const { path: real, entry } = this.files.reader(vault).resolve(p);
      if (entry.kind === 'dir') throw new CorralError('IS_A_DIRECTORY', `${real} is a directory: list it with GET …/files/list?path=${real}`, { path: real });
      const offset = range.offset ?? 0;
      if (offset > entry.size) throw invalid(`offset ${offset} is past the end of ${real} (${entry.size} bytes)`, { offset, size: entry.size });
      const length = Math.min(range.length ?? entry.size, entry.size - offset);
      let data: Uint8Array;
      if (offset === 0 && length === entry.size) data = this.store.objects.getBlob(entry.hash);
      else if (length === 0) data = new Uint8Array(0);
      else {
        // SQLite cuts the range, so only it crosses into JavaScript.
        const row = this.store.db.get<{ data: Uint8Array }>('SELECT substr(data, ?, ?) AS data FROM blobs WHERE hash = ?', offset + 1, length, entry.hash);
        if (!row) throw new CorralError('STORAGE_CORRUPT', `blob ${entry.hash} is missing from the database`, { hash: entry.hash });
        data = row.data;
      }
      return { path: real, size: entry.size, mode: entry.mode, offset, data };
    });
  }

  /**
   * Writes (or with `append`, appends to) a file as one commit. Missing parent directories are
   * created unless `parents` is false; a new file gets `mode` (default 0644), an existing one keeps
   * its own unless `mode` is given. Symlinks are never written through.
   */
  write(id: string, path: string, data: Uint8Array, options: { mode?: number; append?: boolean; parents?: boolean }, scope: Scope): FileWriteResult {
    const p = normalizePath(path);
    checkMode(options.mode);
    this.sandboxes.checkStorageQuota(this.sandboxes.tenantOf(this.sandboxes.get(id, scope).id), data.length);
    return this.onVault(id, scope, (vault) =>
      this.store.db.transaction(() => {
        if (options.parents === false) this.mustBeDir(vault, parentOf(p), 'write into it');
        const r = this.files.write(vault, p, data, { ...(options.mode !== undefined ? { mode: options.mode } : {}), ...(options.append ? { append: true } : {}) });
        return { path: r.path, size: r.size, mode: r.mode, commit: commitId(r.commit) };
      }),
    );
  }

  private mustBeDir(vault: string, dir: string, what: string): void {
    const e = this.files.reader(vault).lstat(dir);
    if (!e) throw new CorralError('PATH_NOT_FOUND', `the directory ${dir} does not exist: create it first (POST …/files/mkdir), or leave out parents=false to ${what} with its parents`, { path: dir });
    if (e.kind !== 'dir') throw new CorralError('NOT_A_DIRECTORY', `${dir} is a ${e.kind}, not a directory`, { path: dir });
  }

  /**
   * Replaces `oldText` with `newText` in a file, as exact bytes (UTF-8; no patterns). No match is
   * EDIT_NO_MATCH; more than one without `replaceAll` is EDIT_AMBIGUOUS, naming the count.
   */
  edit(id: string, request: FileEditRequest, scope: Scope): { path: string; replacements: number; commit: string | null } {
    const p = normalizePath(request.path);
    if (typeof request.oldText !== 'string' || request.oldText.length === 0) throw invalid('oldText must be a non-empty string: the exact text to replace');
    if (typeof request.newText !== 'string') throw invalid('newText must be a string (empty to delete the text)');
    const needle = Buffer.from(request.oldText, 'utf8');
    const replacement = Buffer.from(request.newText, 'utf8');
    return this.onVault(id, scope, (vault) =>
      // One transaction: the file read is the file replaced, whoever else writes meanwhile.
      this.store.db.transaction(() => {
        const e = this.files.reader(vault).mustLstat(p);
        if (e.kind === 'dir') throw new CorralError('IS_A_DIRECTORY', `${p} is a directory: edit a file`, { path: p });
        if (e.kind === 'symlink') throw new CorralError('IS_A_SYMLINK', `${p} is a symlink; Corral does not write through links: edit its target`, { path: p });
        const blob = this.store.objects.getBlob(e.hash);
        const content = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
        const at = occurrences(content, needle);
        if (at.length === 0)
          throw new CorralError('EDIT_NO_MATCH', `oldText does not occur in ${p} (matching is exact, whitespace and line endings included): read the file and copy the text to replace`, { path: p, matches: 0 });
        if (at.length > 1 && !request.replaceAll)
          throw new CorralError('EDIT_AMBIGUOUS', `oldText occurs ${at.length} times in ${p}: include more of the surrounding text to make it unique, or set replaceAll to replace every one`, { path: p, matches: at.length });
        const size = content.length + at.length * (replacement.length - needle.length);
        checkFileSize(p, size, this.store.getVault(vault).quota.maxFileSize);
        const out = Buffer.allocUnsafe(size);
        let read = 0;
        let written = 0;
        for (const i of at) {
          written += content.copy(out, written, read, i);
          written += replacement.copy(out, written);
          read = i + needle.length;
        }
        content.copy(out, written, read);
        const r = this.files.write(vault, p, out, { message: `edit ${p} (${at.length} replacement${at.length === 1 ? '' : 's'})` });
        return { path: p, replacements: at.length, commit: commitId(r.commit) };
      }),
    );
  }

  mkdir(id: string, path: string, options: { parents?: boolean }, scope: Scope): { path: string; commit: string | null } {
    const p = normalizePath(path);
    return this.onVault(id, scope, (vault) => {
      const r = this.files.mkdir(vault, p, { parents: options.parents === true });
      return { path: r.path, commit: commitId(r.commit) };
    });
  }

  /** Removes a file or link, or (with `recursive`) a directory and everything below it. */
  remove(id: string, path: string, options: { recursive?: boolean }, scope: Scope): { path: string; removed: number; commit: string | null } {
    const p = normalizePath(path);
    return this.onVault(id, scope, (vault) => {
      const r = this.files.rm(vault, p, { recursive: options.recursive === true });
      return { path: r.path, removed: r.removed, commit: commitId(r.commit) };
    });
  }

  /**
   * Moves `from` to exactly `to` (never into a directory at `to`). An existing `to` is PATH_EXISTS
   * unless `overwrite`, which replaces a file or link; a directory in the way is never replaced.
   */
  move(id: string, from: string, to: string, options: { overwrite?: boolean }, scope: Scope): { from: string; to: string; commit: string | null } {
    const src = normalizePath(from);
    const dst = normalizePath(to);
    return this.onVault(id, scope, (vault) =>
      this.store.db.transaction(() => {
        const r = this.files.reader(vault);
        r.mustLstat(src);
        if (src !== dst) {
          const there = r.lstat(dst);
          if (there?.kind === 'dir') throw new CorralError('PATH_EXISTS', `${dst} is a directory: move to a path that does not exist yet (the move never goes into a directory, nor replaces one)`, { path: dst });
          if (there && !options.overwrite) throw new CorralError('PATH_EXISTS', `${dst} already exists: set overwrite to replace it`, { path: dst });
        }
        const m = this.files.mv(vault, src, dst);
        return { from: m.from, to: m.to, commit: commitId(m.commit) };
      }),
    );
  }

  /**
   * Checks that `path` can be downloaded now and returns the function that streams it as a tar
   * (names relative to it; a file by its name) into `output`, ending it.
   */
  download(id: string, path: string, scope: Scope): { path: string; kind: Entry['kind']; pipe(output: Writable): Promise<ExportResult> } {
    const p = normalizePath(path);
    return this.onVault(id, scope, (vault) => {
      const e = this.files.reader(vault).mustLstat(p);
      return { path: p, kind: e.kind, pipe: (output: Writable) => this.onVault(id, scope, (v) => this.transfer.exportTar(v, p, output, { end: true })) };
    });
  }

  /**
   * Imports a tar stream at `path` (a directory, made when missing) as one commit, with the
   * transfer service's rules: absolute names, '..' and entries below a link fail the whole import
   * (nothing changed); links are stored as links, never followed, and those pointing outside are listed.
   */
  async upload(id: string, path: string, input: Readable, scope: Scope): Promise<ImportResult> {
    const p = normalizePath(path);
    this.sandboxes.checkStorageQuota(this.sandboxes.tenantOf(this.sandboxes.get(id, scope).id));
    return this.onVault(id, scope, (vault) => {
      const e = this.files.reader(vault).lstat(p);
      if (e && e.kind !== 'dir') throw new CorralError('NOT_A_DIRECTORY', `${p} is a ${e.kind}: upload into a directory`, { path: p });
      return this.transfer.importTar(vault, input, p, { message: `upload tar into ${p}` });
    });
  }

  /** Starts watching the directory `path` from the vault's current head. */
  watch(id: string, path: string, scope: Scope, options: { intervalMs?: number } = {}): FileWatch {
    const p = normalizePath(path);
    const interval = options.intervalMs ?? WATCH_INTERVAL_MS;
    const { vault, head } = this.onVault(id, scope, (v) => {
      const e = this.files.reader(v).mustLstat(p);
      if (e.kind !== 'dir') throw new CorralError('NOT_A_DIRECTORY', `${p} is a ${e.kind}: watch a directory`, { path: p });
      return { vault: v, head: this.store.getVault(v).head };
    });
    return { path: p, commit: head, changes: (signal) => this.poll(id, scope, vault, p, head, interval, signal) };
  }

  private async *poll(id: string, scope: Scope, vault: string, dir: string, start: string, interval: number, signal: AbortSignal): AsyncGenerator<FileChange[]> {
    let seen = start;
    while (!signal.aborted) {
      await sleep(interval, signal);
      if (signal.aborted) return;
      // Each poll checks the sandbox again: once it is destroyed (or expired) the watch ends with its error.
      this.vaultOf(id, scope);
      const head = this.store.findVault(vault)?.head;
      if (head === undefined) throw new CorralError('SANDBOX_STATE', `sandbox ${id} was destroyed: the watch ends`, { sandbox: id, state: 'destroyed' });
      if (head === seen) continue;
      const batch = this.changesBetween(seen, head, dir);
      seen = head;
      if (batch.length > 0) yield batch;
    }
  }

  /** What changed below `dir` from commit `from` to commit `to`, each change named by its own commit when the history between is short. */
  private changesBetween(from: string, to: string, dir: string): FileChange[] {
    const chain: Commit[] = [];
    let c: Commit | undefined = this.store.getCommit(to);
    while (c && c.id !== from && chain.length < WATCH_MAX_COMMITS) {
      chain.push(c);
      c = c.parent ? this.store.findCommit(c.parent) : undefined;
    }
    // Not a descendant within reach (a restore, a long burst): one diff, named by the head.
    const steps: { old: string; now: Commit }[] =
      c?.id === from ? chain.reverse().map((now) => ({ old: now.parent!, now })) : [{ old: from, now: this.store.getCommit(to) }];
    const out: FileChange[] = [];
    for (const { old, now } of steps) {
      // A directory that came or went (or is not one on a side) counts as empty there.
      const before = this.subtree(this.store.getCommit(old).tree, dir) ?? EMPTY_TREE;
      const after = this.subtree(now.tree, dir) ?? EMPTY_TREE;
      const changes = diffTrees(this.store.objects, before, after, dir);
      for (const ch of changes) out.push({ path: ch.path, kind: kindOf[ch.change], commit: now.id });
    }
    return out;
  }

  /** The tree hash of directory `dir` in the tree `root`, or undefined when it is not a directory there. */
  private subtree(root: string, dir: string): string | undefined {
    if (dir === '/') return root;
    const e = lookup(this.store.objects, root, dir);
    return e?.kind === 'dir' ? e.hash : undefined;
  }
}

// Moving files between a vault and the host: directories (import/export) and tar streams.
// Imports plan the whole tree first (host-scan.ts, tar-scan.ts) and read the file data, writing
// most of it ahead as blobs in short transactions of their own; then they build the trees
// bottom-up inside ONE mutate() (import-plan.ts), so an import is one commit, holds the write lock
// only briefly, and a failure leaves the vault unchanged (blobs written ahead are left to gc).
// Symlinks are stored and written as links, never followed, on either side.
import { lstatSync, readdirSync } from 'node:fs';
import { resolve as resolveHost } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { CorralError } from '../protocol/errors.ts';
import { baseName, joinPath, normalizePath } from '../protocol/paths.ts';
import type { Caller, Commit, CorralStore } from '../store/corral-store.ts';
import type { Entry } from '../store/object-store.ts';
import { TreeReader } from '../store/tree-reader.ts';
import type { ServiceDeps } from './corral.ts';
import { checkEntryName, checkHostDir, ensureHostDir, finishHostDir, hostError, makeHostDir, writeHostFile, writeHostLink, type HostDir } from '../runtime/host-files.ts';
import { readScannedFiles, scanHostDir, type HostScan } from './host-scan.ts';
import { buildPlan, graftPlan, type PlanDir, type PlanFile } from './import-plan.ts';
import { scanTarStream } from './tar-scan.ts';
import { writeTar } from './tar-writer.ts';
import { TransferTally } from './transfer-tally.ts';

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
  /**
   * Entries not imported (sockets, fifos, devices, names or link targets that are not UTF-8, and
   * a tar's hard links) and why. A directory's hard-linked files are imported, each as a file.
   */
  skipped: SkippedEntry[];
  /** Symlinks whose target is absolute or leaves the imported tree: stored as links, but they point outside. */
  outside: OutsideLink[];
}

export interface ExportResult extends TransferCounts {
  path: string;
  /** The host directory written (directory exports) or the file written (a single file). */
  hostPath?: string;
}

/** A planned import: the tree to build, and what was left out or points outside it. */
interface Plan {
  root: PlanDir;
  skipped: SkippedEntry[];
  outside: OutsideLink[];
}

/** A scanned host directory, about to be read and committed (TransferService.scanDir). */
export interface ScannedDir {
  vault: string;
  /** Where in the vault it goes. */
  path: string;
  /** The host directory. */
  source: string;
  scan: HostScan;
  /** Bytes the vault held at the scan. */
  headSize: number;
}

/** What an export reads: a committed tree and the entry at the exported path in it. */
interface ExportSource {
  tree: TreeReader;
  rootEntry: Entry;
  /** Files and links to write, for progress. */
  total: number;
}

export class TransferService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }

  // ---- imports -----------------------------------------------------------------------------

  /** Imports the host directory `hostDir` (recursively) at `vaultPath`, merging into what is there, as one commit. */
  importDir(vault: string, hostDir: string, vaultPath = '/', options: ImportOptions = {}): ImportResult {
    return this.importScanned(this.scanDir(vault, hostDir, vaultPath), options);
  }

  /** The first phase of importDir: the host tree's metadata, checked against the vault's limits. @internal (tests run the phases apart) */
  scanDir(vault: string, hostDir: string, vaultPath = '/'): ScannedDir {
    const p = normalizePath(vaultPath);
    const v = this.store.getVault(vault);
    const source = resolveHost(hostDir);
    const scan = scanHostDir(source, p, v.quota.maxFileSize);
    const head = this.store.getCommit(v.head);
    // Every file and link imported is in the vault afterwards, so it then holds at least these many.
    if (v.quota.maxFiles !== null && scan.entries > v.quota.maxFiles && scan.entries > head.files)
      throw new CorralError('QUOTA_EXCEEDED', `${source} holds ${scan.entries} files and links, more than vault '${vault}' may hold (quota ${v.quota.maxFiles}): raise it with 'corral quota set --max-files N' (nothing was changed)`, {
        quota: 'maxFiles',
        limit: v.quota.maxFiles,
        wouldBe: scan.entries,
      });
    return { vault, path: p, source, scan, headSize: head.size };
  }

  /** The second phase of importDir: reads the files (the very ones scanned) and commits. @internal */
  importScanned(s: ScannedDir, options: ImportOptions = {}): ImportResult {
    const { maxBytes, maxFileSize } = this.store.getVault(s.vault).quota;
    const tally = new TransferTally(options.onProgress, s.scan.entries || undefined);
    readScannedFiles(s.scan.root, s.path, {
      maxFileSize,
      // Fails as soon as the vault certainly cannot hold what is read, before reading the rest.
      checkBytes: (bytes) => {
        if (maxBytes !== null && bytes > maxBytes && bytes > s.headSize)
          throw new CorralError('QUOTA_EXCEEDED', `${s.source} holds at least ${bytes} bytes of files, more than vault '${s.vault}' may hold (quota ${maxBytes}): raise it with 'corral quota set --max-bytes N' (nothing was changed)`, {
            quota: 'maxBytes',
            limit: maxBytes,
            wouldBe: bytes,
          });
      },
      writeAhead: (files) => this.writeAhead(files),
      tally,
    });
    tally.finish();
    return this.commitPlan(s.vault, s.path, s.scan, {
      message: options.message ?? `import ${s.source} into ${s.path}`,
      details: { source: s.source },
      onProgress: undefined,
      total: 0,
    });
  }

  /** Imports a tar stream (ustar, pax, GNU) at `vaultPath` as one commit. Hostile names fail the whole import. */
  async importTar(vault: string, input: NodeJS.ReadableStream | Readable, vaultPath = '/', options: ImportOptions = {}): Promise<ImportResult> {
    const p = normalizePath(vaultPath);
    const v = this.store.getVault(vault);
    const head = this.store.getCommit(v.head);
    const scan = await scanTarStream(input, p, {
      vault,
      quota: v.quota,
      headSize: head.size,
      now: this.store.now(),
      writeAhead: (files) => this.writeAhead(files),
      onProgress: options.onProgress,
    });
    return this.commitPlan(vault, p, scan, {
      message: options.message ?? `import tar into ${p}`,
      details: { source: 'tar' },
      onProgress: undefined,
      total: 0,
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

  /** Builds a plan and puts it at `p` as one commit. */
  private commitPlan(vault: string, p: string, plan: Plan, o: { message: string; details: Record<string, unknown>; onProgress: ProgressCallback | undefined; total: number }): ImportResult {
    const tally = new TransferTally(o.onProgress, o.total || undefined);
    const { commit } = this.store.mutate(this.caller, vault, { op: 'transfer.import', target: p, message: o.message, origin: 'import', details: o.details }, (editor, v) => {
      buildPlan(this.store.objects, plan.root, p, v.quota.maxFileSize, tally);
      tally.finish();
      graftPlan(editor, p, plan.root);
      return null;
    });
    return { path: p, ...tally.counts, commit, skipped: plan.skipped, outside: plan.outside };
  }

  // ---- exports -----------------------------------------------------------------------------

  /**
   * Writes `vaultPath` (a directory's contents, or one file or link) into the host directory
   * `hostDir`, keeping modes, mtimes and symlinks. `hostDir` is created when missing and must be
   * empty unless `force`; nothing is ever written through a symlink on the host.
   */
  exportDir(vault: string, vaultPath: string, hostDir: string, options: ExportOptions = {}): ExportResult {
    const p = normalizePath(vaultPath);
    const { tree, rootEntry, total } = this.exportSource(vault, p, options.ref);
    const dest = resolveHost(hostDir);
    const force = options.force === true;
    const { created, dir: destDir } = ensureHostDir(dest);
    const tally = new TransferTally(options.onProgress, total);

    // Every name is created by path in a directory checked just before (and after) it is opened.
    const writeLeaf = (at: string, e: Entry, existing: boolean, parent: HostDir): void => {
      checkHostDir(parent);
      if (e.kind === 'file') {
        const data = tree.objects.getBlob(e.hash);
        writeHostFile(at, data, e.mode & 0o777, e.mtime, existing, parent);
        tally.file(data.length);
      } else {
        writeHostLink(at, tree.linkTarget(e), e.mtime, existing, parent);
        tally.symlink();
      }
    };

    if (rootEntry.kind !== 'dir') {
      const at = dest + '/' + rootEntry.name;
      const there = lstatSync(at, { throwIfNoEntry: false });
      if (there && !force) throw new CorralError('PATH_EXISTS', `${at} already exists: pass --force to replace it`, { hostPath: at });
      if (there?.isDirectory()) throw new CorralError('IS_A_DIRECTORY', `${at} is a directory on the host; not replacing it with a ${rootEntry.kind}`, { hostPath: at });
      try {
        writeLeaf(at, rootEntry, there !== undefined, destDir);
      } catch (e) {
        throw hostError(e, at);
      }
      tally.finish();
      return { path: p, ...tally.counts, hostPath: at };
    }

    // In a directory Corral created (or found empty) nothing can be in the way, so no checks are needed there.
    const fresh = created || readdirSync(dest).length === 0;
    if (!fresh && !force) throw new CorralError('DIRECTORY_NOT_EMPTY', `${dest} is not empty: export into an empty or new directory, or pass --force to write over its files`, { hostPath: dest });

    const writeDir = (host: HostDir, hash: string, path: string, check: boolean): void => {
      for (const e of tree.objects.getTree(hash)) {
        checkEntryName(e.name, path);
        const at = host.path + '/' + e.name;
        try {
          if (e.kind === 'dir') {
            checkHostDir(host);
            const { made, dir } = makeHostDir(at, check, host);
            writeDir(dir, e.hash, joinPath(path, e.name), check && !made);
            finishHostDir(at, e.mode & 0o777, e.mtime, dir);
            tally.dir();
          } else {
            writeLeaf(at, e, check, host);
          }
        } catch (err) {
          throw hostError(err, at);
        }
      }
    };
    writeDir(destDir, rootEntry.hash, p, !fresh);
    if (created && p !== '/') finishHostDir(dest, rootEntry.mode & 0o777, rootEntry.mtime, destDir);
    tally.finish();
    return { path: p, ...tally.counts, hostPath: dest };
  }

  /** Writes `vaultPath` as a tar stream (names relative to it; a single file by its name) to `output`. */
  async exportTar(vault: string, vaultPath: string, output: Writable | NodeJS.WritableStream, options: TarExportOptions = {}): Promise<ExportResult> {
    const p = normalizePath(vaultPath);
    const { tree, rootEntry, total } = this.exportSource(vault, p, options.ref);
    const tally = new TransferTally(options.onProgress, total);
    const end = options.end ?? (output !== process.stdout && output !== process.stderr);

    await writeTar(output, end, async (add) => {
      const addLeaf = async (name: string, e: Entry): Promise<void> => {
        const mtime = new Date(e.mtime);
        if (e.kind === 'file') {
          const data = tree.objects.getBlob(e.hash);
          await add({ name, type: 'file', mode: e.mode & 0o777, mtime, size: data.length }, data);
          tally.file(data.length);
        } else {
          const linkname = tree.linkTarget(e);
          if (linkname === '') throw new CorralError('STORAGE_CORRUPT', `${name} is a symlink with an empty target; a tar cannot hold it`, { path: name });
          await add({ name, type: 'symlink', mode: 0o777, mtime, linkname });
          tally.symlink();
        }
      };
      const addDir = async (hash: string, prefix: string, path: string): Promise<void> => {
        for (const e of tree.objects.getTree(hash)) {
          checkEntryName(e.name, path);
          const name = prefix + e.name;
          if (e.kind === 'dir') {
            await add({ name, type: 'directory', mode: e.mode & 0o777, mtime: new Date(e.mtime) });
            tally.dir();
            await addDir(e.hash, name + '/', joinPath(path, e.name));
          } else {
            await addLeaf(name, e);
          }
        }
      };
      if (rootEntry.kind === 'dir') await addDir(rootEntry.hash, '', p);
      else await addLeaf(baseName(p), rootEntry);
    });
    tally.finish();
    return { path: p, ...tally.counts };
  }

  /** The committed tree an export reads (the head, or `ref`) and the entry at `p` in it. */
  private exportSource(vault: string, p: string, ref: string | undefined): ExportSource {
    const v = this.store.getVault(vault);
    const commit = ref === undefined ? this.store.getCommit(v.head) : this.store.resolveRef(v, ref);
    const tree = new TreeReader(this.store.objects, commit.tree);
    const rootEntry = tree.mustLstat(p);
    return { tree, rootEntry, total: rootEntry.kind === 'dir' ? (rootEntry.files ?? 0) : 1 };
  }
}

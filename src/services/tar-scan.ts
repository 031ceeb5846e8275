// Planning the import of a tar stream: every entry is checked against the limits as it arrives, so
// a stream that cannot fit fails before it is read to the end. File data is held in the plan, and
// written ahead of the commit whenever enough of it piles up.
import type { Readable } from 'node:stream';
import { CorralError } from '../protocol/errors.ts';
import { MAX_PATH_BYTES, joinPath } from '../protocol/paths.ts';
import type { Quota } from '../store/corral-store.ts';
import { placeInPlan, planDir, pointsOutside, writeAheadBatcher, type PlanDir, type PlanFile } from './import-plan.ts';
import { forEachTarEntry, readTarBody, skipTarBody, tarEntryParts, tarMtime } from './tar-entries.ts';
import { MAX_TAR_BYTES, MAX_TAR_ENTRIES, checkFileSize } from '../runtime/transfer-limits.ts';
import type { OutsideLink, ProgressCallback, SkippedEntry } from './transfer-service.ts';

export interface TarScanOptions {
  /** The vault's name, for messages. */
  vault: string;
  quota: Quota;
  /** Bytes the vault holds now: the stream may replace all of them, but cannot hold more than that plus the quota. */
  headSize: number;
  /** The mtime of directories the stream implies without an entry of their own. */
  now: number;
  /** Writes held file data as blobs and sets each file's `hash` in place of its `data`. */
  writeAhead: (files: PlanFile[]) => void;
  onProgress?: ProgressCallback | undefined;
}

export interface TarScan {
  root: PlanDir;
  skipped: SkippedEntry[];
  outside: OutsideLink[];
}

const encoder = new TextEncoder();

/** Plans the import of the tar stream `input` at the (normalized) vault path `p`. Hostile names fail the whole import. */
export async function scanTarStream(input: NodeJS.ReadableStream | Readable, p: string, o: TarScanOptions): Promise<TarScan> {
  const { now, quota } = o;
  const scan: TarScan = { root: planDir(0o755, now), skipped: [], outside: [] };
  const writeAhead = writeAheadBatcher(o.writeAhead);
  let entries = 0;
  let streamed = 0;

  await forEachTarEntry(input, async (h, body) => {
    if (++entries > MAX_TAR_ENTRIES) throw new CorralError('PAYLOAD_TOO_LARGE', `the tar stream has more than ${MAX_TAR_ENTRIES} entries (nothing was changed)`, { limit: MAX_TAR_ENTRIES });
    const parts = tarEntryParts(h.name, p);
    const path = parts.length ? joinPath(p, parts.join('/')) : p;
    const mtime = tarMtime(h, now);
    const type = h.type ?? 'file';
    if (type === 'file' || type === 'contiguous-file') {
      const size = h.size ?? 0;
      checkFileSize(path, size, quota.maxFileSize);
      streamed += size;
      if (streamed > MAX_TAR_BYTES) throw new CorralError('PAYLOAD_TOO_LARGE', `the tar stream carries more than ${MAX_TAR_BYTES} bytes (nothing was changed)`, { limit: MAX_TAR_BYTES });
      // Cannot fit: even after replacing everything the vault holds, the quota would be passed.
      if (quota.maxBytes !== null && streamed > quota.maxBytes + o.headSize)
        throw new CorralError('QUOTA_EXCEEDED', `the tar stream carries at least ${streamed} bytes of files, more than vault '${o.vault}' may hold (quota ${quota.maxBytes}): raise it with 'corral quota set --max-bytes N' (nothing was changed)`, {
          quota: 'maxBytes',
          limit: quota.maxBytes,
        });
      const data = await readTarBody(body, size, path);
      const node: PlanFile = { kind: 'file', mode: (h.mode ?? 0o644) & 0o777, mtime, size: data.length, data };
      placeInPlan(scan.root, parts, node, p, now);
      writeAhead(node);
    } else {
      await skipTarBody(body);
      if (type === 'directory') {
        placeInPlan(scan.root, parts, planDir((h.mode ?? 0o755) & 0o777, mtime), p, now);
      } else if (type === 'symlink') {
        const target = h.linkname ?? '';
        if (target === '' || target.includes('\0') || encoder.encode(target).length > MAX_PATH_BYTES)
          throw new CorralError('INVALID_PATH', `tar entry ${JSON.stringify(h.name.slice(0, 200))} is a symlink with an empty, over-long or NUL-holding target (nothing was changed)`, { path });
        if (parts.length === 0) throw new CorralError('INVALID_PATH', `tar entry ${JSON.stringify(h.name)} would replace the import root with a symlink (nothing was changed)`, { path });
        if (pointsOutside(parts.length - 1, target)) scan.outside.push({ path, target });
        placeInPlan(scan.root, parts, { kind: 'symlink', mtime, target }, p, now);
      } else if (type === 'link') {
        scan.skipped.push({ path, reason: `hard link to ${h.linkname ?? '?'} (not supported: store a copy or a symlink)` });
      } else {
        scan.skipped.push({ path, reason: `${type} (not a file, directory or symlink)` });
      }
    }
    o.onProgress?.(entries);
  });
  return scan;
}

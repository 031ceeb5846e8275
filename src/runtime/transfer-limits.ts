// The size limits of imports and exports, and the one check every imported file goes through.
import { CorralError } from '../protocol/errors.ts';
import { fileSizeQuotaError } from '../store/tree-editor.ts';

/** SQLite's largest value, and largest row (SQLITE_MAX_LENGTH). */
export const SQLITE_MAX_LENGTH = 1_000_000_000;
/**
 * Largest single file or tar entry. A blob's whole row (hash, size, created_at and the record
 * header besides the data) must fit in SQLITE_MAX_LENGTH, or SQLite fails with SQLITE_TOOBIG.
 */
export const MAX_ENTRY_BYTES = SQLITE_MAX_LENGTH - 1000;
/** Most entries one tar stream may hold. */
export const MAX_TAR_ENTRIES = 2_000_000;
/** Most bytes one tar stream may carry. */
export const MAX_TAR_BYTES = 64 * 1024 ** 3;
/** File data an import holds in memory before writing it to the database ahead of the commit... */
export const WRITE_AHEAD_BYTES = 32 * 1024 * 1024;
/** ...or this many files of it, so that no one write-ahead transaction runs long. */
export const WRITE_AHEAD_FILES = 4096;

export function entryTooLarge(path: string, size: number): CorralError {
  return new CorralError('PAYLOAD_TOO_LARGE', `${path} is ${size} bytes; Corral stores files of at most ${MAX_ENTRY_BYTES} bytes (nothing was changed)`, { path, size, limit: MAX_ENTRY_BYTES });
}

/** Fails when a file of `size` bytes is more than Corral stores or more than the vault's max file size. */
export function checkFileSize(path: string, size: number, maxFileSize: number | null): void {
  if (size > MAX_ENTRY_BYTES) throw entryTooLarge(path, size);
  if (maxFileSize !== null && size > maxFileSize) throw fileSizeQuotaError(path, size, maxFileSize);
}

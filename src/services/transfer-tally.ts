// What a transfer has moved so far, with progress reported every few files and links.
import type { ProgressCallback, TransferCounts } from './transfer-service.ts';

const PROGRESS_EVERY = 64;

export class TransferTally {
  readonly counts: TransferCounts = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  private done = 0;
  private readonly report: ProgressCallback | undefined;
  private readonly total: number | undefined;

  constructor(report: ProgressCallback | undefined, total: number | undefined) {
    this.report = report;
    this.total = total;
  }

  file(bytes: number): void {
    this.counts.files++;
    this.counts.bytes += bytes;
    this.tick();
  }

  symlink(): void {
    this.counts.symlinks++;
    this.tick();
  }

  dir(): void {
    this.counts.dirs++;
  }

  /** The last report, with the final count. */
  finish(): void {
    this.report?.(this.done, this.total);
  }

  private tick(): void {
    if (++this.done % PROGRESS_EVERY === 0) this.report?.(this.done, this.total);
  }
}

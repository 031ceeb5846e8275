// Keeps a command's output within a cap: the first half of the cap and the last half, so a huge
// output still shows how it started and how it ended. Binary-safe: bytes in, bytes out.

export class OutputCapture {
  private readonly headCap: number;
  private readonly tailCap: number;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  /** Every byte the stream produced, kept or not. */
  total = 0;

  constructor(cap: number) {
    this.headCap = Math.ceil(cap / 2);
    this.tailCap = cap - this.headCap;
  }

  get truncated(): boolean {
    return this.total > this.headCap + this.tailCap;
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.headBytes < this.headCap) {
      const take = Math.min(chunk.length, this.headCap - this.headBytes);
      this.head.push(chunk.subarray(0, take));
      this.headBytes += take;
      chunk = chunk.subarray(take);
    }
    if (chunk.length === 0 || this.tailCap === 0) return;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    while (this.tailBytes - this.tail[0]!.length >= this.tailCap) this.tailBytes -= this.tail.shift()!.length;
  }

  /** The kept bytes; when truncated, head and tail are joined by a marker line naming the bytes left out. */
  bytes(): Buffer {
    let tail = Buffer.concat(this.tail);
    if (tail.length > this.tailCap) tail = tail.subarray(tail.length - this.tailCap);
    const head = Buffer.concat(this.head);
    if (!this.truncated) return Buffer.concat([head, tail]);
    const dropped = this.total - head.length - tail.length;
    return Buffer.concat([head, Buffer.from(`\n[corral: ${dropped} bytes of output left out]\n`), tail]);
  }
}

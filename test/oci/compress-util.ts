/** What the compression tests share: byte streams from buffers and back. */

/** Every chunk of `it`, joined. */
export async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

/** The buffer fed in chunks of `chunk` bytes. */
export async function* chunked(b: Buffer, chunk: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += chunk) yield b.subarray(i, i + chunk);
}

/** An in-memory Store for tests. Copies bytes in and out so callers cannot change stored objects. */
import { LifeboatError } from '../util/errors.js';
import { assertValidName, type PutOptions, type Store, type StoreStat } from './store.js';

export class MemoryStore implements Store {
  readonly location = 'memory';
  private readonly objects = new Map<string, Buffer>();

  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertValidName(name);
    if (options.ifAbsent && this.objects.has(name)) throw new LifeboatError('conflict', `The object ${name} already exists.`);
    this.objects.set(name, Buffer.from(data));
  }

  async get(name: string, offset = 0, length?: number): Promise<Uint8Array> {
    assertValidName(name);
    const o = this.objects.get(name);
    if (!o) throw new LifeboatError('not-found', `The object ${name} does not exist.`);
    const end = length === undefined ? o.length : offset + length;
    if (offset < 0 || end > o.length || end < offset) throw new LifeboatError('corrupt', `The object ${name} is shorter (${o.length} bytes) than the range asked for (${offset}–${end}).`);
    return Buffer.from(o.subarray(offset, end));
  }

  async stat(name: string): Promise<StoreStat | undefined> {
    assertValidName(name);
    const o = this.objects.get(name);
    return o ? { name, size: o.length } : undefined;
  }

  async *list(prefix: string): AsyncIterable<StoreStat> {
    for (const [name, o] of [...this.objects]) if (name.startsWith(prefix)) yield { name, size: o.length };
  }

  async delete(name: string): Promise<void> {
    assertValidName(name);
    this.objects.delete(name);
  }

  async close(): Promise<void> {}
}

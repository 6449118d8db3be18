/**
 * An in-memory Store, for tests and for throwaway work (the backup estimate's trial run, which
 * keeps no pack contents: `dropPacks`). Copies bytes in and out so callers cannot change stored objects
 * (a test that mutates a buffer after put, or a returned buffer, sees what a real backend would).
 * Every operation checks and changes the map in one synchronous step, so concurrent create-only
 * puts of one name behave as on a real backend: exactly one wins.
 */
import { LifeboatError } from '../util/errors.js';
import { assertValidPrefix, byteRange } from './names.js';
import { assertValidName, collectingWriter, type ObjectWriter, type OperationOptions, type PutOptions, type Store, type StoreProperties, type StoreStat } from './store.js';

export class MemoryStore implements Store {
  readonly location = 'memory';
  readonly properties: StoreProperties = { uploadsInFlight: 1 };
  private readonly objects = new Map<string, Uint8Array>();

  /** With dropPacks, pack files (data/…) are kept empty: only their names are remembered. */
  constructor(private readonly options: { readonly dropPacks?: boolean } = {}) {}

  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertValidName(name);
    options.signal?.throwIfAborted();
    if (options.ifAbsent && this.objects.has(name)) {
      throw new LifeboatError('conflict', `The repository file ${name} already exists, so Lifeboat left it as it was.`);
    }
    this.objects.set(name, this.options.dropPacks && name.startsWith('data/') ? new Uint8Array(0) : new Uint8Array(data));
  }

  createWriter(options: OperationOptions = {}): ObjectWriter {
    return collectingWriter((name, data, o) => this.put(name, data, o), options.signal);
  }

  async get(name: string, offset = 0, length?: number, options: OperationOptions = {}): Promise<Uint8Array> {
    assertValidName(name);
    options.signal?.throwIfAborted();
    const o = this.objects.get(name);
    if (!o) throw new LifeboatError('not-found', `The repository file ${name} does not exist in memory.`);
    const [start, end] = byteRange(name, o.length, offset, length);
    return Buffer.from(o.subarray(start, end));
  }

  async stat(name: string, options: OperationOptions = {}): Promise<StoreStat | undefined> {
    assertValidName(name);
    options.signal?.throwIfAborted();
    const o = this.objects.get(name);
    return o ? { name, size: o.length } : undefined;
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<StoreStat> {
    assertValidPrefix(prefix);
    // A copy of the keys, so puts and deletes during the walk do not disturb it.
    for (const name of [...this.objects.keys()]) {
      options.signal?.throwIfAborted();
      const o = this.objects.get(name);
      if (o && name.startsWith(prefix)) yield { name, size: o.length };
    }
  }

  async delete(name: string, options: OperationOptions = {}): Promise<void> {
    assertValidName(name);
    options.signal?.throwIfAborted();
    this.objects.delete(name);
  }

  async close(): Promise<void> {}
}

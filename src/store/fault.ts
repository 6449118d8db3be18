/**
 * FaultStore wraps another store and injects the failures crash-safety tests need: a process that
 * dies at the Nth put, a drive that fills up, unreadable and damaged objects. It counts every call,
 * so a test can also assert that something was (not) read or written.
 *
 * The injected faults look like the real ones where a real one exists (LifeboatError 'no-space',
 * 'io'); the "process died" failure is an InjectedCrash, which no real backend throws, so a test can
 * tell it apart from a genuine error. Transient faults (a dropped connection: a StoreError with
 * `transient` set) are for the tests of the retry wrapper.
 */
import { LifeboatError } from '../util/errors.js';
import { assertValidName, collectingWriter, StoreError, type ObjectWriter, type OperationOptions, type PutOptions, type Store, type StoreProperties, type StoreStat } from './store.js';

/** Thrown by a put (or, with crashAtChange, a delete) that FaultStore pretends the process died in. */
export class InjectedCrash extends Error {
  constructor(readonly putNumber: number, readonly objectName: string) {
    super(`injected crash at write #${putNumber} (${objectName})`);
    this.name = 'InjectedCrash';
  }
}

export interface FaultOptions {
  /**
   * The 1-based number of the first put that fails with InjectedCrash; every later put fails too,
   * as if the process had died there. Unset: no crash.
   */
  readonly crashAtPut?: number;
  /**
   * Whether the crashing put reaches the inner store before it throws ("died after the write,
   * before it was acknowledged"). Both outcomes are allowed by the Store contract. Default false.
   */
  readonly crashedPutLands?: boolean;
  /**
   * Like crashAtPut, but counting puts and deletes together (a prune deletes as much as it writes):
   * the Nth change and every later one fail with InjectedCrash. `crashedPutLands` says whether the
   * crashing change (put or delete) reaches the inner store.
   */
  readonly crashAtChange?: number;
  /**
   * The drive holds this many bytes of puts: a put that would take the total over it fails with
   * LifeboatError('no-space') and stores nothing. Counted over puts that reached the inner store
   * since the wrapper was made; deletes do not give space back. Unset: unlimited.
   */
  readonly noSpaceAfterBytes?: number;
  /** Names whose every get fails with LifeboatError('io'), like an unreadable sector. */
  readonly failGets?: Iterable<string>;
  /**
   * Names whose gets return damaged bytes: the lowest bit of the first byte returned and of every
   * byte at a multiple of 512 in the object is flipped, so every non-empty read is damaged and
   * ranged reads agree with whole reads. The stored object itself is untouched.
   */
  readonly corruptGets?: Iterable<string>;
  /**
   * The next this many calls (put, get, stat, list, delete; a writer's commit is a put) fail with a
   * transient StoreError('io') before reaching the inner store, as calls over a dropped connection
   * would. Unset: none.
   */
  readonly transientFailures?: number;
}

export interface OperationCounts {
  put: number;
  get: number;
  stat: number;
  list: number;
  delete: number;
  close: number;
}

export class FaultStore implements Store {
  readonly location: string;
  readonly properties: StoreProperties;
  /** Calls so far, failed ones included. */
  readonly counts: OperationCounts = { put: 0, get: 0, stat: 0, list: 0, delete: 0, close: 0 };
  /** How many failures were injected so far. */
  injected = 0;
  /** Bytes of puts that reached the inner store (what noSpaceAfterBytes is measured against). */
  bytesStored = 0;
  /** The fault settings; tests may change them between operations. */
  crashAtPut: number | undefined;
  crashedPutLands: boolean;
  crashAtChange: number | undefined;
  /** Puts and deletes so far (what crashAtChange counts). */
  changes = 0;
  noSpaceAfterBytes: number | undefined;
  readonly failGets: Set<string>;
  readonly corruptGets: Set<string>;
  /** Calls still to fail transiently (see FaultOptions.transientFailures). */
  transientFailures: number;

  constructor(readonly inner: Store, options: FaultOptions = {}) {
    this.location = inner.location;
    this.properties = inner.properties;
    this.transientFailures = options.transientFailures ?? 0;
    this.crashAtPut = options.crashAtPut;
    this.crashedPutLands = options.crashedPutLands ?? false;
    this.crashAtChange = options.crashAtChange;
    this.noSpaceAfterBytes = options.noSpaceAfterBytes;
    this.failGets = new Set(options.failGets ?? []);
    this.corruptGets = new Set(options.corruptGets ?? []);
  }

  /** True once a crash was injected: the "process" is dead and every later put fails. */
  get crashed(): boolean {
    return (this.crashAtPut !== undefined && this.counts.put >= this.crashAtPut) || (this.crashAtChange !== undefined && this.changes >= this.crashAtChange);
  }

  /** Throws the planned transient failure, if one is left. */
  private flaky(doing: string, name: string): void {
    if (this.transientFailures <= 0) return;
    this.transientFailures--;
    this.injected++;
    throw new StoreError('io', `Lifeboat could not ${doing} ${name}: the connection to ${this.location} was lost (injected). Check the network and try again.`, true);
  }

  /** Counts a change; throws InjectedCrash (after `land` if the crashing change lands) once dead. */
  private async change(name: string, land: () => Promise<void>): Promise<boolean> {
    const c = ++this.changes;
    if (this.crashAtChange === undefined || c < this.crashAtChange) return false;
    this.injected++;
    if (c === this.crashAtChange && this.crashedPutLands) await land();
    throw new InjectedCrash(c, name);
  }

  async put(name: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    assertValidName(name);
    if (this.transientFailures > 0) {
      this.counts.put++;
      this.flaky('save', name);
    }
    await this.change(name, () => this.store(name, data, options));
    const n = ++this.counts.put;
    if (this.crashAtPut !== undefined && n >= this.crashAtPut) {
      this.injected++;
      if (n === this.crashAtPut && this.crashedPutLands) await this.store(name, data, options);
      throw new InjectedCrash(n, name);
    }
    if (this.noSpaceAfterBytes !== undefined && this.bytesStored + data.length > this.noSpaceAfterBytes) {
      this.injected++;
      throw new LifeboatError(
        'no-space',
        `The destination is full (injected): Lifeboat could not save ${name} (${data.length} bytes). Free some space or choose another drive.`,
      );
    }
    await this.store(name, data, options);
  }

  private async store(name: string, data: Uint8Array, options: PutOptions | undefined): Promise<void> {
    await (options === undefined ? this.inner.put(name, data) : this.inner.put(name, data, options));
    this.bytesStored += data.length;
  }

  createWriter(options: OperationOptions = {}): ObjectWriter {
    return collectingWriter((name, data, o) => this.put(name, data, o), options.signal);
  }

  async get(name: string, offset?: number, length?: number, options?: OperationOptions): Promise<Uint8Array> {
    assertValidName(name);
    this.counts.get++;
    this.flaky('read', name);
    if (this.failGets.has(name)) {
      this.injected++;
      throw new LifeboatError('io', `Lifeboat could not read ${name} (injected read error). Check that the drive is connected and healthy.`);
    }
    const bytes = await this.inner.get(name, offset, length, options);
    if (!this.corruptGets.has(name) || bytes.length === 0) return bytes;
    this.injected++;
    const out = new Uint8Array(bytes);
    const start = offset ?? 0;
    out[0]! ^= 1;
    for (let i = (512 - (start % 512)) % 512 || 512; i < out.length; i += 512) out[i]! ^= 1;
    return out;
  }

  async stat(name: string, options?: OperationOptions): Promise<StoreStat | undefined> {
    this.counts.stat++;
    this.flaky('look at', name);
    return this.inner.stat(name, options);
  }

  list(prefix: string, options?: OperationOptions): AsyncIterable<StoreStat> {
    this.counts.list++;
    try {
      this.flaky('list', prefix === '' ? 'the repository' : prefix);
    } catch (e) {
      return (async function* () {
        yield* [];
        throw e;
      })();
    }
    return this.inner.list(prefix, options);
  }

  async delete(name: string, options?: OperationOptions): Promise<void> {
    this.counts.delete++;
    this.flaky('delete', name);
    await this.change(name, () => this.inner.delete(name, options));
    return this.inner.delete(name, options);
  }

  async close(): Promise<void> {
    this.counts.close++;
    return this.inner.close();
  }
}

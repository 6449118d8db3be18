/**
 * The seeded damage suite (issue P14): for each kind of object of a small repository (pack data,
 * pack header, pack trailer, pack trailer with the index naming the pack lost too, index, snapshot,
 * tree, key, config, config copy, pin, lock), flip a byte, zero a
 * 4 KiB sector, truncate, delete. For each case it asserts exactly which files of which snapshots
 * are lost (computed from the bytes the damage touched: the smallest set the format allows today),
 * that check names the damaged object and every snapshot that lost something, that everything
 * else reads back byte-identical without running repair first (under the shared lock a restore
 * takes), and that repair (config, index, then snapshots, under the exclusive lock the CLI takes)
 * never makes less restorable nor opens with fewer secrets, that no lock file (damaged, or left by
 * a killed backup) stops a restore or a repair, and that a damaged snapshot file or config is
 * rebuilt by it. Positions come from a fixed seed (LIFEBOAT_DAMAGE_SEED
 * overrides it); the whole suite runs in memory in a few seconds.
 */
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { prng } from '../util/testing.js';
import { LifeboatError } from '../util/errors.js';
import { MemoryStore } from '../store/memory.js';
import type { Store } from '../store/store.js';
import { checkRepository } from './check.js';
import { sha256 } from './crypto.js';
import { AAD, sealFile } from './envelope-file.js';
import { newLockInfo } from './lock.js';
import { Names, toHex, type Hex } from './ids.js';
import { backupFiles, fixtureRepairer, fixtureWalkers, PASSWORD } from './maintenance-testing.js';
import { PACK_TRAILER_BYTES } from './pack.js';
import { loadPins, pinSnapshot } from './pins.js';
import { repairConfig, repairIndex, repairSnapshots } from './repair.js';
import { Repository } from './repository.js';

const SEED = Number(process.env['LIFEBOAT_DAMAGE_SEED'] ?? 1414);
const SECTOR = 4096;


const random = prng(SEED); // seeded: every run damages the same bytes
function bytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (random() * 256) | 0;
  return b;
}

type Snap = 'A' | 'B' | 'C';
interface Blob {
  readonly id: Hex;
  readonly pack: string;
  readonly offset: number;
  readonly length: number;
}
interface Base {
  readonly store: MemoryStore;
  readonly recoveryKey: string;
  readonly snaps: Record<Snap, Hex>;
  /** `A:/data/a` → the file's bytes. */
  readonly files: Map<string, Buffer>;
  /** `A:/data/a` → its blobs; `A:` → the root tree blob. */
  readonly blobs: Map<string, Blob[]>;
  readonly objects: { dataB: string; treeB: string; indexB: string; snapshotB: string; key: string; pin: string; lock: string };
}

/**
 * A holds /data/a (two chunks) and /data/common; B holds /data/b (three chunks, so a 4 KiB sector
 * is less than the pack) and the same /data/common (stored once, in A's pack); C holds /data/c.
 * Each backup writes one data pack, one tree pack and one index file.
 */
async function build(): Promise<Base> {
  const store = new MemoryStore();
  const { repo, recoveryKey } = await Repository.init(store, PASSWORD);
  await repo.loadIndex();
  const common = bytes(3000);
  const chunks: Record<string, Buffer[]> = { 'A:/data/a': [bytes(2000), bytes(2000)], 'A:/data/common': [common], 'B:/data/b': [bytes(5000), bytes(5000), bytes(5000)], 'B:/data/common': [common], 'C:/data/c': [bytes(1500)] };
  const snaps = {} as Record<Snap, Hex>;
  const indexNames = async () => new Set(await names(store, 'index/'));
  let indexB = '';
  for (const [s, time] of [['A', '2024-01-01T00:00:00Z'], ['B', '2024-01-02T00:00:00Z'], ['C', '2024-01-03T00:00:00Z']] as const) {
    const before = await indexNames();
    const files = Object.fromEntries(Object.entries(chunks).filter(([k]) => k.startsWith(`${s}:`)).map(([k, v]) => [k.slice(2), v]));
    snaps[s] = await backupFiles(repo, files, time);
    if (s === 'B') indexB = [...(await indexNames())].find((n) => !before.has(n))!;
  }
  const where = (id: Buffer): Blob => {
    const loc = repo.index.get(id)!;
    return { id: toHex(id), pack: Names.pack(loc.packId), offset: loc.offset, length: loc.length };
  };
  const files = new Map<string, Buffer>();
  const blobs = new Map<string, Blob[]>();
  for (const [k, v] of Object.entries(chunks)) {
    files.set(k, Buffer.concat(v));
    blobs.set(k, v.map((c) => where(repo.blobId(c))));
  }
  for (const s of ['A', 'B', 'C'] as const) blobs.set(`${s}:`, [where(Buffer.from((await repo.loadSnapshot(snaps[s])).root, 'hex'))]);
  await pinSnapshot(repo, snaps.A, 'keep');
  // The lock of a backup that was killed (its process is gone): it must block nothing, damaged or not.
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  const lock = await sealFile(repo.codec, repo.keys.encKey, AAD.lock, Buffer.from(JSON.stringify({ ...newLockInfo(false, 'a backup that was killed'), pid: dead })));
  await store.put(Names.lock(toHex(sha256(lock))), lock);
  const key = (await names(store, 'keys/'))[0]!;
  return {
    store,
    recoveryKey,
    snaps,
    files,
    blobs,
    objects: { dataB: blobs.get('B:/data/b')![0]!.pack, treeB: blobs.get('B:')![0]!.pack, indexB, snapshotB: Names.snapshot(snaps.B), key, pin: (await names(store, 'pins/'))[0]!, lock: (await names(store, 'locks/'))[0]! },
  };
}

async function names(store: Store, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) out.push(o.name);
  return out.sort();
}

async function copy(from: MemoryStore): Promise<MemoryStore> {
  const to = new MemoryStore();
  for (const n of [Names.config, Names.configCopy]) await to.put(n, await from.get(n));
  for (const prefix of ['keys/', 'data/', 'index/', 'snapshots/', 'pins/', 'locks/']) for (const n of await names(from, prefix)) await to.put(n, await from.get(n));
  return to;
}

/** Opens with the password, or with the recovery key when the password's key slot is damaged. */
async function open(base: Base, store: Store): Promise<Repository | undefined> {
  for (const secret of [PASSWORD, base.recoveryKey]) {
    try {
      return await Repository.open(store, secret);
    } catch (e) {
      if (!(e instanceof LifeboatError)) throw e;
    }
  }
  return undefined;
}

/** Which secrets open the repository (a damaged key slot loses its own secret, nothing else). */
async function openers(base: Base, store: Store): Promise<string[]> {
  const out: string[] = [];
  for (const [name, secret] of [['password', PASSWORD], ['recovery key', base.recoveryKey]] as const) {
    if (await Repository.open(store, secret).then(() => true, () => false)) out.push(name);
  }
  return out;
}

/** Every `S:path` that reads back byte-identical from snapshot S (by its original id), before any repair. */
async function restorable(base: Base, store: Store): Promise<Set<string>> {
  const ok = new Set<string>();
  const repo = await open(base, store);
  if (!repo) return ok;
  repo.onWarning = () => undefined;
  await repo.lock(false, 'restore', { reading: true }); // as restore does: no lock, damaged or stale, may stop it
  await repo.loadIndex();
  for (const s of ['A', 'B', 'C'] as const) {
    try {
      const snap = await repo.loadSnapshot(base.snaps[s]);
      const tree = JSON.parse(Buffer.from(await repo.loadBlob(Buffer.from(snap.root, 'hex'))).toString('utf8')) as { files: { path: string; blobs: Hex[] }[] };
      for (const f of tree.files) {
        try {
          const parts: Uint8Array[] = [];
          for (const b of f.blobs) parts.push(await repo.loadBlob(Buffer.from(b, 'hex')));
          if (Buffer.concat(parts).equals(base.files.get(`${s}:${f.path}`)!)) ok.add(`${s}:${f.path}`);
        } catch (e) {
          if (!(e instanceof LifeboatError)) throw e;
        }
      }
    } catch (e) {
      if (!(e instanceof LifeboatError)) throw e;
    }
  }
  await repo.unlockAll();
  return ok;
}

type Kind = 'pack data' | 'pack header' | 'pack trailer' | 'pack end, index lost' | 'index' | 'snapshot' | 'tree' | 'key' | 'config' | 'config copy' | 'pin' | 'lock';
type Damage = 'flip' | 'zero sector' | 'truncate' | 'delete';

/** The object a kind damages, and the byte range [from, to) the damage falls in. */
function target(base: Base, kind: Kind, size: (name: string) => number): { name: string; from: number; to: number } {
  const o = base.objects;
  const whole = (name: string) => ({ name, from: 0, to: size(name) });
  switch (kind) {
    case 'pack data': {
      const bs = base.blobs.get('B:/data/b')!;
      return { name: o.dataB, from: 0, to: bs.reduce((m, b) => Math.max(m, b.offset + b.length), 0) };
    }
    case 'pack header': {
      const bs = base.blobs.get('B:/data/b')!;
      return { name: o.dataB, from: bs.reduce((m, b) => Math.max(m, b.offset + b.length), 0), to: size(o.dataB) - PACK_TRAILER_BYTES };
    }
    case 'pack trailer':
    case 'pack end, index lost':
      return { name: o.dataB, from: size(o.dataB) - PACK_TRAILER_BYTES, to: size(o.dataB) };
    case 'index':
      return whole(o.indexB);
    case 'snapshot':
      return whole(o.snapshotB);
    case 'tree': {
      const root = base.blobs.get('B:')![0]!;
      return { name: o.treeB, from: root.offset, to: root.offset + root.length };
    }
    case 'key':
      return whole(o.key);
    case 'config':
      return whole(Names.config);
    case 'config copy':
      return whole(Names.configCopy);
    case 'pin':
      return whole(o.pin);
    case 'lock':
      return whole(o.lock);
  }
}

/** Applies the damage; returns the bytes [from, to) it destroyed (to = Infinity for a cut or a delete). */
async function damage(store: MemoryStore, t: { name: string; from: number; to: number }, how: Damage): Promise<{ from: number; to: number }> {
  const at = t.from + Math.floor(random() * (t.to - t.from));
  const b = Buffer.from(await store.get(t.name));
  await store.delete(t.name);
  if (how === 'delete') return { from: 0, to: Infinity };
  if (how === 'truncate') {
    await store.put(t.name, b.subarray(0, at));
    return { from: at, to: Infinity };
  }
  if (how === 'flip') {
    b[at]! ^= 1 << Math.floor(random() * 8);
    await store.put(t.name, b);
    return { from: at, to: at + 1 };
  }
  const from = at - (at % SECTOR);
  b.fill(0, from, Math.min(b.length, from + SECTOR));
  await store.put(t.name, b);
  return { from, to: from + SECTOR };
}

/** What the damage costs at the least: the files with a blob in the destroyed bytes, or the whole snapshot. */
function expectedLost(base: Base, kind: Kind, name: string, hit: { from: number; to: number }): Set<string> {
  const all = [...base.files.keys()];
  const ofSnapshot = (s: Snap) => all.filter((k) => k.startsWith(`${s}:`));
  switch (kind) {
    case 'pack data':
    case 'pack header':
    case 'pack trailer':
    case 'tree': {
      const lost = new Set<string>();
      for (const [k, bs] of base.blobs) {
        if (!bs.some((b) => b.pack === name && b.offset < hit.to && hit.from < b.offset + b.length)) continue;
        for (const f of k.endsWith(':') ? ofSnapshot(k[0] as Snap) : [k]) lost.add(f);
      }
      return lost;
    }
    case 'pack end, index lost':
      // Nothing names the pack's blobs any more until "repair index" finds them by scanning it.
      return expectedLost(base, 'pack trailer', name, { from: 0, to: Infinity });
    case 'snapshot':
      // Lost until "repair snapshots" rebuilds the file from its copy in the packs (asserted below);
      // a deleted snapshot file stays deleted (forget deletes them too).
      return new Set(ofSnapshot('B'));
    default:
      return new Set(); // index, key (the recovery key opens), config (its copy opens), pin, lock: nothing is lost
  }
}

const KINDS: Kind[] = ['pack data', 'pack header', 'pack trailer', 'pack end, index lost', 'index', 'snapshot', 'tree', 'key', 'config', 'config copy', 'pin', 'lock'];
const DAMAGES: Damage[] = ['flip', 'zero sector', 'truncate', 'delete'];

test(`seeded damage suite (seed ${SEED}): exactly the damaged data is lost, check names it, the rest restores, repair never loses more`, async () => {
  const base = await build();
  const everything = new Set(base.files.keys());
  assert.deepEqual(await restorable(base, await copy(base.store)), everything); // on a copy: a restore removes the stale lock
  const sizes = new Map<string, number>();
  for (const n of [Names.config, Names.configCopy, ...Object.values(base.objects)]) sizes.set(n, (await base.store.stat(n))!.size);
  for (const kind of KINDS) {
    for (const how of DAMAGES) {
      const label = `${kind}, ${how}`;
      const store = await copy(base.store);
      const t = target(base, kind, (n) => sizes.get(n)!);
      const hit = await damage(store, t, how);
      if (kind === 'pack end, index lost') await store.delete(base.objects.indexB);
      const lost = expectedLost(base, kind, t.name, hit);
      const ok = await restorable(base, store);
      assert.deepEqual([...everything].filter((f) => !ok.has(f)).sort(), [...lost].sort(), `${label}: lost files`);

      const warnings: string[] = [];
      const repo = await Repository.open(store, PASSWORD, { onWarning: (m) => warnings.push(m) }).catch(() => open(base, store));
      assert.ok(repo, `${label}: the repository opens`);
      if (kind === 'config') assert.equal(warnings.filter((w) => w.includes(Names.configCopy)).length, 1, `${label}: one warning says the copy is used: ${JSON.stringify(warnings)}`);
      if (kind === 'config copy') assert.deepEqual(warnings, [], `${label}: a damaged copy costs no warning on open`);
      const report = await checkRepository(repo, { readData: true, walkers: fixtureWalkers });
      const named = new Set([...report.errors, ...report.warnings].map((p) => p.file));
      if (how !== 'delete' || kind === 'config' || kind === 'config copy') assert.ok(named.has(t.name), `${label}: check names ${t.name}: ${JSON.stringify(report)}`);
      for (const s of new Set([...lost].map((f) => f[0] as Snap))) {
        if (kind === 'snapshot' && how === 'delete') continue; // nothing is left to name
        assert.ok(report.errors.some((e) => e.file === Names.snapshot(base.snaps[s])), `${label}: check names snapshot ${s}: ${JSON.stringify(report.errors)}`);
      }
      if (lost.size === 0 && kind !== 'key' && kind !== 'lock' && !((kind === 'pin' || kind === 'index' || kind === 'config copy') && how === 'delete')) {
        assert.ok(report.errors.length > 0, `${label}: check fails`);
      }
      if (kind === 'pin') assert.ok((await loadPins(repo)).has(base.snaps.A) === (how !== 'delete'), `${label}: a damaged pin still protects its snapshot`);

      // Repair never makes less restorable (the original snapshots stay; repaired ones are added),
      // nor opens with fewer secrets; it runs under an exclusive lock, as the CLI's does, which no
      // lock file, damaged or left by a killed backup, may stop.
      const secrets = await openers(base, store);
      assert.ok(secrets.length >= (kind === 'key' ? 1 : 2), `${label}: the repository opens with ${JSON.stringify(secrets)}`);
      const fixing = (await open(base, store))!;
      await fixing.lock(true, 'repair');
      await repairConfig(fixing);
      await repairIndex(fixing);
      await fixing.unlockAll();
      const fixingSnapshots = (await open(base, store))!;
      await fixingSnapshots.lock(true, 'repair snapshots');
      await repairSnapshots(fixingSnapshots, { walkers: fixtureWalkers, repairers: { files: fixtureRepairer } });
      await fixingSnapshots.unlockAll();
      const after = await restorable(base, store);
      assert.deepEqual([...ok].filter((f) => !after.has(f)), [], `${label}: repair lost nothing readable`);
      assert.deepEqual(await openers(base, store), secrets, `${label}: repair keeps every secret that opened the repository`);
      if (kind === 'lock' && how !== 'delete') {
        assert.equal((await names(store, 'locks/')).length, 1, `${label}: the damaged lock is left for "unlock" (it blocks nothing)`);
        assert.equal(await (await open(base, store))!.removeLocks(false), 1, `${label}: "unlock" removes the damaged lock`);
      }
      if (kind === 'config' || kind === 'config copy') {
        for (const n of [Names.config, Names.configCopy]) assert.ok(Buffer.from(await store.get(n)).equals(await base.store.get(n)), `${label}: repair config writes ${n} again`);
      }
      if (kind === 'pack end, index lost') {
        const gone = expectedLost(base, 'pack trailer', t.name, hit);
        assert.deepEqual(after, new Set([...everything].filter((f) => !gone.has(f))), `${label}: repair index finds every intact blob of the pack by scanning it`);
      }
      if (kind === 'snapshot' && how !== 'delete') assert.deepEqual(after, everything, `${label}: repair snapshots rebuilds the snapshot file from its copy`);
    }
  }
});

/**
 * The rescue program: a plain question-and-answer dialogue on a text screen (a serial console
 * works too) for a computer that no longer starts. It finds the repositories on the attached
 * drives, opens one with its password or recovery key, lists the drive images, lists the drives
 * one can go onto (refusing the backup drive and drives too small), asks for a confirmation that
 * names the drive's model and size, restores with progress and time left, verifies, and offers to
 * restart. It also copies single files out of a backup onto a USB drive. Every step is a job
 * (jobs/rescue.ts, jobs/image.ts, jobs/files.ts, jobs/browse.ts); this file only talks.
 */
import { createInterface, type Interface } from 'node:readline';
import { Writable } from 'node:stream';
import type { Repository } from '../repo/repository.js';
import { LifeboatError, formatBytes } from '../util/errors.js';
import { Estimator } from '../util/progress.js';
import type { JobEvent } from '../jobs/events.js';
import { openRepositoryAt } from '../jobs/open.js';
import { restoreImageFiles, restoreImageSnapshot } from '../jobs/image.js';
import { restoreFiles } from '../jobs/files.js';
import { treeOf, type OpenedTree } from '../jobs/browse.js';
import { checkTargets, listImages, type CopyDestination, type FoundRepository, type TargetChoice } from '../jobs/rescue.js';
import { nodeName, resolve, type TreeNode } from '../tree/tree.js';
import { localTime } from './format.js';
import { formatDuration, progressLine } from './progress.js';

/** What the dialogue works on: injected, so tests give folders and files where the kit gives drives. */
export interface RescueEnvironment {
  /** The repositories on the attached drives (the kit mounts and searches every partition). */
  findRepositories(): Promise<FoundRepository[]>;
  /** Drives (or, in tests, files) an image could be restored onto. */
  targets(): Promise<string[]>;
  /** Where files can be copied: each choice gives a folder, mounting a USB drive if needed. */
  copyDestinations(repos: readonly FoundRepository[]): Promise<{ label: string; open(): Promise<CopyDestination> }[]>;
  /** Unmounts a destination the kit mounted (so the stick can be pulled out). */
  closeDestination(d: CopyDestination): Promise<void>;
}

/** How the dialogue ended: the kit's init restarts the computer on 'restart' and opens a shell on 'shell'. */
export type RescueOutcome = 'restart' | 'shell' | 'quit';

/** Reads answers a line at a time, whether typed on a terminal or piped in (lines that arrive early are kept). */
class Answers {
  private readonly lines: string[] = [];
  private waiting: ((l: string | undefined) => void) | undefined;
  private ended = false;
  private muted = false;
  readonly rl: Interface;

  constructor(input: NodeJS.ReadableStream, private readonly output: NodeJS.WritableStream, terminal: boolean) {
    const out = output;
    const sink = new Writable({
      write: (chunk: Buffer, _e, cb) => {
        if (!this.muted) out.write(chunk);
        cb();
      },
    });
    this.rl = createInterface({ input, output: sink, terminal });
    this.rl.on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        w(l);
      } else this.lines.push(l);
    });
    this.rl.on('close', () => {
      this.ended = true;
      this.waiting?.(undefined);
    });
  }

  async ask(prompt: string, hidden = false): Promise<string> {
    this.output.write(prompt);
    this.muted = hidden;
    try {
      const l = this.lines.shift() ?? (this.ended ? undefined : await new Promise<string | undefined>((res) => (this.waiting = res)));
      if (l === undefined) throw new EndOfInput();
      return l.trim();
    } finally {
      if (hidden) this.output.write('\n');
      this.muted = false;
    }
  }

  close(): void {
    this.rl.close();
  }
}

class EndOfInput extends Error {}

export class RescueDialogue {
  private readonly answers: Answers;
  private readonly tty: boolean;

  constructor(
    private readonly env: RescueEnvironment,
    input: NodeJS.ReadableStream,
    private readonly output: NodeJS.WritableStream,
  ) {
    this.tty = (output as NodeJS.WriteStream).isTTY === true && (input as NodeJS.ReadStream).isTTY === true;
    this.answers = new Answers(input, output, this.tty);
  }

  private say(text = ''): void {
    this.output.write(text + '\n');
  }

  /** A number from 1 to `n` (or one of `extra`'s letters); asks again on anything else. */
  private async choose(prompt: string, n: number, extra: readonly string[] = []): Promise<number | string> {
    for (;;) {
      const a = (await this.answers.ask(`${prompt} `)).toLowerCase();
      if (a === '' && n === 1 && extra.length === 0) return 1;
      if (extra.includes(a)) return a;
      const v = Number(a);
      if (Number.isInteger(v) && v >= 1 && v <= n) return v;
      this.say(`Please type a number from 1 to ${n}${extra.length ? ` or ${extra.join(', ')}` : ''}.`);
    }
  }

  async run(): Promise<RescueOutcome> {
    try {
      return await this.main();
    } catch (e) {
      if (e instanceof EndOfInput) {
        this.say('\nNo more answers; stopping. Nothing more was written.');
        return 'quit';
      }
      throw e;
    } finally {
      this.answers.close();
    }
  }

  private async main(): Promise<RescueOutcome> {
    this.say('Lifeboat rescue');
    this.say('===============');
    this.say('This puts a drive image from your backups back onto a drive, or copies single files out of');
    this.say('a backup onto a USB drive. Nothing is written anywhere until you confirm.');
    this.say();
    const repo = await this.openRepository();
    if (typeof repo === 'string') return repo;
    try {
      for (;;) {
        this.say();
        this.say('What would you like to do?');
        this.say('  1) Put a whole drive image back onto a drive');
        this.say('  2) Copy single files to a USB drive');
        this.say('  3) Restart the computer');
        this.say('  4) Open a command shell (for experts)');
        const c = await this.choose('Your choice:', 4);
        if (c === 3) return 'restart';
        if (c === 4) return 'shell';
        try {
          if (c === 1) {
            const done = await this.restoreImage(repo.repo, repo.all);
            if (done) return done;
          } else await this.copyFiles(repo.repo, repo.all);
        } catch (e) {
          // A damaged backup, a failing drive: said in one sentence, then back to the menu to try another image or drive.
          if (!(e instanceof LifeboatError)) throw e;
          this.say(`\nThat did not work: ${e.message}`);
        }
      }
    } finally {
      await repo.repo.close().catch(() => undefined);
    }
  }

  private async openRepository(): Promise<{ repo: Repository; all: FoundRepository[] } | RescueOutcome> {
    for (;;) {
      this.say('Looking for backups on the attached drives...');
      const all = await this.env.findRepositories();
      if (all.length === 0) {
        this.say('No Lifeboat backups were found. Connect the backup drive, wait a few seconds, then press Enter');
        const a = await this.answers.ask('to look again (or type q to restart the computer): ');
        if (a.toLowerCase() === 'q') return 'restart';
        continue;
      }
      this.say(`Found ${all.length === 1 ? 'a backup repository' : `${all.length} backup repositories`}:`);
      all.forEach((r, i) => this.say(`  ${i + 1}) ${r.location}${r.device ? ` (on ${r.device})` : ''}`));
      const found = all[(await this.choose(all.length === 1 ? 'Press Enter to use it:' : 'Which one?', all.length)) as number - 1]!;
      for (let attempt = 1; ; attempt++) {
        const secret = await this.answers.ask('Password or recovery key: ', true);
        try {
          const repo = await openRepositoryAt(found.location, secret, { onWarning: (t) => this.say(`Note: ${t}`) });
          repo.onUnlocked = () => undefined; // a read-only backup drive is the normal case here
          this.say('The backups are open.');
          return { repo, all };
        } catch (e) {
          if (!(e instanceof LifeboatError) || e.code !== 'wrong-password' || attempt >= 5) throw e;
          this.say('That is neither the password nor the recovery key. Check the spelling and try again.');
        }
      }
    }
  }

  private async chooseImage(repo: Repository): Promise<string | undefined> {
    const images = await listImages(repo);
    if (images.length === 0) {
      this.say('This repository holds no drive images (only file backups). Choose "Copy single files" instead.');
      return undefined;
    }
    this.say('Drive images in this repository, newest first:');
    images.forEach((m, i) => this.say(`  ${i + 1}) ${localTime(m.time)}  computer "${m.host}"  drive ${m.source}  ${formatBytes(m.size)}`));
    const c = await this.choose('Which image? (b to go back)', images.length, ['b']);
    return c === 'b' ? undefined : images[(c as number) - 1]!.id;
  }

  private async restoreImage(repo: Repository, repos: readonly FoundRepository[]): Promise<RescueOutcome | undefined> {
    const id = await this.chooseImage(repo);
    if (!id) return undefined;
    let target: TargetChoice | undefined;
    while (!target) {
      const targets = await checkTargets(repo, id, await this.env.targets(), repos);
      const usable = targets.filter((t) => t.refused === undefined);
      this.say('Drives:');
      usable.forEach((t, i) => this.say(`  ${i + 1}) ${t.path}  ${t.model ?? 'unknown model'}  ${formatBytes(t.size)}`));
      for (const t of targets) if (t.refused !== undefined) this.say(`  -  ${t.path}  ${t.model ?? 'unknown model'}  ${formatBytes(t.size)}: not possible, ${t.refused}`);
      if (usable.length === 0) {
        const a = await this.answers.ask('No drive can take this image. Connect a drive at least as large as the old one and press Enter (b to go back): ');
        if (a.toLowerCase() === 'b') return undefined;
        continue;
      }
      const c = await this.choose('Which drive should receive the image? (b to go back)', usable.length, ['b']);
      if (c === 'b') return undefined;
      target = usable[(c as number) - 1]!;
    }
    const name = `${target.path} (${target.model ?? 'unknown model'}, ${formatBytes(target.size)})`;
    this.say();
    this.say(`Everything on ${name} will be erased and replaced by the image.`);
    if (target.description.partitions.length > 0) this.say(`It holds now: ${target.description.partitions.map((p) => `${p.filesystem ?? p.type ?? 'unknown'}${p.label ? ` "${p.label}"` : ''} ${formatBytes(p.size)}`).join('; ')}.`);
    if (target.smaller) this.say('It is a little smaller than the old drive, but every partition fits.');
    const yes = await this.answers.ask(`Type yes to erase ${target.path} and restore (anything else goes back): `);
    if (yes.toLowerCase() !== 'yes') {
      this.say(`Nothing was written to ${target.path}.`);
      return undefined;
    }
    const show = this.progress();
    const r = await restoreImageSnapshot(repo, id, target.path, { force: true, verify: true, onEvent: show });
    show.done();
    this.say(`Done: ${formatBytes(r.bytesWritten)} written in ${formatDuration(r.seconds)} (${formatBytes(r.bytesWritten / Math.max(r.seconds, 0.001))}/s)${r.verified ? '; read back and verified' : ''}.`);
    for (const l of r.leftOut) this.say(l.note);
    this.say('Remove the rescue stick (and the backup drive) so the computer starts from the restored drive.');
    this.say('  1) Restart now');
    this.say('  2) Back to the menu');
    return (await this.choose('Your choice:', 2)) === 1 ? 'restart' : undefined;
  }

  /** Progress of a long job: a live line on a terminal, otherwise a line every 10 percent. */
  private progress(): ((e: JobEvent) => void) & { done(): void } {
    const est = new Estimator();
    let lastShown = -1;
    let lastTime = 0;
    const f = (e: JobEvent) => {
      if (e.type === 'warning') this.say(`\nWarning: ${e.message}`);
      if (e.type !== 'progress') return;
      const p = est.sample(e.done, e.total);
      const line = progressLine(e.phase === 'restoring' ? 'Restoring' : e.phase, p);
      if (this.tty) {
        const now = performance.now();
        if (now - lastTime < 250 && (e.total === undefined || e.done < e.total)) return;
        lastTime = now;
        this.output.write(`\r\x1b[K${line}`);
        return;
      }
      const tenth = e.total ? Math.floor((e.done / e.total) * 10) : 0;
      if (tenth > lastShown) {
        lastShown = tenth;
        this.say(line);
      }
    };
    return Object.assign(f, { done: () => (this.tty ? this.output.write('\r\x1b[K') : undefined) });
  }

  private async copyFiles(repo: Repository, repos: readonly FoundRepository[]): Promise<void> {
    const all = (await repo.listSnapshots()).sort((a, b) => (a.snapshot.time < b.snapshot.time ? 1 : -1));
    if (all.length === 0) return this.say('This repository holds no backups yet.');
    await repo.loadIndex();
    this.say('Backups, newest first:');
    all.forEach((s, i) => this.say(`  ${i + 1}) ${localTime(s.snapshot.time)}  ${s.snapshot.kind === 'image' ? 'drive image of' : 'files of'} ${s.snapshot.paths.join(', ')}  computer "${s.snapshot.host}"`));
    const c = await this.choose('Which backup? (b to go back)', all.length, ['b']);
    if (c === 'b') return;
    const { id, snapshot } = all[(c as number) - 1]!;
    const tree = await treeOf(repo, id, snapshot);
    const picked = await this.browse(tree);
    if (picked === undefined) return;
    const dests = await this.env.copyDestinations(repos);
    if (dests.length === 0) return this.say('No drive to copy onto was found: connect a USB drive and choose this again.');
    this.say('Copy onto:');
    dests.forEach((d, i) => this.say(`  ${i + 1}) ${d.label}`));
    const dc = await this.choose('Which drive? (b to go back)', dests.length, ['b']);
    if (dc === 'b') return;
    let dest: CopyDestination;
    try {
      dest = await dests[(dc as number) - 1]!.open();
    } catch (e) {
      if (e instanceof LifeboatError) return this.say(e.message);
      throw e;
    }
    try {
      const show = this.progress();
      let warnings = 0;
      const onEvent = (e: JobEvent) => {
        if (e.type === 'warning') warnings++;
        show(e);
      };
      let files: number;
      let bytes: number;
      if (snapshot.kind === 'image') {
        const m = /^\/(\d+)(\/.*)?$/.exec(picked)!;
        const r = await restoreImageFiles(repo, id, [`${m[1]}:${m[2] ?? '/'}`], dest.folder, { onEvent });
        files = r.files;
        bytes = r.bytesWritten;
      } else {
        const r = await restoreFiles(repo, id, { target: dest.folder, includes: [tree.shownPath(picked)], onEvent });
        files = r.summary.files;
        bytes = r.summary.bytesWritten;
      }
      show.done();
      this.say(`Copied ${files} file(s), ${formatBytes(bytes)}, into ${dest.folder}${warnings ? `; ${warnings} problem(s) shown above` : ''}.`);
    } finally {
      await this.env.closeDestination(dest);
      if (dest.mounted) this.say('The USB drive can be removed now.');
    }
  }

  /** Walks the backup's folders by number; returns the tree path of what to copy. */
  private async browse(tree: OpenedTree): Promise<string | undefined> {
    let path = '/';
    for (;;) {
      const node = await resolve(tree.tree, path);
      const entries: TreeNode[] = node.type === 'dir' ? await tree.tree.list(node) : [];
      this.say(`In ${tree.shownPath(path)}:`);
      const shown = entries.slice(0, 200);
      shown.forEach((e, i) => this.say(`  ${i + 1}) ${nodeName(e)}${e.type === 'dir' ? '/' : `  ${formatBytes(e.size)}`}`));
      if (entries.length > shown.length) this.say(`  (${entries.length - shown.length} more not shown)`);
      this.say('Type a number to open a folder or pick a file, c to copy this whole folder, u to go up, b to go back.');
      const c = await this.choose('Your choice:', Math.max(shown.length, 1), ['c', 'u', 'b']);
      if (c === 'b') return undefined;
      if (c === 'c') return path;
      if (c === 'u') {
        path = path.replace(/\/[^/]*\/?$/, '') || '/';
        continue;
      }
      const e = shown[(c as number) - 1];
      if (!e) continue;
      const next = `${path === '/' ? '' : path}/${nodeName(e)}`;
      if (e.type === 'dir') path = next;
      else return next;
    }
  }
}

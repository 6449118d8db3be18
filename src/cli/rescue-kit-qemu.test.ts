/**
 * The whole recovery in QEMU: build the rescue kit; image a bootable drive (the boot tests'
 * fixture) into a repository on a second drive; boot the kit with that drive and a blank, larger
 * third one; answer the rescue program over the serial console with the recovery key (not the
 * password); the restore finishes; then the third drive alone boots to the marker. BIOS with the
 * GRUB/MBR fixture, UEFI (OVMF) with the GPT fixture. Each stage's time is reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BIN, lifeboat, tempDir } from './testing.js';
import { boots, qemuArgs, sh } from '../image/testing.js';

const MARKER = 'LIFEBOAT-BOOT-OK';
const SCRIPTS = resolve(BIN, '..', '..', 'scripts', 'fixtures');
const haveQemu = existsSync('/usr/bin/qemu-system-x86_64') && existsSync('/usr/share/OVMF/OVMF_CODE_4M.fd');

/** One step of the dialogue: wait for `expect` in the serial output (after the previous step), then type `send`. */
interface Step {
  readonly expect: RegExp;
  /** What to type, or how to work it out from the output since the previous step. */
  readonly send?: string | ((seen: string) => string);
  readonly name: string;
}

/** Boots QEMU and plays `steps` on its serial console; resolves with the output and when each step was reached (seconds from start). */
function converse(args: readonly string[], steps: readonly Step[], timeoutMs: number): Promise<{ out: string; at: Record<string, number>; exited: boolean }> {
  return new Promise((res) => {
    const started = performance.now();
    const q = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    let from = 0;
    let i = 0;
    const at: Record<string, number> = {};
    let finished = false;
    const finish = (exited: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      q.kill('SIGKILL');
      res({ out, at, exited });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    q.stdout.setEncoding('latin1').on('data', (d: string) => {
      out += d;
      while (i < steps.length) {
        const s = steps[i]!;
        const seen = out.slice(from);
        const m = s.expect.exec(seen);
        if (!m) break;
        from += m.index + m[0].length;
        at[s.name] = (performance.now() - started) / 1000;
        if (s.send !== undefined) q.stdin.write((typeof s.send === 'string' ? s.send : s.send(seen.slice(0, m.index + m[0].length))) + '\r');
        i++;
      }
    });
    q.on('close', () => finish(true));
  });
}

async function recovery(t: { diagnostic(s: string): void }, uefi: boolean): Promise<void> {
  const d = tempDir('lifeboat-kit-');
  try {
    const times: Record<string, number> = {};
    const time = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
      const s = performance.now();
      const r = await f();
      times[name] = Math.round((performance.now() - s) / 100) / 10;
      return r;
    };
    const kernel = sh(`bash ${join(SCRIPTS, 'kit-kernel.sh')}`).trim();
    const version = sh(`ls ${kernel}/lib/modules`).trim();
    const build = await time('kit build', () => lifeboat(['rescue-kit', 'build', join(d.path, 'kit.img'), '--serial', '--kernel', join(kernel, 'vmlinuz'), '--modules', join(kernel, 'lib', 'modules', version), '--json']));
    assert.equal(build.code, 0, build.stderr);
    const kit = JSON.parse(build.stdout) as { size: number; bios: boolean; uefi: boolean };
    assert.ok(kit.size < 150 * 1024 * 1024, `the kit is ${kit.size} bytes`);
    assert.equal(kit.bios && kit.uefi, true);

    await time('fixture', () => sh(`bash ${join(SCRIPTS, 'boot-disks.sh')} ${d.path} ${MARKER}`, d.path));
    const fixture = uefi ? 'uefi-gpt.img' : 'grub-mbr.img';
    const repo = join(d.path, 'drive', 'lifeboat');
    sh('mkdir drive', d.path);
    const env = { LIFEBOAT_REPO: repo, LIFEBOAT_PASSWORD: 'the password' };
    const init = await lifeboat(['init', '--json'], env);
    assert.equal(init.code, 0, init.stderr);
    const recoveryKey = (JSON.parse(init.stdout) as { recoveryKey: string }).recoveryKey;
    const created = await time('image create', () => lifeboat(['image', 'create', join(d.path, fixture)], env));
    assert.equal(created.code, 0, created.stderr);
    // The backup drive: an MBR disk with one ext4 partition holding the repository.
    sh(`truncate -s 160M backup.img && printf 'label: dos\\nstart=2048, type=83\\n' | sfdisk -q backup.img
truncate -s $((158*1024*1024)) p1.img && mkfs.ext4 -q -F -d drive p1.img && dd if=p1.img of=backup.img bs=512 seek=2048 conv=notrunc status=none && rm p1.img
truncate -s 128M blank.img`, d.path);
    // BIOS run: a USB drive (FAT32, no partition table) to copy a single file onto after the restore.
    if (!uefi) sh('truncate -s 48M usb.img && mkfs.vfat -F 32 -n USB usb.img >/dev/null', d.path);

    const args = [...qemuArgs(uefi, d.path, 1024), '-drive', `file=${join(d.path, 'kit.img')},format=raw,if=ide,index=0`, '-drive', `file=${join(d.path, 'backup.img')},format=raw,if=ide,index=1`, '-drive', `file=${join(d.path, 'blank.img')},format=raw,if=ide,index=2`];
    if (!uefi) args.push('-drive', `file=${join(d.path, 'usb.img')},format=raw,if=ide,index=3`);
    /** The number the dialogue shows before the line matching `line`. */
    const numberOf = (line: RegExp) => (seen: string) => new RegExp(`(\\d+)\\) ${line.source}`).exec(seen)?.[1] ?? 'b';
    const copySteps: Step[] = [
      { name: 'menu again', expect: /Your choice: /, send: '2' },
      { name: 'backups listed', expect: /Which backup\? \(b to go back\) /, send: '1' },
      { name: 'partitions', expect: /In \/:[\s\S]*?Your choice: /, send: '1' },
      { name: 'partition 1', expect: /In \/1:[\s\S]*?Your choice: /, send: numberOf(/boot\//) },
      { name: 'boot folder', expect: /In \/1\/boot:[\s\S]*?Your choice: /, send: numberOf(/vmlinuz /) },
      { name: 'destinations', expect: /Copy onto:[\s\S]*?Which drive\? \(b to go back\) /, send: numberOf(/\/dev\/sd. [^\n]* 50\.3 MB/) }, // the USB drive, by its size: the kernel names the drives in no fixed order
      { name: 'copied', expect: /Copied 1 file\(s\)[\s\S]*?Your choice: /, send: '3' },
    ];
    const steps: Step[] = [
      { name: 'boot to the first question', expect: /Press Enter to use it: /, send: '' },
      { name: 'repository opened', expect: /Password or recovery key: /, send: recoveryKey },
      { name: 'menu', expect: /The backups are open\.[\s\S]*Your choice: /, send: '1' },
      { name: 'images listed', expect: /Which image\? \(b to go back\) /, send: '1' },
      { name: 'drives listed', expect: /Which drive should receive the image\? \(b to go back\) /, send: '1' },
      { name: 'confirmation', expect: /Type yes to erase \/dev\/sd. and restore/, send: 'yes' },
      { name: 'restored', expect: /Done: [^\n]*verified[\s\S]*Your choice: /, send: uefi ? '1' : '2' },
      ...(uefi ? [] : copySteps),
      { name: 'restarting', expect: /Restarting/ },
    ];
    const run = await time('rescue in QEMU', () => converse(args, steps, 1_500_000));
    writeFileSync(join(d.path, 'serial.log'), run.out);
    for (const s of steps) assert.ok(run.at[s.name] !== undefined, `the rescue stopped before "${s.name}":\n${run.out.slice(-3000)}`);
    assert.equal(run.exited, true, 'QEMU stops when the kit restarts the computer');
    assert.match(run.out, /computer "[^"]+" {2}drive .*\.img/);
    assert.match(run.out, /\/dev\/sd. {2}[^\n]*QEMU HARDDISK {2}[\d.]+ MB: not possible, it holds the backups/);
    assert.match(run.out, /\/dev\/sd. {2}[^\n]*QEMU HARDDISK {2}[\d.]+ MB: not possible, it is the Lifeboat rescue stick/);
    assert.match(run.out, /Everything on \/dev\/sd. \([^)]*QEMU HARDDISK, 134 MB\) will be erased/);
    const restore = run.at['restored']! - run.at['confirmation']!;
    const rate = /Done: ([\d.]+ \w+) written in ([^(]+) \(([\d.]+ \w+\/s)\)/.exec(run.out);
    if (!uefi) {
      assert.doesNotMatch(run.out.slice(run.out.indexOf('Copy onto:')), /\/dev\/sda1/, 'the rescue stick is not offered for files');
      sh('MTOOLS_SKIP_CHECK=1 mcopy -n -i usb.img ::/vmlinuz copied-vmlinuz && cmp copied-vmlinuz vmlinuz', d.path);
    }
    const ok = await time('boot the restored drive', () => boots(join(d.path, 'blank.img'), uefi, d.path, 300_000));
    assert.equal(ok, true, 'the restored drive boots alone to the marker');
    t.diagnostic(`${uefi ? 'UEFI/GPT' : 'BIOS/MBR'}: kit ${(kit.size / 1e6).toFixed(1)} MB; stages (s): ${JSON.stringify(times)}; in QEMU: ${JSON.stringify(Object.fromEntries(Object.entries(run.at).map(([k, v]) => [k, Math.round(v)])))}; restore+verify ${restore.toFixed(0)} s (${rate ? `${rate[1]} at ${rate[3]}` : '?'})`);
  } finally {
    d.cleanup();
  }
}

test('the rescue kit restores a GRUB/MBR drive with the recovery key in QEMU (BIOS), and it boots', { timeout: 1_800_000, skip: !haveQemu }, async (t) => {
  await recovery(t, false);
});

test('the rescue kit restores a UEFI/GPT drive with the recovery key in QEMU (OVMF), and it boots', { timeout: 1_800_000, skip: !haveQemu }, async (t) => {
  await recovery(t, true);
});

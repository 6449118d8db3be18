import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { BIN, lifeboat, tempDir } from './testing.js';
import { browserCommand, servicePlan } from './service.js';

test('job add, list, run, status and remove from the command line', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const repo = join(d.path, 'Passport', 'lifeboat');
  mkdirSync(join(d.path, 'Passport'));
  mkdirSync(join(d.path, 'docs'));
  writeFileSync(join(d.path, 'docs', 'a.txt'), 'hello');
  const env = { LIFEBOAT_PASSWORD: 'pw', XDG_DATA_HOME: join(d.path, 'data'), XDG_CACHE_HOME: join(d.path, 'cache'), LIFEBOAT_REPO: repo };
  assert.equal((await lifeboat(['init'], env)).code, 0);

  const bad = await lifeboat(['job', 'add', 'Docs', join(d.path, 'docs'), '--schedule', 'sometimes'], env);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"sometimes" is not a schedule Lifeboat understands\. Use "daily 19:00"/);
  const wrong = await lifeboat(['job', 'add', 'Docs', join(d.path, 'docs'), '--schedule', 'daily 19:00'], { ...env, LIFEBOAT_PASSWORD: 'nope' });
  assert.equal(wrong.code, 12, 'the password is checked when the job is added');

  const add = await lifeboat(['job', 'add', 'Docs', join(d.path, 'docs'), '--schedule', 'daily 19:00', '--keep-last', '2'], env);
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /Added the job "Docs": backs up .*docs to .*lifeboat every day at 19:00\./);
  const pwFile = readdir(join(d.path, 'data', 'lifeboat', 'passwords'));
  assert.equal(statSync(pwFile).mode & 0o777, 0o600, 'the password is kept in a private file');
  assert.equal(readFileSync(pwFile, 'utf8'), 'pw\n');
  assert.equal((await lifeboat(['job', 'add', 'Docs', join(d.path, 'docs'), '--schedule', 'daily 19:00'], env)).code, 1, 'names are unique');

  const noPw = { ...env, LIFEBOAT_PASSWORD: undefined };
  const st0 = await lifeboat(['status'], noPw);
  assert.equal(st0.code, 0, 'a new job waiting for its first slot is fine');
  assert.match(st0.stdout, /last run: none yet/);

  const r = await lifeboat(['job', 'run', 'Docs'], noPw); // unattended: the password comes from the job's file
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /^Docs: ok, /);
  const list = JSON.parse((await lifeboat(['--json', 'job', 'list'], noPw)).stdout) as { name: string; lastRun: { status: string; figures: { files: number } }; retention: unknown; ok: boolean }[];
  assert.equal(list.length, 1);
  assert.equal(list[0]!.lastRun.status, 'ok');
  assert.equal(list[0]!.lastRun.figures.files, 1);
  assert.deepEqual(list[0]!.retention, { last: 2 });
  const st = JSON.parse((await lifeboat(['--json', 'status'], noPw)).stdout) as { ok: boolean };
  assert.equal(st.ok, true);
  const snaps = await lifeboat(['snapshots'], env);
  assert.match(snaps.stdout, /\[job:Docs\]/);

  // An unplugged drive: the run fails with a plain message and status exits 1.
  renameSync(join(d.path, 'Passport'), join(d.path, 'away'));
  const failed = await lifeboat(['job', 'run', 'Docs'], noPw);
  assert.equal(failed.code, 1);
  assert.match(failed.stdout, /The backup drive 'Passport' is not connected/);
  const st2 = await lifeboat(['status'], noPw);
  assert.equal(st2.code, 1);
  assert.match(st2.stdout, /warning: The last backup of "Docs" failed: The backup drive 'Passport' is not connected/);

  assert.equal((await lifeboat(['job', 'run', 'Nope'], noPw)).code, 1);
  assert.equal((await lifeboat(['job', 'remove', 'Docs'], noPw)).code, 0);
  assert.match((await lifeboat(['job', 'list'], noPw)).stdout, /There are no jobs yet/);
});

function readdir(dir: string): string {
  return join(dir, readdirSync(dir)[0]!);
}

test('service install writes a systemd user unit that starts lifeboat serve', async (t) => {
  const plan = servicePlan('linux', ['/usr/bin/node', '/opt/life boat/bin/lifeboat.js'], '/home/ann');
  assert.equal(plan.file, '/home/ann/.config/systemd/user/lifeboat.service');
  assert.match(plan.text!, /^\[Unit\]\nDescription=Lifeboat backups/);
  assert.match(plan.text!, /\nExecStart=\/usr\/bin\/node "\/opt\/life boat\/bin\/lifeboat.js" serve --no-open\n/);
  assert.match(plan.text!, /\nRestart=on-failure\n[\s\S]*\[Install\]\nWantedBy=default.target\n$/);
  assert.equal(plan.enable, 'systemctl --user daemon-reload && systemctl --user enable --now lifeboat.service');
  assert.match(servicePlan('darwin', ['/usr/bin/node', '/x/lifeboat.js'], '/Users/ann').text!, /<string>serve<\/string>/);
  assert.match(servicePlan('win32', ['C:\\node.exe', 'C:\\x\\lifeboat.js']).enable, /^schtasks \/Create \/SC ONLOGON \/TN Lifeboat \/TR "C:\\node.exe C:\\x\\lifeboat.js serve --no-open"/);

  const d = tempDir();
  t.after(d.cleanup);
  const r = await lifeboat(['service', 'install'], { HOME: d.path });
  assert.equal(r.code, 0, r.stderr);
  const unit = join(d.path, '.config', 'systemd', 'user', 'lifeboat.service');
  // Node started as the lifeboat command starts it: with the flags of bin/lifeboat.js's first line.
  const flags = /^#!\S*env -S node((?: --\S+)+)\n/.exec(readFileSync(BIN, 'utf8'))![1]!.trim();
  assert.ok(readFileSync(unit, 'utf8').includes(`\nExecStart=${process.execPath} ${flags} ${BIN} serve --no-open\n`), readFileSync(unit, 'utf8'));
  assert.match(r.stdout, /systemctl --user daemon-reload && systemctl --user enable --now lifeboat.service/);
  assert.equal((await lifeboat(['service', 'uninstall'], { HOME: d.path })).code, 0);
  assert.equal(existsSync(unit), false);
});

test('lifeboat serve prints the dashboard address with its key first, keeps the key between starts, and stops on SIGINT', async (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const env = { ...process.env, XDG_DATA_HOME: join(d.path, 'data'), XDG_CACHE_HOME: join(d.path, 'cache'), LIFEBOAT_INSECURE_FAST_KDF: '1' };
  const start = async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--no-open'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const first = await new Promise<string>((res, rej) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        if (out.includes('\n')) res(out.split('\n')[0]!);
      });
      child.on('exit', (code) => rej(new Error(`serve exited with ${code}`)));
    });
    return { child, first };
  };
  const a = await start();
  assert.match(a.first, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{20,}$/);
  const res = await fetch(a.first, { redirect: 'manual' });
  assert.equal(res.status, 303);
  assert.equal((await fetch(new URL('/api/overview', a.first))).status, 401);
  const exited = new Promise<number | null>((res) => a.child.on('exit', (code) => res(code)));
  a.child.kill('SIGINT');
  assert.ok([0, 130].includes((await exited) ?? -1), 'Ctrl+C stops it (130 when closing took longer than the CLI waits for)');
  assert.equal(statSync(join(d.path, 'data', 'lifeboat', 'dashboard-token')).mode & 0o777, 0o600);
  const b = await start();
  assert.equal(new URL(b.first).searchParams.get('token'), new URL(a.first).searchParams.get('token'), 'a bookmarked address keeps working');
  // Started again while it runs (on its port): it prints the running dashboard's address and ends.
  const again = await lifeboat(['serve', '--port', new URL(b.first).port, '--no-open'], env);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, `${b.first}\n`);
  assert.match(again.stderr, /already running/);
  const bExit = new Promise<number | null>((res) => b.child.on('exit', (code) => res(code)));
  b.child.kill('SIGTERM');
  assert.equal(await bExit, 0);
});

test('serve opens the dashboard with the system\'s opener: one argument, an "&" kept whole on Windows; none without a desktop', async (t) => {
  const url = 'http://127.0.0.1:8123/?token=a-b_c&x=1';
  assert.deepEqual(browserCommand('win32', url), { command: 'rundll32', args: ['url.dll,FileProtocolHandler', url] });
  assert.deepEqual(browserCommand('darwin', url), { command: 'open', args: [url] });
  assert.deepEqual(browserCommand('linux', url, { DISPLAY: ':0' }), { command: 'xdg-open', args: [url] });
  assert.deepEqual(browserCommand('linux', url, { WAYLAND_DISPLAY: 'wayland-0' }), { command: 'xdg-open', args: [url] });
  assert.equal(browserCommand('linux', url, {}), undefined, 'no desktop: the address is printed, nothing is started');
  assert.deepEqual(browserCommand('win32', 'http://[::1]:8123/?token=a b"c')?.args, ['url.dll,FileProtocolHandler', 'http://[::1]:8123/?token=a%20b%22c']);

  // The real CLI on a desktop: its opener (a stand-in xdg-open on PATH) gets the printed address.
  const d = tempDir();
  t.after(d.cleanup);
  const bin = join(d.path, 'bin');
  mkdirSync(bin);
  const opened = join(d.path, 'opened');
  writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${opened}.tmp && mv ${opened}.tmp ${opened}\n`, { mode: 0o755 });
  const env = { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, DISPLAY: ':9', XDG_DATA_HOME: join(d.path, 'data'), XDG_CACHE_HOME: join(d.path, 'cache'), LIFEBOAT_INSECURE_FAST_KDF: '1' };
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const first = await new Promise<string>((res) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (out.includes('\n')) res(out.split('\n')[0]!);
    });
  });
  for (let i = 0; i < 100 && !existsSync(opened); i++) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGTERM');
  await exited;
  assert.equal(readFileSync(opened, 'utf8'), `${first}\n`);
});

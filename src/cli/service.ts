/**
 * The desktop, the way each system does it — the CLI's one module of operating-system knowledge.
 * `lifeboat service install`: start `lifeboat serve` at login — a systemd user unit on Linux, a
 * launchd agent on macOS, a Task Scheduler task on Windows (whose command is printed, as Lifeboat
 * runs no system tools itself). The file is written; the command that enables it is printed for
 * the user to run. And `serve` opening the dashboard in the user's browser (browserCommand): the
 * one program the product starts, by the system's own opener.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface ServicePlan {
  /** The file to write (none on Windows). */
  readonly file?: string;
  readonly text?: string;
  /** What the user runs to turn it on (install) or off (uninstall). */
  readonly enable: string;
  readonly disable: string;
}

export interface BrowserCommand {
  readonly command: string;
  readonly args: readonly string[];
}

/**
 * How `os` (process.platform's names) opens `url` in the user's browser; undefined where there is no
 * desktop to show it on (Linux without DISPLAY or WAYLAND_DISPLAY). On Windows url.dll's handler
 * is called directly: through cmd's "start", an "&" in the address would end the command and the
 * first quoted argument would be taken as the window's title.
 */
export function browserCommand(os: NodeJS.Platform, url: string, env: NodeJS.ProcessEnv = process.env): BrowserCommand | undefined {
  const href = new URL(url).href; // spaces and quotes percent-encoded: one argument everywhere
  if (os === 'darwin') return { command: 'open', args: [href] };
  if (os === 'win32') return { command: 'rundll32', args: ['url.dll,FileProtocolHandler', href] };
  if (!env['DISPLAY'] && !env['WAYLAND_DISPLAY']) return undefined;
  return { command: 'xdg-open', args: [href] };
}

const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The service for `command` (node and the lifeboat script) on `os` (process.platform's names). */
export function servicePlan(os: NodeJS.Platform, command: readonly string[], home = homedir()): ServicePlan {
  const args = [...command, 'serve', '--no-open'];
  if (os === 'darwin') {
    const file = join(home, 'Library', 'LaunchAgents', 'org.lifeboat.serve.plist');
    const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const text = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>org.lifeboat.serve</string>
  <key>ProgramArguments</key>
  <array>
${args.map((a) => `    <string>${xml(a)}</string>`).join('\n')}
  </array>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><true/>
</dict>
</plist>
`;
    return { file, text, enable: `launchctl load -w ${quote(file)}`, disable: `launchctl unload -w ${quote(file)}` };
  }
  if (os === 'win32') {
    const cmd = args.map((a) => (/[\s"]/.test(a) ? `\\"${a}\\"` : a)).join(' ');
    return { enable: `schtasks /Create /SC ONLOGON /TN Lifeboat /TR "${cmd}" /F`, disable: 'schtasks /Delete /TN Lifeboat /F' };
  }
  const file = join(home, '.config', 'systemd', 'user', 'lifeboat.service');
  const text = `[Unit]
Description=Lifeboat backups (scheduler and dashboard)
After=network.target

[Service]
Type=simple
ExecStart=${args.map((a) => (/[\s"\\]/.test(a) ? JSON.stringify(a) : a)).join(' ')}
Restart=on-failure
RestartSec=30

[Install]
WantedBy=default.target
`;
  return { file, text, enable: 'systemctl --user daemon-reload && systemctl --user enable --now lifeboat.service', disable: 'systemctl --user disable --now lifeboat.service' };
}

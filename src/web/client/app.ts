/**
 * The dashboard page: plain DOM, no framework, no bundler; compiled by tsc (web/client/tsconfig.json)
 * and served by Lifeboat itself. Talks only to the API typed in web/api.ts. Live progress comes as
 * server-sent events (at most ten a second), so the page polls nothing.
 */
import type { CountView, DestinationView, EntryView, EstimateView, FindResponse, FreeSpacePreview, FreeSpaceResult, GrowthView, JobView, ListingView, Overview, ProgressView, RestoreResponse, RunView, ServerEvent, SetupBody, SetupCheck, SetupCheckBody, SetupInfo, SetupResponse, SnapshotView, SpaceView } from '../api.js';

const main = document.getElementById('main')!;
const banner = document.getElementById('banner')!;

type Child = Node | string | null | undefined | false;
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | ((e: Event) => void)> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (typeof v === 'boolean') {
      if (v) el.setAttribute(k, '');
    } else el.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

async function api<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const data = (await res.json().catch(() => ({ error: `The server answered ${res.status}.` }))) as T & { error?: string };
  if (!res.ok) throw new Error(data.error ?? `The server answered ${res.status}.`);
  return data;
}

function bytes(n: number | undefined): string {
  if (n === undefined) return '';
  if (n < 1000) return `${n} B`;
  const u = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${u[i]}`;
}
/** Today as YYYY-MM-DD, as in the names of restored copies kept beside changed files. */
function today(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}
const when = (ms: number | string | undefined) => (ms === undefined ? '' : new Date(ms).toLocaleString());
function duration(s: number): string {
  const n = (k: number, unit: string) => `${k} ${unit}${k === 1 ? '' : 's'}`;
  if (s < 60) return n(Math.max(1, Math.round(s)), 'second');
  if (s < 3600) return n(Math.round(s / 60), 'minute');
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
const STATUS: Record<string, string> = { ok: 'Succeeded', warnings: 'Succeeded with warnings', failed: 'Failed', cancelled: 'Cancelled', running: 'Running' };

function runLine(r: RunView): HTMLElement {
  const took = r.finished !== undefined ? `, took ${duration((r.finished - r.started) / 1000)}` : '';
  const added = r.figures.bytesAdded !== undefined ? `, ${bytes(r.figures.bytesAdded)} of new data` : '';
  return h('span', {}, h('strong', { class: r.status }, STATUS[r.status] ?? r.status), ` ${when(r.started)}${took}${added}`, r.message ? h('div', { class: r.status === 'failed' ? 'failed' : 'muted' }, r.message) : null);
}

function showError(where: HTMLElement, e: unknown): void {
  where.replaceChildren(h('p', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e)));
}

// ------------------------------------------------------------------ live progress

const rates = new Map<string, { t: number; done: number; rate: number }>();

function progressBlock(job: string, p: ProgressView): HTMLElement {
  const prev = rates.get(job);
  const now = performance.now();
  let rate = prev?.rate ?? 0;
  if (prev && now - prev.t > 500) {
    rate = (0.7 * (p.done - prev.done) * 1000) / (now - prev.t) + 0.3 * rate;
    rates.set(job, { t: now, done: p.done, rate });
  } else if (!prev) rates.set(job, { t: now, done: p.done, rate: 0 });
  const pct = p.total ? Math.min(100, Math.floor((p.done / Math.max(1, p.total)) * 100)) : undefined;
  const eta = p.total && rate > 0 ? duration((p.total - p.done) / rate) : undefined;
  const bar = h('progress', { max: '100', 'aria-label': `Progress of ${job}` });
  if (pct !== undefined) bar.value = pct;
  return h(
    'div',
    { class: 'progress', 'data-job': job },
    bar,
    h('p', { class: 'percent' }, pct !== undefined ? `${pct}% ` : '', `${bytes(p.done)}${p.total ? ` of ${bytes(p.total)}` : ''}`, p.files !== undefined ? `, ${p.files} files` : '', rate > 0 ? `, ${bytes(rate)}/s` : '', eta ? `, about ${eta} left` : ''),
    p.current !== undefined ? h('p', { class: 'current muted', title: p.current }, 'Now: ', p.current) : null,
  );
}

function onServerEvent(e: ServerEvent): void {
  if (e.type === 'run-started' || e.type === 'run-finished') {
    if (route() === '' || route() === 'history') void render();
    return;
  }
  const card = document.querySelector<HTMLElement>(`.card[data-job="${CSS.escape(e.job)}"]`);
  if (!card) return;
  if (e.type === 'progress') {
    const slot = card.querySelector('.live')!;
    slot.replaceChildren(progressBlock(e.job, e.progress));
  } else if (e.type === 'warning') {
    card.querySelector('.live-warnings')?.append(h('li', {}, e.message));
  } else if (e.type === 'phase') card.querySelector('.phase')?.replaceChildren(e.phase);
}

// ------------------------------------------------------------------ screens

async function overview(): Promise<void> {
  const o = await api<Overview>('/api/overview');
  if (o.jobs.length === 0) {
    location.hash = '#/setup';
    return;
  }
  main.replaceChildren(h('h2', {}, 'Your backups'), ...o.jobs.map(jobCard));
}

function jobCard(j: JobView): HTMLElement {
  const run = h('button', { onclick: () => void api(`/api/jobs/${encodeURIComponent(j.name)}/run`, {}).catch((e: unknown) => alert(String(e))) }, 'Back up now');
  const cancel = h('button', { class: 'secondary', onclick: () => void api(`/api/jobs/${encodeURIComponent(j.name)}/cancel`, {}) }, 'Cancel');
  return h(
    'section',
    { class: 'card', 'data-job': j.name },
    h('h2', {}, j.name),
    h('p', { class: 'muted' }, `${j.what} → ${j.repository}, ${j.when}.`),
    h('p', {}, 'Last backup: ', j.lastRun ? runLine(j.lastRun) : 'none yet'),
    j.running && j.continuous
      ? h('p', {}, h('strong', {}, 'Watching for changes. '), j.running.snapshot ? `Last snapshot: ${j.running.snapshot.slice(0, 8)}. ` : '', h('span', { class: 'phase' }))
      : j.running
        ? h('p', {}, h('strong', {}, 'Backing up now… '), h('span', { class: 'phase' }))
        : h('p', {}, 'Next backup: ', j.nextRun !== undefined ? when(j.nextRun) : 'not scheduled'),
    h('div', { class: 'live' }, j.running && j.progress ? progressBlock(j.name, j.progress) : null),
    h('ul', { class: 'live-warnings' }),
    h('div', { class: 'row' }, j.running ? cancel : run, h('a', { class: 'button secondary', href: `#/restore/${encodeURIComponent(j.name)}` }, 'Restore files')),
  );
}

async function history(): Promise<void> {
  const { runs } = await api<{ runs: RunView[] }>('/api/runs');
  const rows = runs.map((r) =>
    h(
      'tr',
      {},
      h('td', {}, r.job),
      h('td', { class: r.status }, STATUS[r.status] ?? r.status),
      h('td', {}, when(r.started)),
      h('td', {}, r.finished !== undefined ? duration((r.finished - r.started) / 1000) : ''),
      h('td', {}, r.figures.files !== undefined ? String(r.figures.files) : ''),
      h('td', {}, bytes(r.figures.bytesAdded)),
      h('td', {}, r.message ?? '', r.warnings > 0 ? h('button', { class: 'secondary', onclick: () => void showRun(r.id) }, `Show ${r.warnings} warnings`) : null),
    ),
  );
  main.replaceChildren(
    h('h2', {}, 'History'),
    runs.length === 0 ? h('p', {}, 'No backups have run yet.') : h('table', {}, h('thead', {}, h('tr', {}, ...['Backup', 'Result', 'Started', 'Took', 'Files', 'New data', 'Notes'].map((t) => h('th', {}, t)))), h('tbody', {}, ...rows)),
    h('div', { id: 'run-detail' }),
  );
}

async function showRun(id: number): Promise<void> {
  const { events } = await api<{ events: { message: string; path?: string }[] }>(`/api/runs/${id}`);
  document.getElementById('run-detail')!.replaceChildren(h('h3', {}, 'Warnings'), h('ul', {}, ...events.map((e) => h('li', {}, e.message))));
}

function freeSpaceCard(job: string): HTMLElement {
  const out = h('div', { class: 'free-result', role: 'status' });
  const base = `/api/jobs/${encodeURIComponent(job)}/free-space`;
  const preview = async () => {
    out.replaceChildren('Looking…');
    try {
      const p = await api<FreeSpacePreview>(base);
      if (p.remove.length === 0) return void out.replaceChildren(h('p', {}, `Nothing to remove: the rules (${p.rules}) keep every version there is.`));
      const go = h('button', { class: 'free-go' }, `Remove ${p.remove.length} old version${p.remove.length === 1 ? '' : 's'} and free the space`);
      go.addEventListener('click', () => {
        go.disabled = true;
        out.append(h('p', {}, 'Removing…'));
        void api<FreeSpaceResult>(base, {})
          .then((r) => out.replaceChildren(h('p', {}, `Removed ${r.removed} old version${r.removed === 1 ? '' : 's'}; freed ${bytes(r.freed)}.`)))
          .catch((e: unknown) => showError(out, e));
      });
      out.replaceChildren(h('p', {}, `By the rules (${p.rules}), these versions would be removed; ${p.keep} stay:`), h('ul', {}, ...p.remove.map((x) => h('li', {}, when(x.time)))), go);
    } catch (e) {
      showError(out, e);
    }
  };
  return h('section', { class: 'card' }, h('h3', {}, `Free up space: ${job}`), h('button', { class: 'secondary free-preview', onclick: () => void preview() }, 'See what would be removed'), out);
}

const SVG = 'http://www.w3.org/2000/svg';
function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}
const COLORS = ['#1b66a8', '#c2571a', '#2e7d32', '#8e44ad', '#b3261e', '#00838f'];

/** What each job has stored after each run, as lines over time (drawn here: no chart library, nothing from the internet). */
function growthChart(growth: readonly GrowthView[]): HTMLElement {
  const series = growth.filter((g) => g.points.length > 0);
  if (series.length === 0) return h('p', { class: 'muted', id: 'growth' }, 'The chart of how the backups grow appears after the first backup.');
  const W = 720;
  const H = 260;
  const L = 70;
  const R = 16;
  const T = 12;
  const B = 36;
  const times = series.flatMap((g) => g.points.map((p) => p.time));
  let t0 = Math.min(...times);
  let t1 = Math.max(...times);
  if (t1 - t0 < 3600_000) [t0, t1] = [t0 - 1800_000, t1 + 1800_000];
  // Gridlines at round sizes (1, 2 or 5 times a power of ten), four or five of them.
  const max = Math.max(1, ...series.flatMap((g) => g.points.map((p) => p.stored)));
  const unit = 10 ** Math.floor(Math.log10(max / 4));
  const step = [1, 2, 5, 10].map((m) => m * unit).find((v) => max / v <= 4) ?? 10 * unit;
  const top = Math.ceil((max * 1.05) / step) * step;
  const x = (t: number) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v: number) => T + (1 - v / top) * (H - T - B);
  const grid: SVGElement[] = [];
  for (let v = 0; v <= top; v += step) {
    grid.push(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#e3e8ef' }), svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 12, fill: '#5a6473' }, bytes(Math.round(v))));
  }
  for (let i = 0; i <= 3; i++) {
    const t = t0 + ((t1 - t0) * i) / 3;
    const label = t1 - t0 < 2 * 86_400_000 ? new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : new Date(t).toLocaleDateString();
    grid.push(svg('text', { x: x(t), y: H - B + 18, 'text-anchor': i === 0 ? 'start' : i === 3 ? 'end' : 'middle', 'font-size': 12, fill: '#5a6473' }, label));
  }
  const lines = series.map((g, i) => {
    const color = COLORS[i % COLORS.length]!;
    const pts = g.points.map((p) => `${x(p.time).toFixed(1)},${y(p.stored).toFixed(1)}`).join(' ');
    return svg(
      'g',
      { class: 'series', 'data-job': g.job },
      svg('polyline', { points: pts, fill: 'none', stroke: color, 'stroke-width': 2.5 }),
      ...g.points.map((p) => svg('circle', { cx: x(p.time), cy: y(p.stored), r: 3.5, fill: color }, svg('title', {}, `${g.job}, ${when(p.time)}: ${bytes(p.stored)} stored`))),
    );
  });
  const last = (g: GrowthView) => bytes(g.points[g.points.length - 1]!.stored);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': `Stored data of each backup over time: ${series.map((g) => `${g.job} ${last(g)}`).join(', ')}` }, ...grid, svg('line', { x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: '#9aa5b4' }), ...lines);
  const legend = h(
    'p',
    { class: 'legend' },
    ...series.map((g, i) => {
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = COLORS[i % COLORS.length]!;
      return h('span', {}, swatch, ` ${g.job}: ${last(g)} `);
    }),
  );
  return h('figure', { class: 'card', id: 'growth' }, h('figcaption', {}, h('strong', {}, 'How much each backup stores'), h('span', { class: 'muted' }, ' (after each backup: new data added, less what freeing space removed)')), chart, legend);
}

async function space(): Promise<void> {
  const s = await api<SpaceView>('/api/space');
  const o = await api<Overview>('/api/overview');
  const max = Math.max(1, ...s.snapshots.map((x) => x.added));
  const totalAdded = s.snapshots.reduce((a, x) => a + x.added, 0);
  const last = s.snapshots[s.snapshots.length - 1];
  main.replaceChildren(
    h('h2', {}, 'Space'),
    h('p', {}, s.snapshots.length ? `The backups hold ${s.snapshots.length} version${s.snapshots.length === 1 ? '' : 's'}. Stored in all: about ${bytes(totalAdded)}, for ${bytes(last?.total)} of files in the newest version.` : 'There are no backups yet.'),
    s.snapshots.length
      ? h('p', { id: 'saved' }, `Kept as full copies, these versions would take ${bytes(s.snapshots.reduce((a, x) => a + x.total, 0))}; deduplication and compression make that ${bytes(totalAdded)}.`)
      : '',
    growthChart(s.growth),
    h('p', { class: 'muted' }, 'New data each backup stored (unchanged files are not stored again):'),
    h(
      'table',
      {},
      h('tbody', {}, ...s.snapshots.map((x) => {
        const bar = h('span', { class: 'bar' });
        bar.style.width = `${Math.max(0.2, (x.added / max) * 20)}rem`;
        return h('tr', {}, h('td', {}, when(x.time)), h('td', {}, x.job), h('td', {}, bar, ` ${bytes(x.added)}`));
      })),
    ),
    ...o.jobs.map((j) => freeSpaceCard(j.name)),
  );
}

// ------------------------------------------------------------------ restore

async function restorePage(job?: string): Promise<void> {
  const o = await api<Overview>('/api/overview');
  if (!job) {
    main.replaceChildren(h('h2', {}, 'Restore files'), h('p', {}, 'Choose the backup to restore from:'), ...o.jobs.map((j) => h('p', {}, h('a', { class: 'button', href: `#/restore/${encodeURIComponent(j.name)}` }, j.name))));
    return;
  }
  const { snapshots } = await api<{ snapshots: SnapshotView[] }>(`/api/jobs/${encodeURIComponent(job)}/snapshots`);
  const pane = h('div', { id: 'browser' });
  const results = h('div', { id: 'results' });
  const pick = h('select', { 'aria-label': 'Version', onchange: () => (fitKind(), void browse(job, pick.value, '/', pane)) }, ...snapshots.map((s) => h('option', { value: s.id }, `${when(s.time)}${s.kind === 'image' ? ' (system image)' : ''}${s.size !== undefined ? ` (${bytes(s.size)})` : ''}`)));
  const target = h('input', { type: 'text', id: 'target', size: '40', 'aria-label': 'Folder to restore into' });
  const toOriginal = h('input', { type: 'radio', name: 'where', id: 'to-original', checked: true });
  const toFolder = h('input', { type: 'radio', name: 'where', id: 'to-folder' });
  target.addEventListener('focus', () => (toFolder.checked = true));
  const folderNote = h('span', { class: 'muted' });
  const imageNote = h('p', { class: 'muted', id: 'image-note', hidden: true }, 'This version is a system image: its files are restored into a folder you choose. Its top folders are the drive\'s partitions.');
  // Files of a system image have no "place they came from" on this computer: they go into a folder.
  const fitKind = () => {
    const image = snapshots.find((s) => s.id === pick.value)?.kind === 'image';
    toOriginal.disabled = image;
    if (image) toFolder.checked = true;
    imageNote.hidden = !image;
    document.getElementById('changed-choices')!.hidden = image;
    folderNote.textContent = image ? ' (what you restore is put straight into it)' : ' (the backed-up folders are recreated inside it)';
  };
  const changedChoice = (value: string, label: string, checked = false) => h('label', { class: 'choice' }, h('input', { type: 'radio', name: 'changed', value, id: `changed-${value}`, checked }), label);
  const q = h('input', { type: 'search', id: 'search', size: '30', 'aria-label': 'Name to search for', placeholder: 'a file name, or part of it' });
  const search = async () => {
    results.replaceChildren(h('p', {}, 'Searching every version…'));
    try {
      const r = await api<FindResponse>(`/api/jobs/${encodeURIComponent(job)}/find?q=${encodeURIComponent(q.value)}`);
      const rows = [...r.found].sort((a, b) => a.shown.localeCompare(b.shown) || b.time.localeCompare(a.time)).map((f) =>
        h('tr', {}, h('td', {}, f.shown + (f.type === 'dir' ? '/' : '')), h('td', {}, `version of ${when(f.time)}`), h('td', {}, f.type === 'file' ? bytes(f.size) : ''), h('td', {}, actions(job, f.snapshot, f.path, f.type, f.shown.replace(/^.*\//, '')))),
      );
      results.replaceChildren(
        rows.length === 0 ? h('p', {}, `Nothing called "${q.value}" in any version.`) : h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Found'), h('th', {}, 'In'), h('th', {}, 'Size'), h('th', {}, ''))), h('tbody', {}, ...rows)),
        r.more ? h('p', { class: 'muted' }, 'Only the first 500 are shown; type more of the name.') : '',
      );
    } catch (e) {
      showError(results, e);
    }
  };
  const form = h('form', { class: 'row', onsubmit: (ev: Event) => (ev.preventDefault(), void search()) }, h('label', {}, 'Search every version: ', q), h('button', { type: 'submit' }, 'Search'));
  main.replaceChildren(
    h('h2', {}, `Restore files from "${job}"`),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Restore to'),
      h('label', {}, toOriginal, ' where it was backed up from'),
      h(
        'div',
        { class: 'indent', id: 'changed-choices', role: 'radiogroup', 'aria-label': 'Files changed since the backup' },
        h('span', { class: 'muted' }, 'If a file there has changed since the backup:'),
        changedChoice('keep', ' keep the file as it is now (the backed-up version is not restored)', true),
        changedChoice('keep-both', ` keep both: the backed-up version is restored beside it, as "letter (restored ${today()}).odt"`),
        changedChoice('replace', ' replace it with the backed-up version'),
      ),
      h('label', {}, toFolder, ' this folder: ', target, folderNote),
    ),
    imageNote,
    h('p', { id: 'restore-status', role: 'status' }),
    form,
    results,
    snapshots.length === 0 ? h('p', {}, 'This backup has not run yet.') : h('label', {}, 'Browse the version of: ', pick),
    pane,
  );
  fitKind();
  if (snapshots[0]) await browse(job, snapshots[0].id, '/', pane);
}

const join = (dir: string, name: string) => (dir === '/' ? `/${name}` : `${dir}/${name}`);

/** Download and Restore for one entry of a snapshot. */
function actions(job: string, id: string, path: string, type: string, name: string): HTMLElement {
  const base = `/api/jobs/${encodeURIComponent(job)}/snapshots/${id}`;
  const restoreTo = async () => {
    const status = document.getElementById('restore-status')!;
    const target = (document.getElementById('target') as HTMLInputElement).value.trim();
    const toFolder = (document.getElementById('to-folder') as HTMLInputElement).checked;
    if (toFolder && !target) return showError(status, new Error('First say which folder to restore into (above).'));
    status.replaceChildren('Restoring…');
    try {
      const changed = document.querySelector<HTMLInputElement>('input[name=changed]:checked')?.value ?? 'keep';
      const r = await api<RestoreResponse>(`${base}/restore`, toFolder ? { path, target } : { path, changed });
      const one = (n: number) => n === 1;
      const kept = r.keptChanged > 0 ? ` ${r.keptChanged} file${one(r.keptChanged) ? '' : 's'} changed since the backup ${one(r.keptChanged) ? 'was' : 'were'} kept as ${one(r.keptChanged) ? 'it is' : 'they are'}; choose "keep both" or "replace" to get the backed-up version.` : '';
      const both = r.keptBoth > 0 ? ` ${r.keptBoth} file${one(r.keptBoth) ? '' : 's'} had changed since the backup: ${one(r.keptBoth) ? 'it was' : 'they were'} kept, and the backed-up version${one(r.keptBoth) ? ' is' : 's are'} beside ${one(r.keptBoth) ? 'it' : 'them'}, named "… (restored ${today()})".` : '';
      status.replaceChildren(`Restored ${r.files} file${one(r.files) ? '' : 's'} (${bytes(r.bytes)}) into ${r.targets.join(', ')}.${kept}${both}`, r.warnings.length ? h('ul', { class: 'warnings' }, ...r.warnings.map((w) => h('li', {}, w))) : '');
    } catch (e) {
      showError(status, e);
    }
  };
  return h('span', {}, type === 'file' ? h('a', { class: 'button secondary', href: `${base}/file?path=${encodeURIComponent(path)}`, download: name }, 'Download') : '', ' ', h('button', { class: 'secondary', onclick: () => void restoreTo() }, 'Restore'));
}

const items = (n: number) => (n === 1 ? '1 item' : `${n.toLocaleString()} items`);

/** One folder of a snapshot in pages of 500; a big folder's count comes after its first page. */
async function browse(job: string, id: string, dir: string, pane: HTMLElement): Promise<void> {
  const base = `/api/jobs/${encodeURIComponent(job)}/snapshots/${id}`;
  const q = `path=${encodeURIComponent(dir)}`;
  let l = await api<ListingView>(`${base}/list?${q}&offset=0`);
  let total = l.total;
  let shown = 0;
  const row = (e: EntryView) => {
    const p = join(dir, e.name);
    return h(
      'tr',
      {},
      h('td', {}, e.type === 'dir' ? h('a', { href: '#', onclick: (ev: Event) => (ev.preventDefault(), void browse(job, id, p, pane)) }, `${e.name}/`) : e.name),
      h('td', {}, e.type === 'file' ? bytes(e.size) : ''),
      h('td', {}, when(e.mtime)),
      h('td', {}, actions(job, id, p, e.type, e.name)),
    );
  };
  const body = h('tbody', {});
  const count = h('p', { class: 'muted', id: 'item-count' }, total !== undefined ? items(total) : 'Counting…');
  const more = h('button', { class: 'secondary', id: 'show-more' });
  const show = () => {
    body.append(...l.entries.map(row));
    shown += l.entries.length;
    more.hidden = !l.more;
    more.textContent = total !== undefined ? `Show more (${(total - shown).toLocaleString()} left)` : 'Show more';
  };
  more.addEventListener('click', () => {
    more.disabled = true;
    void api<ListingView>(`${base}/list?${q}&offset=${shown}`)
      .then((next) => ((l = next), (total ??= next.total), show()))
      .catch((e: unknown) => showError(count, e))
      .finally(() => (more.disabled = false));
  });
  const up = dir === '/' ? null : h('a', { href: '#', onclick: (ev: Event) => (ev.preventDefault(), void browse(job, id, dir.replace(/\/[^/]*$/, '') || '/', pane)) }, '↑ Up one folder');
  pane.replaceChildren(h('h3', {}, l.path), count, up ?? '', h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Size'), h('th', {}, 'Changed'), h('th', {}, ''))), body), more);
  show();
  if (total === undefined) {
    await api<CountView>(`${base}/count?${q}`)
      .then((c) => {
        total = c.total;
        count.textContent = items(c.total);
        if (!more.hidden) more.textContent = `Show more (${(c.total - shown).toLocaleString()} left)`;
      })
      .catch((e: unknown) => showError(count, e));
  }
}

// ------------------------------------------------------------------ first-run wizard

async function setup(): Promise<void> {
  const info = await api<SetupInfo>('/api/setup');
  const err = h('div', { role: 'alert' });
  const step = (n: number, title: string, ...content: Child[]) => h('section', { class: 'card', id: `step-${n}` }, h('h2', {}, `${n}. ${title}`), ...content);

  const other = h('input', { type: 'text', id: 'dest-other', size: '40', 'aria-label': 'Another folder' });
  const destRadios = info.destinations.map((d: DestinationView, i: number) =>
    h('label', {}, h('input', { type: 'radio', name: 'dest', value: d.path, checked: i === 0 }), ` ${d.label} (${d.path}) — ${bytes(d.free)} free of ${bytes(d.size)}`, d.sameDiskAsHome && d.path !== info.home ? h('span', { class: 'warnings' }, ' — on the same disk as your home folder') : null),
  );
  const otherRadio = h('input', { type: 'radio', name: 'dest', value: '', id: 'dest-other-radio', checked: info.destinations.length === 0 });
  other.addEventListener('focus', () => (otherRadio.checked = true));

  const pw1 = h('input', { type: 'password', id: 'pw1', autocomplete: 'new-password', 'aria-label': 'Password' });
  const pw2 = h('input', { type: 'password', id: 'pw2', autocomplete: 'new-password', 'aria-label': 'Password again' });

  const whatHome = h('input', { type: 'radio', name: 'what', value: 'home', checked: true });
  const whatFolders = h('input', { type: 'radio', name: 'what', value: 'folders', id: 'what-folders' });
  const folders = h('textarea', { id: 'folders', rows: '3', 'aria-label': 'Folders, one per line', placeholder: `${info.home}/Documents` });
  folders.addEventListener('focus', () => (whatFolders.checked = true));
  const whatImage = h('input', { type: 'radio', name: 'what', value: 'image', id: 'what-image' });
  const device = h('input', { type: 'text', id: 'device', size: '20', 'aria-label': 'Drive', placeholder: '/dev/sda' });
  device.addEventListener('focus', () => (whatImage.checked = true));
  // Windows 7's "include a system image": the folders, and with them an image of the system drive.
  const includeImage = h('input', { type: 'checkbox', id: 'include-image' });
  const alsoDevice = h('input', { type: 'text', id: 'include-device', size: '20', 'aria-label': 'Drive for the system image', placeholder: '/dev/sda' });
  alsoDevice.addEventListener('input', () => (includeImage.checked = alsoDevice.value.trim() !== ''));
  /** The wizard's step 3 as the server takes it. */
  const chosen = (): Pick<SetupBody, 'what' | 'paths' | 'device' | 'includeImage'> => {
    const what = whatHome.checked ? 'home' : whatImage.checked ? 'image' : 'folders';
    const paths = folders.value.split('\n').map((x) => x.trim()).filter(Boolean);
    if (what === 'image') return { what, paths, device: device.value.trim() };
    return { what, paths, ...(includeImage.checked ? { includeImage: true, device: alsoDevice.value.trim() } : {}) };
  };

  const freq = h('select', { id: 'freq', 'aria-label': 'How often' }, h('option', { value: 'daily' }, 'Every day'), h('option', { value: 'weekly' }, 'Every week'), h('option', { value: 'every' }, 'Every few hours'));
  const day = h('select', { id: 'day', 'aria-label': 'Day of the week' }, ...['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'].map((d) => h('option', { value: d.slice(0, 3).toLowerCase() }, d)));
  const time = h('input', { type: 'time', id: 'time', value: '19:00', 'aria-label': 'Time' });
  const hours = h('input', { type: 'number', id: 'hours', min: '1', max: '24', value: '6', 'aria-label': 'Hours between backups' });
  const name = h('input', { type: 'text', id: 'name', value: 'My files', 'aria-label': 'Name of this backup' });

  const create = h('button', { id: 'create' }, 'Create the backup');
  // Whether the destination shares a physical disk with what is chosen to protect, asked again as the choices change.
  const sameDisk = h('p', { id: 'same-disk', class: 'warnings', role: 'status' });
  let asked = 0;
  const checkDisk = () => {
    const n = ++asked;
    const checked = document.querySelector<HTMLInputElement>('input[name=dest]:checked');
    const destination = checked && checked.value ? checked.value : other.value.trim();
    const body: SetupCheckBody = { destination, ...chosen() };
    const what = body.what;
    void api<SetupCheck>('/api/setup/check', body)
      .then((r) => {
        if (n !== asked) return;
        const list = r.sameDisk.join(', ');
        sameDisk.textContent = r.sameDisk.length === 0 ? '' : what === 'image' ? `The backup would be on the drive it is an image of (${list}): if that drive fails, the backup is lost with it. Choose another drive.` : `The backup would be on the same disk as ${list}: if that disk fails, the backup is lost with it. Choose an external drive if you can.`;
      })
      .catch(() => undefined); // a half-typed path: nothing to say yet
  };
  create.addEventListener('click', () => {
    void (async () => {
      err.replaceChildren();
      const checked = document.querySelector<HTMLInputElement>('input[name=dest]:checked');
      const destination = checked && checked.value ? checked.value : other.value.trim();
      if (!destination) return showError(err, new Error('Step 1: choose where to keep the backup.'));
      if (pw1.value.length < 8) return showError(err, new Error('Step 2: choose a password of at least 8 characters.'));
      if (pw1.value !== pw2.value) return showError(err, new Error('Step 2: the two passwords differ. Type them again.'));
      const schedule = freq.value === 'daily' ? `daily ${time.value}` : freq.value === 'weekly' ? `weekly ${day.value} ${time.value}` : `every ${hours.value}h`;
      create.disabled = true;
      create.textContent = 'Creating…';
      try {
        const r = await api<SetupResponse>('/api/setup', {
          name: name.value.trim(),
          destination,
          password: pw1.value,
          ...chosen(),
          schedule,
        });
        recoveryKey(r);
      } catch (e) {
        showError(err, e);
        create.disabled = false;
        create.textContent = 'Create the backup';
      }
    })();
  });

  main.replaceChildren(
    h('h2', {}, 'Set up a backup'),
    h('p', {}, 'Five short steps. Lifeboat then backs up by itself; you can close this page.'),
    step(1, 'Where should the backup go?', h('p', { class: 'muted' }, 'Best: an external drive, kept plugged in or connected regularly.'), ...destRadios, h('label', {}, otherRadio, ' Another folder: ', other)),
    step(2, 'Choose a password', h('p', { class: 'muted' }, 'The backup is encrypted with it. Lifeboat keeps it in a file only you can read, so backups run without asking.'), h('label', {}, 'Password: ', pw1), h('label', {}, 'The same password again: ', pw2)),
    step(3, 'What should be protected?', h('label', {}, whatHome, ` My home folder (${info.home})`), h('label', {}, whatFolders, ' These folders (one per line):'), folders, h('label', { class: 'indent' }, includeImage, ' With them, a system image of the drive ', alsoDevice, ' (to put the whole system back on a new disk; Lifeboat must run as administrator)'), h('label', {}, whatImage, ' Only a system image of this whole drive (everything on it, to put back on a new disk; Lifeboat must run as administrator): ', device)),
    step(4, 'When?', h('div', { class: 'row' }, freq, h('span', { id: 'day-wrap' }, 'on ', day), h('span', { id: 'time-wrap' }, 'at ', time), h('span', { id: 'hours-wrap' }, 'every ', hours, ' hours')), h('label', {}, 'Name of this backup: ', name)),
    sameDisk,
    h('div', { class: 'row' }, create),
    err,
  );
  const sync = () => {
    document.getElementById('day-wrap')!.hidden = freq.value !== 'weekly';
    document.getElementById('time-wrap')!.hidden = freq.value === 'every';
    document.getElementById('hours-wrap')!.hidden = freq.value !== 'every';
  };
  freq.addEventListener('change', sync);
  sync();
  for (const el of [document.getElementById('step-1')!, document.getElementById('step-3')!]) {
    el.addEventListener('change', checkDisk);
    el.addEventListener('input', checkDisk);
  }
  checkDisk();
}

function recoveryKey(r: SetupResponse): void {
  const start = h('button', { id: 'start', disabled: r.recoveryKey !== undefined }, 'Start the first backup now');
  const confirm = h('input', { type: 'checkbox', id: 'written' });
  confirm.addEventListener('change', () => (start.disabled = !confirm.checked));
  start.addEventListener('click', () => {
    void api(`/api/jobs/${encodeURIComponent(r.job)}/run`, {}).then(() => (location.hash = '#/'));
  });
  main.replaceChildren(
    h('h2', {}, 'Your recovery key'),
    r.recoveryKey
      ? h(
          'section',
          { class: 'card' },
          h('p', {}, 'If you forget the password, this key is the only other way to open your backup. Write it down or print it, and keep it away from this computer. It is shown only now.'),
          h('p', { class: 'key', id: 'recovery-key' }, r.recoveryKey),
          h('div', { class: 'row' }, h('button', { class: 'secondary', onclick: () => print() }, 'Print'), h('label', {}, confirm, ' I have written it down')),
        )
      : h('p', {}, 'The drive already held a Lifeboat backup; your password opened it, so it keeps its own recovery key.'),
    h('section', { class: 'card', id: 'estimate' }, h('h2', {}, 'Before the first backup'), h('p', {}, 'Counting what will be backed up…')),
    h('p', {}, start),
  );
  void api<EstimateView>(`/api/jobs/${encodeURIComponent(r.job)}/estimate`)
    .then((e) => {
      const box = document.getElementById('estimate');
      if (!box) return;
      const size = `${e.complete ? 'About' : 'More than'} ${bytes(e.bytes)}${e.files ? ` in ${e.files.toLocaleString()} files` : ''}`;
      box.replaceChildren(
        h('h2', {}, 'Before the first backup'),
        h('p', { id: 'estimate-text' }, `${size}. The first backup takes about ${duration(e.seconds)}; later ones read only what changed and are much quicker.`),
        e.mayNotFit ? h('p', { class: 'warnings' }, `The destination has only ${bytes(e.free)} free. Compression may make it fit, but a larger drive is safer.`) : '',
      );
    })
    .catch((e: unknown) => showError(document.getElementById('estimate') ?? main, e));
}

// ------------------------------------------------------------------ routing

const route = () => location.hash.replace(/^#\/?/, '').split('/')[0] ?? '';

async function render(): Promise<void> {
  const [page, arg] = location.hash.replace(/^#\/?/, '').split('/');
  try {
    const o = await api<Overview>('/api/overview');
    banner.hidden = o.warnings.length === 0;
    banner.replaceChildren(...o.warnings.map((w) => h('p', {}, w)));
    if (page === 'setup') await setup();
    else if (page === 'history') await history();
    else if (page === 'restore') await restorePage(arg ? decodeURIComponent(arg) : undefined);
    else if (page === 'space') await space();
    else await overview();
  } catch (e) {
    showError(main, e);
  }
}

window.addEventListener('hashchange', () => void render());
const events = new EventSource('/api/events');
events.onmessage = (m: MessageEvent<string>) => onServerEvent(JSON.parse(m.data) as ServerEvent);
void render();

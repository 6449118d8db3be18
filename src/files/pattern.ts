/**
 * Exclude patterns for backup and restore, in the style of restic and .gitignore:
 * `*` matches within one name, `**` across folders, `?` one character, `[abc]`/`[!a-z]` a class.
 * A pattern starting with `/` is anchored (the absolute path in a backup, the path inside the
 * snapshot in a restore); any other pattern may match the end of a path (`*.tmp`, `cache/x`).
 * A folder that matches is skipped with everything under it.
 */

function globToRegex(glob: string): string {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = glob.slice(i + 1, end);
        const neg = body.startsWith('!') || body.startsWith('^');
        if (neg) body = body.slice(1);
        re += `[${neg ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return re;
}

export class PathMatcher {
  private readonly res: RegExp[];
  constructor(patterns: readonly string[]) {
    this.res = patterns
      .map((p) => p.trim())
      .filter((p) => p.length > 0 && !p.startsWith('#'))
      .map((p) => {
        const body = p.replace(/\/+$/, '');
        return new RegExp(body.startsWith('/') ? `^${globToRegex(body)}$` : `(?:^|/)${globToRegex(body)}$`, 's');
      });
  }

  get empty(): boolean {
    return this.res.length === 0;
  }

  /** `path` is '/'-separated; absolute for backups, '/'-prefixed inside a snapshot for restores. */
  matches(path: string): boolean {
    for (const r of this.res) if (r.test(path)) return true;
    return false;
  }
}

/** Parses sizes such as 500, 10K, 1.5M, 2G, 1T (binary units; a trailing B or iB is allowed). */
export function parseSize(s: string): number | undefined {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(s);
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

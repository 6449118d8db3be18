/**
 * The dashboard's door. Every request needs the secret token: given once in the URL Lifeboat
 * prints (then kept in a cookie that only this site sends), or as "Authorization: Bearer" for
 * scripts. The Host header must be one of the server's own names, so a web page whose DNS name was
 * re-pointed at 127.0.0.1 (DNS rebinding) is refused. A request that changes something must come
 * from the dashboard itself (its Origin header), so another site open in the same browser cannot
 * start or restore anything (CSRF).
 */
import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';

export const COOKIE = 'lifeboat_token';

function same(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const refuse = (status: 401 | 403, text: string) => new Response(`${text}\n`, { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' } });

/** `hosts`: the Host header values this server answers to ("127.0.0.1:8123", "localhost:8123"), read on each request (the port is known only once listening). */
export function security(token: string, hosts: () => ReadonlySet<string>): MiddlewareHandler {
  return async (c, next) => {
    const host = (c.req.header('host') ?? '').toLowerCase();
    if (!hosts().has(host)) return refuse(403, 'Refused: this request was addressed to another name than Lifeboat\'s. Open the address Lifeboat printed when it started.');
    const url = new URL(c.req.url);
    const given = url.searchParams.get('token');
    if (given !== null && c.req.method === 'GET') {
      if (!same(given, token)) return refuse(401, 'The secret key in this address is not right. Open the address Lifeboat printed when it started.');
      setCookie(c, COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/' });
      url.searchParams.delete('token');
      return c.redirect(url.pathname + url.search + url.hash, 303); // the token leaves the address bar and the history
    }
    const bearer = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1];
    const byCookie = same(getCookie(c, COOKIE), token);
    if (!byCookie && !same(bearer, token)) return refuse(401, 'Open the address Lifeboat printed when it started ("lifeboat serve"): it holds the secret key of this dashboard.');
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const origin = c.req.header('origin');
      // A browser always sends Origin on a cross-site POST; a script using the Bearer token sends none.
      const fromHere = origin !== undefined ? origin.toLowerCase() === `http://${host}` : bearer !== undefined && c.req.header('sec-fetch-site') === undefined;
      if (!fromHere) return refuse(403, 'Refused: this request came from another web site, not from the Lifeboat dashboard.');
    }
    c.header('x-frame-options', 'DENY');
    c.header('x-content-type-options', 'nosniff');
    c.header('referrer-policy', 'no-referrer');
    c.header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'");
    await next();
  };
}

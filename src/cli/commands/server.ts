/**
 * lifeboat server: serves repositories to other computers (server/repo-server.ts), and its token
 * management (`server token add|list|revoke`).
 */
import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { ExitCode, LifeboatError } from '../../util/errors.js';
import { isFolderLocation } from '../../store/open.js';
import { RepoServer, ROLES, TokenFile, type Role } from '../../server/repo-server.js';
import { serverCertificate } from '../../server/certificate.js';
import type { Context } from '../context.js';
import { dataDir } from '../../jobs/paths.js';
import { collect } from './maintenance.js';
import type { Run } from './repo.js';

const DEFAULT_LISTEN = '127.0.0.1:8765';

/**
 * The server's own folder (tokens, lock owners): `.lifeboat-server` inside a data folder (no
 * repository can be named so), or `server` in Lifeboat's data folder when the data is in S3.
 */
export function serverStateDir(data: string): string {
  return isFolderLocation(data) ? join(resolve(data), '.lifeboat-server') : join(dataDir(), 'server');
}

function parseListen(text: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new LifeboatError('usage', `"${text}" is not an address to listen on; write it as ADDRESS:PORT, for example 0.0.0.0:8765.`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function needData(o: { data?: string }): string {
  if (!o.data) throw new LifeboatError('usage', 'Say where the server keeps its repositories with --data FOLDER or --data s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX].');
  return o.data;
}

async function serve(ctx: Context, o: { data?: string; listen: string; http?: boolean }): Promise<number> {
  const data = needData(o);
  const { host, port } = parseListen(o.listen);
  const stateDir = serverStateDir(data);
  const certificate = o.http ? undefined : serverCertificate(stateDir);
  const server = new RepoServer({ data, stateDir, ...(certificate ? { tls: certificate } : {}), onRefused: (line) => ctx.info(line), onFailed: (line) => ctx.info(line) });
  let address;
  try {
    address = await server.listen(host, port);
  } catch (e) {
    await server.close();
    const code = (e as NodeJS.ErrnoException).code;
    throw new LifeboatError('usage', `The server cannot listen on ${o.listen} (${code === 'EADDRINUSE' ? 'another program uses that port' : code === 'EACCES' ? 'that port needs more privileges' : String(code)}); choose another with --listen ADDRESS:PORT.`);
  }
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const where = isFolderLocation(data) ? resolve(data) : data;
  if (certificate) ctx.out(`Lifeboat server listening on https://${shown}:${address.port} with certificate fingerprint ${certificate.fingerprint} (repositories in ${where}); stop with Ctrl-C.`);
  else ctx.out(`Lifeboat server listening on http://${shown}:${address.port} without encryption (repositories in ${where}); stop with Ctrl-C.`);
  if (server.tokens.list().length === 0) ctx.info(`No tokens yet: add one with \`lifeboat server token add NAME --role append --data ${data}\`.`);
  const stopped = await new Promise<'int' | 'term'>((res) => {
    const onTerm = (): void => res('term');
    process.once('SIGTERM', onTerm);
    ctx.abort.signal.addEventListener('abort', () => {
      process.off('SIGTERM', onTerm);
      res('int');
    });
  });
  await server.close();
  ctx.info('Lifeboat server stopped.');
  return stopped === 'int' ? ExitCode.interrupted : ExitCode.ok;
}

export function registerServerCommands(program: Command, run: Run): void {
  const server = program
    .command('server')
    .description('serve repositories to other computers, with a token per computer (append-only tokens cannot delete backups)')
    .option('--data <location>', 'where the repositories are kept: a folder (one folder per repository) or s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]')
    .option('--listen <address:port>', 'address and port to listen on', DEFAULT_LISTEN)
    .option('--http', 'plain HTTP instead of HTTPS, only for loopback and tests')
    .action(run(async (ctx, o: { data?: string; listen: string; http?: boolean }) => serve(ctx, o)));

  const token = server.command('token').description("manage the server's tokens (one per computer)");
  // --data may be given before or after `token …`: the context's options hold it either way.
  const tokenFile = (ctx: Context): TokenFile => new TokenFile(serverStateDir(needData(ctx.global as { data?: string })));
  token
    .command('add <name>')
    .description('make a new token and print it (the only time it is shown)')
    .requiredOption('--role <role>', 'append (back up, never delete), read (restore and browse) or admin (everything: forget, prune, keys)')
    .option('--repository <name>', 'the token reaches only this repository (repeatable; every repository on the server without it)', collect, [] as string[])
    .option('--data <location>', 'the data location the server uses')
    .action(
      run(async (ctx, name: string, o: { role: string; repository: string[] }) => {
        if (!ROLES.includes(o.role as Role)) throw new LifeboatError('usage', `"${o.role}" is not a role: use append, read or admin.`);
        // --repo is the global repository location: given here, a token meant for one repository would reach them all.
        if ((ctx.global as { repo?: string }).repo !== undefined) throw new LifeboatError('usage', 'To limit a token to a repository write --repository NAME (--repo names the repository a command works on).');
        const t = tokenFile(ctx).add(name, o.role as Role, o.repository);
        const reach = o.repository.length > 0 ? `, for ${o.repository.map((r) => `"${r}"`).join(', ')} only` : ', for every repository on the server';
        if (ctx.json) ctx.printJson({ name, role: o.role, token: t, repositories: o.repository.length > 0 ? o.repository : null });
        else {
          ctx.out(t);
          ctx.info(`Token "${name}" (${o.role}${reach}) added. It is shown only now: give it to that computer (LIFEBOAT_TOKEN or --token-file).`);
        }
      }),
    );
  token
    .command('list')
    .description('list the tokens (names and roles; the tokens themselves are not kept)')
    .option('--data <location>', 'the data location the server uses')
    .action(
      run(async (ctx) => {
        const all = tokenFile(ctx).list();
        if (ctx.json) ctx.printJson(all.map((t) => ({ name: t.name, role: t.role, created: t.created, repositories: t.repositories ?? null })));
        else if (all.length === 0) ctx.info('No tokens.');
        else for (const t of all) ctx.out(`${t.name}\t${t.role}\t${t.repositories?.join(',') ?? '(all repositories)'}\t${t.created}`);
      }),
    );
  token
    .command('revoke <name>')
    .description('remove a token: the computer using it is refused from now on')
    .option('--data <location>', 'the data location the server uses')
    .action(
      run(async (ctx, name: string) => {
        if (!tokenFile(ctx).revoke(name)) throw new LifeboatError('usage', `There is no token named "${name}"; \`lifeboat server token list\` shows them.`);
        ctx.report(`Token "${name}" revoked.`);
      }),
    );
}

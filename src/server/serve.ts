/**
 * `lifeboat serve`: the scheduler and the dashboard in one process. Listens on 127.0.0.1 unless
 * told otherwise, with a fresh secret token each start; the URL with the token is the way in.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Scheduler, type SchedulerEvent, type SchedulerOptions } from '../jobs/scheduler.js';
import { JobState } from '../jobs/state.js';
import { LifeboatError, errnoCode } from '../util/errors.js';
import { createApp } from './app.js';

export interface DashboardOptions extends Omit<SchedulerOptions, 'onEvent'> {
  readonly statePath: string;
  readonly port?: number;
  readonly listen?: string;
  /** Start the scheduler's timer (tests drive it by hand). Default true. */
  readonly schedule?: boolean;
  readonly token?: string;
}

export interface Dashboard {
  /** The address to open, with the token. */
  readonly url: string;
  readonly origin: string;
  readonly token: string;
  readonly scheduler: Scheduler;
  close(): Promise<void>;
}

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const state = JobState.open(o.statePath);
  const listeners = new Set<(e: SchedulerEvent) => void>();
  const scheduler = new Scheduler(state, {
    ...o,
    onEvent: (e) => {
      for (const l of listeners) l(e);
    },
  });
  const token = o.token ?? randomBytes(24).toString('base64url');
  const listen = o.listen ?? '127.0.0.1';
  const hosts = new Set<string>();
  const { app, close } = createApp({
    scheduler,
    token,
    hosts: () => hosts,
    subscribe: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  });
  let server: ServerType;
  const port = await new Promise<number>((res, rej) => {
    server = serve({ fetch: app.fetch, port: o.port ?? 0, hostname: listen }, (info: AddressInfo) => res(info.port));
    server.once('error', (e) => {
      const code = errnoCode(e);
      rej(
        code === 'EADDRINUSE'
          ? new LifeboatError('conflict', `Port ${o.port} is in use (is Lifeboat already running?). Choose another with --port.`)
          : code === 'EADDRNOTAVAIL'
            ? new LifeboatError('usage', `This computer has no address ${listen} to listen on. Leave out --listen to use 127.0.0.1.`)
            : e,
      );
    });
  }).catch((e: unknown) => {
    state.close();
    throw e;
  });
  const shown = listen === '0.0.0.0' || listen === '::' ? '127.0.0.1' : listen;
  for (const h of ['127.0.0.1', 'localhost', '[::1]', listen.includes(':') && !listen.startsWith('[') ? `[${listen}]` : listen]) hosts.add(`${h.toLowerCase()}:${port}`);
  const origin = `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;
  if (o.schedule !== false) scheduler.start();
  return {
    url: `${origin}/?token=${token}`,
    origin,
    token,
    scheduler,
    close: async () => {
      await scheduler.stop();
      await close();
      const closed = new Promise<void>((res) => server.close(() => res()));
      (server as { closeAllConnections?: () => void }).closeAllConnections?.(); // the event streams stay open otherwise
      await closed;
      state.close();
    },
  };
}

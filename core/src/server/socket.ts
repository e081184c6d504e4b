import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { FailedPreconditionError } from '../errdefs';

/** Strips a `unix://` prefix: ctr, containerd's config and berth's flags accept both forms. */
export function socketPath(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

function answers(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const conn = net.connect(sock);
    conn.once('connect', () => {
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => resolve(false));
  });
}

/**
 * Makes `address` ready to listen on: its directory exists with mode 0711, a
 * socket file nobody answers on (left by a killed server) is removed, and a live
 * server or a file that is not a socket is refused (FailedPrecondition).
 * `inUse` words the refusal for the caller (`another daemon is already serving on`).
 */
export async function prepareSocket(address: string, inUse = 'another server is already listening on'): Promise<string> {
  const sock = socketPath(address);
  fs.mkdirSync(path.dirname(sock), { recursive: true, mode: 0o711 });
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(sock);
  } catch {
    return sock;
  }
  if (!stat.isSocket()) throw new FailedPreconditionError(`${sock} exists and is not a socket; refusing to replace it`);
  if (await answers(sock)) throw new FailedPreconditionError(`${inUse} ${sock}`);
  fs.unlinkSync(sock);
  return sock;
}

/** Owner and group only (0660), as containerd does with its sockets. */
export function secureSocket(sock: string, uid?: number, gid?: number): void {
  fs.chmodSync(sock, 0o660);
  if (uid !== undefined || gid !== undefined) {
    fs.chownSync(sock, uid ?? process.getuid?.() ?? 0, gid ?? process.getgid?.() ?? 0);
  }
}

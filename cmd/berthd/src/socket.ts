import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { FailedPreconditionError } from '@berth/core';

/** Strips a `unix://` prefix: ctr and berth accept both forms. */
export function socketPath(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

function probe(sock: string): Promise<boolean> {
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
 * socket file nobody answers on (left by a killed daemon) is removed, and a
 * live daemon already serving there is refused rather than displaced.
 */
export async function prepareSocket(address: string): Promise<string> {
  const sock = socketPath(address);
  const dir = path.dirname(sock);
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  let stat: fs.Stats | undefined;
  try {
    stat = fs.lstatSync(sock);
  } catch {
    return sock;
  }
  if (!stat.isSocket()) {
    throw new FailedPreconditionError(`${sock} exists and is not a socket; refusing to replace it`);
  }
  if (await probe(sock)) {
    throw new FailedPreconditionError(`another daemon is already serving on ${sock}`);
  }
  fs.unlinkSync(sock);
  return sock;
}

/** Restricts the socket to its owner and group, as containerd does. */
export function secureSocket(sock: string, uid?: number, gid?: number): void {
  fs.chmodSync(sock, 0o660);
  if (uid !== undefined || gid !== undefined) {
    fs.chownSync(sock, uid ?? process.getuid?.() ?? 0, gid ?? process.getgid?.() ?? 0);
  }
}

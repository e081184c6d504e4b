import { prepareSocket as prepareSharedSocket } from '@berth/core';

export { secureSocket, socketPath } from '@berth/core';

/** berthd's socket: refuses to displace a live daemon, replaces a stale socket. */
export function prepareSocket(address: string): Promise<string> {
  return prepareSharedSocket(address, 'another daemon is already serving on');
}

// One implementation of the socket rules, shared with berthd, lives in @berth/core.
export { prepareSocket, secureSocket, socketPath } from '@berth/core';

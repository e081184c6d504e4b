export { Daemon } from './daemon';
export { builtinPlugins } from './builtins';
export { resolveConfig, runBerthd } from './cli';
export { prepareSocket, socketPath } from './socket';

export * from './types';
export { containersServicePlugin } from './plugin';

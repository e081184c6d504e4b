export { LocalContentStore } from './local-content-store';
export { LocalContentWriter } from './local-writer';
export { contentPlugin } from './plugin';

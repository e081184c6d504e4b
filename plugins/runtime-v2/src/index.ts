export { runtimeV2Plugin } from './plugin';

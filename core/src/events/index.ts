export * from './types';
export { Exchange, DEFAULT_SUBSCRIBER_BUFFER_SIZE } from './exchange';
export type { ExchangeOptions } from './exchange';
export { validateTopic } from './validation';
export { envelopeAdaptor } from './envelope-adaptor';

export * from './errdefs';

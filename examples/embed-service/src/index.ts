export { startEmbedService, type EmbedServiceOptions, type RunningService, type RunRequest, type RunResponse } from './service';

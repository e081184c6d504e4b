export { startEmbedService, type EmbedServiceOptions, type RunningService } from './service';

/**
 * @berth/remotes: an OCI distribution client (resolve, fetch, push; anonymous,
 * basic and bearer-token auth; custom CAs; containerd's hosts.toml mirrors;
 * retries and a progress deadline) and image pull and push on top of a
 * ContentStore.
 */
export {
  type ImageReference,
  DOCKER_HUB_DOMAIN,
  parseReference,
  formatReference,
  normalizeReference,
  repositoryName,
  manifestLocator,
} from './reference';
export { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, platformMatches } from './platforms';
export {
  MediaTypes,
  manifestAcceptTypes,
  isIndexType,
  isManifestType,
  isManifestOrIndexType,
  isConfigType,
  isLayerType,
  ingestRefFor,
  childGcLabels,
} from './media-types';
export {
  type HostCapability,
  type HostTls,
  type HostsOptions,
  type RegistryHost,
  configureHosts,
  defaultServerOrigin,
  hostsWith,
} from './hosts';
export {
  type AuthChallenge,
  type Credentials,
  type CredentialsOption,
  type CredentialsProvider,
  parseWwwAuthenticate,
} from './auth';
export {
  type ContentSource,
  type FetchedContent,
  type Fetcher,
  type FetchOptions,
  type Pusher,
  type PushOptions,
  type PushStatus,
  type Resolved,
  type ResolverOptions,
  DEFAULT_MAX_MANIFEST_SIZE,
  DEFAULT_PROGRESS_TIMEOUT_MS,
  RegistryResolver,
} from './resolver';
export {
  type BlobProgress,
  type BlobProgressListener,
  type BlobStatus,
  type PullImageOptions,
  type PullResult,
  distributionSourceLabelPrefix,
  parseIndex,
  parseManifest,
  pullImage,
  selectManifests,
} from './pull';
export { type PushImageOptions, type PushResult, pushImage } from './push';

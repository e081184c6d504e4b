import { imagesServicePlugin } from '../images/plugin';
import { leasesPlugin, leasesServicePlugin } from '../leases/plugin';
import { contentServicePlugin } from '../metadata/content-plugin';
import type { PluginRegistration } from '../plugin/types';
import { gcPlugin } from './plugin';

/**
 * The metadata-level content plugins, to add to the daemon's builtins next
 * to corePlugins and a raw content plugin (e.g. content-local): the garbage
 * collector, leases, and the images, content and leases services.
 */
export const coreContentPlugins: PluginRegistration[] = [
  gcPlugin as PluginRegistration,
  leasesPlugin as PluginRegistration,
  contentServicePlugin as PluginRegistration,
  imagesServicePlugin as PluginRegistration,
  leasesServicePlugin as PluginRegistration,
];

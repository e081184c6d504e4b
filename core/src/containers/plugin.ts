import { PluginSkipError } from '../plugin/plugin-skip-error';
import { PluginType, type PluginRegistration } from '../plugin/types';

/** Placeholder registration until the implementation lands: skipped, with a reason. */
export const containersServicePlugin: PluginRegistration = {
  type: PluginType.Service,
  id: 'containers',
  init() {
    throw new PluginSkipError('not implemented yet');
  },
};

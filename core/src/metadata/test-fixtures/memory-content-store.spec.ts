import { contentSuite } from '../../content/content-suite';
import { MemoryContentStore } from './memory-content-store';

// The fixture stands in for LocalContentStore in metadata tests, so it must keep the same contract.
contentSuite('memory fixture', async () => ({ store: new MemoryContentStore(), cleanup: async () => undefined }));

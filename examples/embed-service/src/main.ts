#!/usr/bin/env node
import { startEmbedService } from './service';

const root = process.env.BERTH_ROOT ?? '/var/lib/berth-embed';
const state = process.env.BERTH_STATE ?? '/run/berth-embed';
const port = Number(process.env.PORT ?? 8080);
// For a local registry without TLS (POST /run pulls missing images).
const registry = process.env.BERTH_PLAIN_HTTP === '1' ? { plainHttp: true } : undefined;

startEmbedService({ root, state, port, registry }).then(
  (svc) => {
    process.stdout.write(`embed-service listening on ${svc.url} (berth root ${root})\n`);
    const stop = () => void svc.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  },
  (err: unknown) => {
    process.stderr.write(`embed-service: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

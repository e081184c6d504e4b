#!/usr/bin/env node
import 'reflect-metadata';
import { runBerthd } from './cli';

runBerthd(process.argv).then(
  // Exit explicitly: a stopped daemon may still hold idle handles (timers, sockets).
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`berthd: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

#!/usr/bin/env node
// The `factory` CLI. TypeScript sources run through tsx: no build step between a change and its use.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');

// The control zone alone (registry, policy, audit, and all workflow code).
process.argv.splice(2, Infinity, 'control');
await import('./run.ts');

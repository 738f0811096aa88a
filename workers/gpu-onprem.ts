// The on-prem GPU zone alone (training launchers).
process.argv.splice(2, Infinity, 'gpu-onprem');
await import('./run.ts');

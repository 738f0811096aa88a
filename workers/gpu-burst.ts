// The burst GPU zone alone (training launchers at a cloud or partner site; the pack says what data it may hold).
process.argv.splice(2, Infinity, 'gpu-burst');
await import('./run.ts');

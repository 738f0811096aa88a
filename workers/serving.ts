// The serving zone alone (Triton model control and smoke inference).
process.argv.splice(2, Infinity, 'serving');
await import('./run.ts');

// The venv's paths are configuration, used by production code too: they live in src/config/venv.ts.
export { requireFile, venvPaths } from '../config/venv.ts';

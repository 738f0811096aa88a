/** What the console's /health answers as its service: how `factory dev up` tells ours from another server on the port. */
export const CONSOLE_SERVICE = 'ai-factory-console';

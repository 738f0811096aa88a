export declare const SOURCE_DIRS: string[];
export declare function newestSourceMtime(root: string): number;

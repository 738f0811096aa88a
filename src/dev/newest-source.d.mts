export declare function newestSourceMtime(root: string): number;

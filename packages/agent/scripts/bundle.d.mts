/** True when the directory (default packages/agent/dist/bundle) holds a bundle no older than every file it was built from. */
export function bundleFresh(dir?: string): boolean;

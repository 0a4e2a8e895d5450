import { OverlayError } from '@overlay/dataplane';

/**
 * A system call failed. `code` is the errno name (`EADDRINUSE`, `EPERM`, ...), `errno` its
 * number and `syscall` the call that failed, as in Node's own system errors.
 */
export class NativeError extends OverlayError {
  readonly errno: number;
  readonly syscall: string;
  constructor(code: string, message: string, errno: number, syscall: string) {
    super(code, message);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** TAP/TUN and recvmmsg/sendmmsg exist only on Linux. */
export class UnsupportedPlatformError extends OverlayError {
  readonly platform: string;
  constructor(platform: string) {
    super('OVL_ERR_UNSUPPORTED_PLATFORM', `@overlay/native needs Linux (this is ${platform})`);
    this.platform = platform;
  }
}

/** The compiled addon is missing: the package was installed without running node-gyp. */
export class NativeAddonMissingError extends OverlayError {
  constructor(cause: unknown) {
    super('OVL_ERR_NATIVE_ADDON_MISSING', 'the native addon is not built: run `pnpm run build:native` in packages/native', { cause });
  }
}

import { InvalidConfigError } from '@overlay/dataplane';
import { native } from './binding.js';

/** MTU of a link in the calling process's namespace. Throws NativeError ('ENODEV' if absent). */
export function linkMtu(name: string): number {
  return native().linkMtu(name);
}

/** Set a link's MTU (ioctl SIOCSIFMTU). */
export function setLinkMtu(name: string, mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new InvalidConfigError('mtu', `must be an integer in 68..65535, got ${mtu}`);
  native().linkSet(name, mtu, 0, 0);
}

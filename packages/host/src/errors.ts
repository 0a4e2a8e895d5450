import { OverlayError } from '@overlay/dataplane';

/**
 * No link in this network namespace holds the underlay address, so the overlay MTU cannot be
 * derived from it. Name the link (`underlay.device`) or bind an address that is configured.
 */
export class UnderlayNotFoundError extends OverlayError {
  readonly address: string;
  constructor(address: string) {
    super('OVL_ERR_HOST_UNDERLAY_NOT_FOUND', `no link in this network namespace holds ${address}; name it with underlay.device`);
    this.address = address;
  }
}

/** An `ip` command that sets up an overlay link (MAC, address, up/down) failed. */
export class LinkSetupError extends OverlayError {
  readonly link: string;
  readonly args: readonly string[];
  constructor(link: string, args: readonly string[], detail: string, cause?: unknown) {
    super('OVL_ERR_HOST_LINK_SETUP', `ip ${args.join(' ')} failed for ${link}: ${detail}`, { cause });
    this.link = link;
    this.args = args;
  }
}

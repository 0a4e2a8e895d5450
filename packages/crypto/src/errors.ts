import { OverlayError } from '@overlay/dataplane';

/**
 * A key string is not a WireGuard key (44 base64 characters encoding 32 bytes). The message
 * names the field only: key material never appears in errors or logs.
 */
export class InvalidKeyError extends OverlayError {
  readonly field: string;
  constructor(field: string) {
    super('OVL_ERR_INVALID_KEY', `${field}: not a WireGuard key (44 base64 characters, 32 bytes)`);
    this.field = field;
  }
}

/** A peer was referenced by a public key the device does not hold. */
export class UnknownPeerError extends OverlayError {
  constructor() {
    super('OVL_ERR_UNKNOWN_PEER', 'no peer with that public key');
  }
}

/** An allowed-IP or endpoint string does not parse: the dataplane's error, one class for both packages. */
export { InvalidAddressError } from '@overlay/dataplane';

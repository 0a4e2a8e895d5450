/**
 * Every failure the project reports has its own class with a stable `code`, so callers can
 * branch on `err.code` without parsing messages. Packages extend `OverlayError`.
 */
export class OverlayError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A configuration value is out of range or inconsistent. `field` names the offending option. */
export class InvalidConfigError extends OverlayError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('OVL_ERR_INVALID_CONFIG', `${field}: ${message}`);
    this.field = field;
  }
}

/** A pool slot was released twice or released while not acquired: a bug in the caller. */
export class DoubleReleaseError extends OverlayError {
  readonly slot: number;
  constructor(slot: number) {
    super('OVL_ERR_DOUBLE_RELEASE', `buffer slot ${slot} released while not in use`);
    this.slot = slot;
  }
}

/** The object was used after close(). */
export class ClosedError extends OverlayError {
  constructor(what: string) {
    super('OVL_ERR_CLOSED', `${what} is closed`);
  }
}

/** A textual address (MAC, IPv4, IPv6) or a VNI given to the control API is malformed. */
export class InvalidAddressError extends OverlayError {
  readonly input: string;
  constructor(kind: string, input: string) {
    super('OVL_ERR_INVALID_ADDRESS', `invalid ${kind}: ${JSON.stringify(input.slice(0, 64))}`);
    this.input = input;
  }
}

/** No network with that VNI is attached to the dataplane. */
export class UnknownNetworkError extends OverlayError {
  readonly vni: number;
  constructor(vni: number) {
    super('OVL_ERR_UNKNOWN_NETWORK', `no network with VNI ${vni}`);
    this.vni = vni;
  }
}

/** A network with that VNI is already attached. */
export class DuplicateNetworkError extends OverlayError {
  readonly vni: number;
  constructor(vni: number) {
    super('OVL_ERR_DUPLICATE_NETWORK', `a network with VNI ${vni} already exists`);
    this.vni = vni;
  }
}

/** A stage with that name is already in the network's stage list. */
export class DuplicateStageError extends OverlayError {
  readonly vni: number;
  readonly stage: string;
  constructor(vni: number, stage: string) {
    super('OVL_ERR_DUPLICATE_STAGE', `network ${vni} already has a stage named ${stage}`);
    this.vni = vni;
    this.stage = stage;
  }
}

/**
 * A byte string is not a valid header of the kind asked for. Returned (not thrown) by the
 * `parse*` convenience decoders; the hot-path `decode*` functions return the numeric status
 * instead (see codec/status.ts). `reason` is the stable snake_case name of the status.
 */
export class DecodeError extends OverlayError {
  readonly reason: string;
  readonly status: number;
  constructor(code: string, reason: string, status: number) {
    super(code, `cannot decode: ${reason}`);
    this.reason = reason;
    this.status = status;
  }
}

/** The bytes end before the header (or the length it announces) does. */
export class TruncatedHeaderError extends DecodeError {
  constructor(reason: string, status: number) {
    super('OVL_ERR_TRUNCATED', reason, status);
  }
}

/** A header field holds a value the protocol forbids (bad version, length, flag, checksum). */
export class MalformedHeaderError extends DecodeError {
  constructor(reason: string, status: number) {
    super('OVL_ERR_MALFORMED', reason, status);
  }
}

/** A well-formed header of a variant this codec does not handle (e.g. ARP for non-Ethernet). */
export class UnsupportedHeaderError extends DecodeError {
  constructor(reason: string, status: number) {
    super('OVL_ERR_UNSUPPORTED', reason, status);
  }
}

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

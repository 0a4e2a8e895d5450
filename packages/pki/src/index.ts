// @overlay/pki: node certificates, join tokens, revocations (issue 13). Design: docs/pki.md.
export { PkiError, type PkiErrorCode } from './errors.js';
export {
  CA_EXPIRY_WARNING_MS, CERT_VERSION, DAY_MS, DEFAULT_CA_LIFETIME_MS, DEFAULT_NODE_LIFETIME_MS, TrustedCas,
  checkCert, createCa, describeCert, parseCa, parseCert, renewAt, shouldRenew, signCert, verifyCert,
  type CaKeyPair, type CertFields, type Certificate, type CreateCaOptions, type SignCertOptions, type Verified, type VerifyWarning,
} from './cert.js';
export { RevocationKind, RevocationSet, createRevocation, parseRevocation, revocationKeepUntil, type Revocation, type RevocationKindName } from './revocation.js';
export {
  JoinSigner, KNOWN_REFUSALS, TOKEN_PREFIX, answerJoin, formatToken, handleJoinRequest, makeJoinRequest, parseToken,
  type JoinSignerOptions, type JoinToken, type JoinerKeys,
} from './token.js';
export { JOIN_PATH, requestJoin, serveJoin, type JoinServer } from './join-http.js';
export { covers, formatAddress, formatPrefix, parseAddress, parsePrefix, prefixContains, type Prefix } from './prefix.js';
export { checkWireGuardKey, generateSigningKey, generateWireGuardKey, publicOfSeed, sha256, wireGuardPublicOf, type SigningKeyPair } from './keys.js';
export { MAX_MESSAGE_BYTES } from './codec.js';
export { decodePem, encodePem } from './pem.js';
export { Admission, type AdmissionRefusal, type MemberClaim } from './admission.js';

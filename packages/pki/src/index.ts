// @overlay/pki: node certificates, join tokens, revocations (issue 13).
export {};

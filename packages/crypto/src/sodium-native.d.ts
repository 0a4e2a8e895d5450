// Minimal typing for the parts of sodium-native this package uses (the package ships none).
declare module 'sodium-native' {
  type Bytes = Uint8Array;
  const sodium: {
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(c: Bytes, mac: Bytes, m: Bytes, ad: Bytes | null, nsec: null, npub: Bytes, k: Bytes): number;
    crypto_aead_chacha20poly1305_ietf_decrypt_detached(m: Bytes, nsec: null, c: Bytes, mac: Bytes, ad: Bytes | null, npub: Bytes, k: Bytes): void;
    crypto_aead_chacha20poly1305_ietf_encrypt(c: Bytes, m: Bytes, ad: Bytes | null, nsec: null, npub: Bytes, k: Bytes): number;
    crypto_aead_chacha20poly1305_ietf_decrypt(m: Bytes, nsec: null, c: Bytes, ad: Bytes | null, npub: Bytes, k: Bytes): number;
    crypto_aead_xchacha20poly1305_ietf_encrypt(c: Bytes, m: Bytes, ad: Bytes | null, nsec: null, npub: Bytes, k: Bytes): number;
    crypto_aead_xchacha20poly1305_ietf_decrypt(m: Bytes, nsec: null, c: Bytes, ad: Bytes | null, npub: Bytes, k: Bytes): number;
    crypto_scalarmult(q: Bytes, n: Bytes, p: Bytes): void;
    crypto_scalarmult_base(q: Bytes, n: Bytes): void;
    randombytes_buf(b: Bytes): void;
    sodium_memzero(b: Bytes): void;
  };
  export default sodium;
}

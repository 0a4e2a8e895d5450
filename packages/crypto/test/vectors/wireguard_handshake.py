#!/usr/bin/env python3
"""Independent reference for the WireGuard handshake KAT (wireguard-handshake.json).

Written from the WireGuard paper (section 5.4) on other primitives than the TypeScript
implementation: OpenSSL's X25519 and ChaCha20-Poly1305 via `cryptography`, BLAKE2s from
hashlib. Fixed keys, ephemerals, indices and timestamp make the transcript reproducible; the
TypeScript test feeds the same inputs to packages/crypto and compares every byte.
Run: python3 wireguard_handshake.py > wireguard-handshake.json
"""
import hashlib, hmac, json, struct
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives import serialization

RAW = serialization.Encoding.Raw

def H(*parts):
    h = hashlib.blake2s()
    for p in parts:
        h.update(p)
    return h.digest()

def MAC(key, data):
    return hashlib.blake2s(data, key=key, digest_size=16).digest()

def HMAC(key, data):
    return hmac.new(key, data, hashlib.blake2s).digest()

def KDF(n, key, data):
    t0 = HMAC(key, data)
    out, prev = [], b''
    for i in range(1, n + 1):
        prev = HMAC(t0, prev + bytes([i]))
        out.append(prev)
    return out

def pub(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(RAW, serialization.PublicFormat.Raw)

def DH(priv, pubkey):
    return X25519PrivateKey.from_private_bytes(priv).exchange(X25519PublicKey.from_public_bytes(pubkey))

def AEAD(key, counter, plain, ad):
    return ChaCha20Poly1305(key).encrypt(b'\0' * 4 + struct.pack('<Q', counter), plain, ad)

def seq(tag):
    return bytes((tag * 7 + i * 13) & 0xff for i in range(32))

CONSTRUCTION = b'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'
IDENTIFIER = b'WireGuard v1 zx2c4 Jason@zx2c4.com'

def transcript(psk):
    si, sr, ei, er = seq(1), seq(2), seq(3), seq(4)
    Si, Sr, Ei, Er = pub(si), pub(sr), pub(ei), pub(er)
    timestamp = struct.pack('>QI', 0x400000000000000a + 1700000000, 123456000)
    sender_i, sender_r = 0x11223344, 0xa1b2c3d4
    # Initiation
    C = H(CONSTRUCTION); Hh = H(H(C, IDENTIFIER), Sr)
    C, = KDF(1, C, Ei); Hh = H(Hh, Ei)
    C, k = KDF(2, C, DH(ei, Sr)); enc_s = AEAD(k, 0, Si, Hh); Hh = H(Hh, enc_s)
    C, k = KDF(2, C, DH(si, Sr)); enc_t = AEAD(k, 0, timestamp, Hh); Hh = H(Hh, enc_t)
    init = bytes([1, 0, 0, 0]) + struct.pack('<I', sender_i) + Ei + enc_s + enc_t
    init += MAC(H(b'mac1----', Sr), init) + b'\0' * 16
    # Response
    C, = KDF(1, C, Er); Hh = H(Hh, Er)
    C, = KDF(1, C, DH(er, Ei)); C, = KDF(1, C, DH(er, Si))
    C, t, k = KDF(3, C, psk or b'\0' * 32); Hh = H(Hh, t)
    empty = AEAD(k, 0, b'', Hh); Hh = H(Hh, empty)
    resp = bytes([2, 0, 0, 0]) + struct.pack('<II', sender_r, sender_i) + Er + empty
    resp += MAC(H(b'mac1----', Si), resp) + b'\0' * 16
    i_send, i_recv = KDF(2, C, b'')
    # First transport message initiator -> responder, counter 0, 32-byte payload
    payload = bytes(range(32))
    data = bytes([4, 0, 0, 0]) + struct.pack('<IQ', sender_r, 0) + AEAD(i_send, 0, payload, b'')
    return {
        'initiator_static_private': si.hex(), 'responder_static_private': sr.hex(),
        'initiator_ephemeral_private': ei.hex(), 'responder_ephemeral_private': er.hex(),
        'preshared_key': psk.hex() if psk else None, 'timestamp': timestamp.hex(),
        'initiator_index': sender_i, 'responder_index': sender_r,
        'initiation': init.hex(), 'response': resp.hex(),
        'initiator_send_key': i_send.hex(), 'initiator_recv_key': i_recv.hex(),
        'payload': payload.hex(), 'first_data': data.hex(),
    }

print(json.dumps({'generator': 'wireguard_handshake.py (Python, OpenSSL primitives)',
                  'vectors': [transcript(None), transcript(bytes(range(100, 132)))]}, indent=2))

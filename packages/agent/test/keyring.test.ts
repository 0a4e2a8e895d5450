import { describe, expect, it } from 'vitest';
import { Keyring, InvalidClusterKeyError, SEAL_OVERHEAD } from '@overlay/agent';

const k1 = Buffer.alloc(32, 1).toString('base64');
const k2 = Buffer.alloc(32, 2).toString('base64');

describe('Keyring', () => {
  it('seals and opens; a different key cannot open; tampering fails', () => {
    const a = new Keyring([k1]);
    const msg = Buffer.from('hello gossip');
    const s = a.seal(msg);
    expect(s.length).toBe(msg.length + SEAL_OVERHEAD);
    expect(Buffer.from(a.open(s)!)).toEqual(msg);
    expect(new Keyring([k2]).open(s)).toBeNull();
    const t = Buffer.from(s);
    t[20] ^= 1;
    expect(a.open(t)).toBeNull();
    expect(a.open(s.subarray(0, 10))).toBeNull();
  });

  it('rotates without downtime: old and new key both open during the change', () => {
    const a = new Keyring([k1]);
    const b = new Keyring([k1]);
    b.add(k2);
    a.add(k2);
    a.use(k2); // a now seals with k2, b still seals with k1
    expect(b.open(a.seal(Buffer.from('x')))).not.toBeNull();
    expect(a.open(b.seal(Buffer.from('y')))).not.toBeNull();
    b.use(k2);
    a.remove(k1);
    b.remove(k1);
    expect(b.open(a.seal(Buffer.from('z')))).not.toBeNull();
    expect(() => a.remove(k2)).toThrow(InvalidClusterKeyError);
  });

  it('rejects bad keys with a typed error that does not contain the key', () => {
    try {
      new Keyring(['c2VjcmV0']);
      expect.unreachable();
    } catch (e) {
      expect((e as InvalidClusterKeyError).code).toBe('OVL_ERR_AGENT_INVALID_KEY');
      expect(String(e)).not.toContain('c2VjcmV0');
    }
    expect(String(new Keyring([k1]))).not.toContain(k1);
  });
});

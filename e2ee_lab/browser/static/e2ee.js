// e2ee.js: the browser participant's frame crypto and key agreement, in WebCrypto only.
// Byte-compatible with e2ee_lab/crypto/sframe.py (SFrame suites 1-8: RFC 9605's five and the
// AES-256-CTR + HMAC-SHA512 suites 6-8 of draft-barnes-sframe-iana-256-06),
// e2ee_lab/crypto/transforms.py (clear-prefix framing) and e2ee_lab/crypto/keys/ (ECDH P-256,
// HKDF-SHA256 pairwise keys, AES-128-GCM key messages, the RFC 9605 §5.1 ratchet).
// Loaded by the page (<script>) and by the crypto worker (importScripts).
'use strict';

const E2EE = (() => {
  const enc = new TextEncoder();
  const subtle = crypto.subtle;

  // --- bytes ---------------------------------------------------------------------------------------
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  const unhex = (s) => new Uint8Array((s.match(/../g) || []).map((h) => parseInt(h, 16)));
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const be = (value, n) => {            // big-endian, value a BigInt or Number
    let v = BigInt(value);
    const out = new Uint8Array(n);
    for (let i = n - 1; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
    return out;
  };
  const readBE = (b, at, n) => {
    let v = 0n;
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(b[at + i]);
    return v;
  };
  const compare = (a, b) => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  };

  class CryptoError extends Error {
    constructor(reason, message) { super(message || reason); this.reason = reason; }
  }

  // HKDF (RFC 5869): Extract(salt = "", ikm) then Expand(info, length). WebCrypto does both.
  async function hkdf(hash, ikm, info, length) {
    const key = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
    const bits = await subtle.deriveBits({ name: 'HKDF', hash, salt: new Uint8Array(0), info }, key, length * 8);
    return new Uint8Array(bits);
  }
  const aesKey = (raw) => subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  async function seal(key, iv, data, aad) {
    return new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, key, data));
  }
  async function open(key, iv, data, aad) {
    try {
      return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv, additionalData: aad }, key, data));
    } catch (e) {
      throw new CryptoError('auth', 'authentication failed');
    }
  }

  // --- SFrame, RFC 9605 ------------------------------------------------------------------------------
  // §4.5 cipher suites this page offers: all eight (WebCrypto has AES-GCM, AES-CTR and HMAC).
  // nka > 0: the AES-CTR + HMAC construction of §4.5.1; 6-8 from draft-barnes-sframe-iana-256-06.
  const SUITES = {
    1: { name: 'AES_128_CTR_HMAC_SHA256_80', hash: 'SHA-256', nh: 32, nka: 16, nk: 48, nn: 12, nt: 10 },
    2: { name: 'AES_128_CTR_HMAC_SHA256_64', hash: 'SHA-256', nh: 32, nka: 16, nk: 48, nn: 12, nt: 8 },
    3: { name: 'AES_128_CTR_HMAC_SHA256_32', hash: 'SHA-256', nh: 32, nka: 16, nk: 48, nn: 12, nt: 4 },
    4: { name: 'AES_128_GCM_SHA256_128', hash: 'SHA-256', nh: 32, nka: 0, nk: 16, nn: 12, nt: 16 },
    5: { name: 'AES_256_GCM_SHA512_128', hash: 'SHA-512', nh: 64, nka: 0, nk: 32, nn: 12, nt: 16 },
    6: { name: 'AES_256_CTR_HMAC_SHA512_80', hash: 'SHA-512', nh: 64, nka: 32, nk: 96, nn: 12, nt: 10 },
    7: { name: 'AES_256_CTR_HMAC_SHA512_64', hash: 'SHA-512', nh: 64, nka: 32, nk: 96, nn: 12, nt: 8 },
    8: { name: 'AES_256_CTR_HMAC_SHA512_32', hash: 'SHA-512', nh: 64, nka: 32, nk: 96, nn: 12, nt: 4 },
  };

  // §4.5.1 AES-CTR + HMAC: enc_key = key[0:Nka], auth_key = key[Nka:]; counter block nonce || 0^32;
  // tag = HMAC(auth_key, len(aad) || len(ct) || Nt || nonce || aad || ct)[0:Nt], lengths 64-bit BE.
  // Both return an object with seal/open of the same shape as the AES-GCM ones.
  async function ctrHmacAead(s, raw) {
    const encKey = await subtle.importKey('raw', raw.subarray(0, s.nka), 'AES-CTR', false, ['encrypt', 'decrypt']);
    const macKey = await subtle.importKey('raw', raw.subarray(s.nka), { name: 'HMAC', hash: s.hash }, false, ['sign']);
    const counter = (iv) => ({ name: 'AES-CTR', counter: concat(iv, new Uint8Array(4)), length: 128 });
    const tag = async (iv, aad, ct) => new Uint8Array(await subtle.sign('HMAC', macKey,
      concat(be(aad.length, 8), be(ct.length, 8), be(s.nt, 8), iv, aad, ct))).subarray(0, s.nt);
    return {
      async seal(iv, data, aad) {
        const ct = new Uint8Array(await subtle.encrypt(counter(iv), encKey, data));
        return concat(ct, await tag(iv, aad, ct));
      },
      async open(iv, data, aad) {
        if (data.length < s.nt) throw new CryptoError('auth', 'authentication failed');
        const ct = data.subarray(0, data.length - s.nt);
        const got = data.subarray(data.length - s.nt);
        const want = await tag(iv, aad, ct);
        let diff = 0;                          // compare every byte: no early exit
        for (let i = 0; i < s.nt; i++) diff |= got[i] ^ want[i];
        if (diff !== 0) throw new CryptoError('auth', 'authentication failed');
        return new Uint8Array(await subtle.decrypt(counter(iv), encKey, ct));
      },
    };
  }
  async function gcmAead(raw) {
    const key = await aesKey(raw);
    return { seal: (iv, data, aad) => seal(key, iv, data, aad), open: (iv, data, aad) => open(key, iv, data, aad) };
  }
  const KEY_LABEL = enc.encode('SFrame 1.0 Secret key ');
  const SALT_LABEL = enc.encode('SFrame 1.0 Secret salt ');

  // §4.3: config byte X|KKK|Y|CCC, then the KID and CTR extensions in minimal big-endian form.
  function field(v) {
    v = BigInt(v);
    if (v < 8n) return [Number(v), new Uint8Array(0)];
    let n = 0;
    for (let t = v; t > 0n; t >>= 8n) n++;
    return [8 | (n - 1), be(v, n)];
  }
  function encodeHeader(kid, ctr) {
    const [k, kb] = field(kid);
    const [c, cb] = field(ctr);
    return concat(Uint8Array.of((k << 4) | c), kb, cb);
  }
  function decodeHeader(data) {
    if (data.length < 1) throw new CryptoError('malformed_header', 'empty frame');
    const cfg = data[0];
    let at = 1;
    const part = (bits) => {
      if (!(bits & 8)) return BigInt(bits & 7);
      const n = (bits & 7) + 1;
      if (data.length < at + n) throw new CryptoError('malformed_header', `needs ${n} more bytes`);
      const v = readBE(data, at, n);
      if (v < 8n || (n > 1 && data[at] === 0)) throw new CryptoError('malformed_header', 'not minimal');
      at += n;
      return v;
    };
    const kid = part(cfg >> 4);
    const ctr = part(cfg & 15);
    return { kid, ctr, length: at };
  }

  // §4.4.2: sframe_key and sframe_salt from a base key.
  async function deriveKeySalt(suiteId, kid, baseKey) {
    const s = SUITES[suiteId];
    if (!s) throw new CryptoError('unknown_suite', `suite ${suiteId} is not offered`);
    const suffix = concat(be(kid, 8), be(suiteId, 2));
    const key = await hkdf(s.hash, baseKey, concat(KEY_LABEL, suffix), s.nk);
    const salt = await hkdf(s.hash, baseKey, concat(SALT_LABEL, suffix), s.nn);
    return { key, salt };
  }
  function nonce(salt, ctr) {
    const c = be(ctr, salt.length);
    return salt.map((b, i) => b ^ c[i]);
  }

  // One direction of one KID: protect() for a send key, unprotect() for a receive key.
  class SFrameKey {
    static async create(suiteId, kid, baseKey) {
      const k = new SFrameKey();
      const { key, salt } = await deriveKeySalt(suiteId, kid, baseKey);
      k.suite = suiteId; k.kid = BigInt(kid); k.raw = key; k.salt = salt;
      k.aead = SUITES[suiteId].nka ? await ctrHmacAead(SUITES[suiteId], key) : await gcmAead(key);
      k.nextCtr = 0n;
      k.highest = -1n; k.seen = new Set();   // replay window of 128 (RFC 3711 §3.3.2 style)
      return k;
    }
    // §4.4.3: header || AEAD.Encrypt(key, salt XOR CTR, aad = header || metadata, plaintext)
    async protect(plaintext, metadata = new Uint8Array(0), ctr = null) {
      const c = ctr === null ? this.nextCtr : BigInt(ctr);
      this.nextCtr = c + 1n;  // "MUST NOT encrypt twice with the same key and nonce"
      const header = encodeHeader(this.kid, c);
      const body = await this.aead.seal(nonce(this.salt, c), plaintext, concat(header, metadata));
      return concat(header, body);
    }
    async unprotect(frame, metadata = new Uint8Array(0)) {
      const h = decodeHeader(frame);
      if (h.kid !== this.kid) throw new CryptoError('unknown_kid', `KID ${h.kid}`);
      if (h.ctr + 128n <= this.highest || this.seen.has(h.ctr)) throw new CryptoError('replay', `CTR ${h.ctr}`);
      const header = frame.subarray(0, h.length);
      const plain = await this.aead.open(nonce(this.salt, h.ctr), frame.subarray(h.length), concat(header, metadata));
      this.seen.add(h.ctr);
      if (h.ctr > this.highest) this.highest = h.ctr;
      if (this.seen.size > 256) for (const v of this.seen) if (v + 128n <= this.highest) this.seen.delete(v);
      return plain;
    }
  }

  // --- clear-prefix framing (webrtc-samples / Jitsi / LiveKit) -----------------------------------
  const CLEAR_PREFIX = { key: 10, delta: 3, audio: 1 };
  const IV_LENGTH = 12;
  const TRAILER = IV_LENGTH + 2;
  const prefixLength = (kind, data) =>
    kind === 'audio' ? CLEAR_PREFIX.audio : ((data[0] & 1) === 0 ? CLEAR_PREFIX.key : CLEAR_PREFIX.delta);
  const CLEAR_PREFIX_INFO = enc.encode('e2ee-lab 1.0 clear-prefix key');
  const clearPrefixKey = (baseKey) => hkdf('SHA-256', baseKey, CLEAR_PREFIX_INFO, 16);

  class ClearPrefixSender {
    static async create(raw, keyIndex) {
      const s = new ClearPrefixSender();
      s.aead = await aesKey(raw); s.keyIndex = keyIndex;
      s.count = crypto.getRandomValues(new Uint16Array(1))[0];
      return s;
    }
    // prefix || AES-GCM(IV, body, aad = prefix) || IV || 12 || key index; IV = SSRC || timestamp || count
    async protect(data, kind, ssrc, timestamp) {
      const n = prefixLength(kind, data);
      if (data.length < n) throw new CryptoError('malformed', 'frame shorter than its prefix');
      const iv = concat(be(ssrc >>> 0, 4), be(timestamp >>> 0, 4), be(this.count++, 4));
      const prefix = data.subarray(0, n);
      const body = await seal(this.aead, iv, data.subarray(n), prefix);
      return concat(prefix, body, iv, Uint8Array.of(IV_LENGTH, this.keyIndex));
    }
  }
  async function clearPrefixOpen(keys, data, kind) {
    const n = prefixLength(kind, data);
    if (data.length < n + 16 + TRAILER) throw new CryptoError('malformed', `${data.length} bytes`);
    if (data[data.length - 2] !== IV_LENGTH) throw new CryptoError('malformed', 'IV length byte');
    const key = keys.get(data[data.length - 1]);
    if (!key) throw new CryptoError('unknown_key', `no key at index ${data[data.length - 1]}`);
    const prefix = data.subarray(0, n);
    const iv = data.subarray(data.length - TRAILER, data.length - 2);
    const body = await open(key, iv, data.subarray(n, data.length - TRAILER), prefix);
    return concat(prefix, body);
  }

  // --- group key agreement (e2ee_lab.crypto.keys) ---------------------------------------------------
  const PAIRWISE_LABEL = enc.encode('e2ee-lab 1.0 pairwise key ');
  const RATCHET_LABEL = enc.encode('SFrame 1.0 Ratchet');
  const KEY_MESSAGE_VERSION = 1;
  const HEADER_LEN = 27;
  const kidFor = (epoch, member) => epoch * 256 + member;
  const ratchet = (baseKey) => hkdf('SHA-256', baseKey, RATCHET_LABEL, 32);

  async function newIdentity() {
    const pair = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    const pub = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));  // 04 || x || y
    return { privateKey: pair.privateKey, public: pub };
  }
  // HKDF-SHA256(salt "", ECDH x-coordinate, "e2ee-lab 1.0 pairwise key " || min(pub) || max(pub), 16)
  async function pairwiseKey(identity, peerPublic) {
    let peer;
    try {
      peer = await subtle.importKey('raw', peerPublic, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
    } catch (e) {
      throw new CryptoError('invalid_identity', 'not a P-256 public key');
    }
    const shared = new Uint8Array(await subtle.deriveBits({ name: 'ECDH', public: peer }, identity.privateKey, 256));
    const [lo, hi] = compare(identity.public, peerPublic) <= 0 ? [identity.public, peerPublic] : [peerPublic, identity.public];
    return aesKey(await hkdf('SHA-256', shared, concat(PAIRWISE_LABEL, lo, hi), 16));
  }
  function keyMessageHeader(sender, recipient, seq, epoch, iv) {
    return concat(Uint8Array.of(KEY_MESSAGE_VERSION, sender, recipient), be(seq, 8), be(epoch, 4), iv);
  }

  // A member: roster updates and key messages in, key messages and keys out (crypto/keys/member.py).
  class Member {
    constructor(identity, switchDelay) {
      this.identity = identity; this.switchDelay = switchDelay;
      this.index = null; this.state = 'outside'; this.epoch = -1; this.joinEpoch = null; this.sendEpoch = null;
      this.peers = new Map(); this.since = new Map(); this.channels = new Map();
      this.sendSeq = new Map(); this.recvSeq = new Map(); this.history = new Map();
      this.keys = new Map();   // "sender:epoch" -> base key
      this.onKey = () => {};
    }
    _store(sender, epoch, key) { this.keys.set(`${sender}:${epoch}`, key); this.onKey(sender, epoch, key); }
    async handleRoster(update, now) {
      const { epoch, change, subject } = update;
      const ownJoin = change === 'join' && subject === this.index;
      if (!ownJoin && this.state === 'outside') throw new CryptoError('illegal_transition', `${change} while outside`);
      if (!ownJoin && epoch !== this.epoch + 1) throw new CryptoError(epoch <= this.epoch ? 'stale_epoch' : 'future_epoch', `epoch ${epoch}`);
      this.state = 'active';
      if (change === 'leave' && subject === this.index) { this.keys.clear(); this.channels.clear(); return []; }
      for (const [m, pubHex] of update.members) {
        if (m === this.index) continue;
        const pub = unhex(pubHex);
        if (this.peers.has(m)) {
          if (hex(this.peers.get(m)) !== pubHex) throw new CryptoError('identity_changed', `member ${m}`);
        } else {
          this.channels.set(m, await pairwiseKey(this.identity, pub));
          this.peers.set(m, pub);
          this.since.set(m, subject === m ? epoch : 0);
        }
      }
      if (change === 'leave') for (const t of [this.peers, this.channels, this.sendSeq, this.recvSeq]) t.delete(subject);
      this.history.set(epoch, { change, subject, start: now });
      this.epoch = epoch;
      if (ownJoin) { this.joinEpoch = epoch; this.sendEpoch = epoch; }
      let key, recipients;
      if (change === 'join' && subject !== this.index) {
        for (const k of [...this.keys.keys()]) {
          const [s, e] = k.split(':').map(Number);
          if (e === epoch - 1) await this._ratchetForward(s, e);
        }
        key = this.keys.get(`${this.index}:${epoch}`);
        recipients = [subject];
      } else {
        key = crypto.getRandomValues(new Uint8Array(32));
        this._store(this.index, epoch, key);
        recipients = [...this.channels.keys()].sort((a, b) => a - b);
      }
      const out = [];
      for (const r of recipients) out.push([r, await this._seal(r, epoch, key)]);
      return out;
    }
    async _seal(recipient, epoch, key) {
      const seq = (this.sendSeq.get(recipient) || 0) + 1;
      this.sendSeq.set(recipient, seq);
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const header = keyMessageHeader(this.index, recipient, seq, epoch, iv);
      return concat(header, await seal(this.channels.get(recipient), iv, key, header));
    }
    async receiveKeyMessage(data, now) {
      if (data.length < HEADER_LEN + 16) throw new CryptoError('malformed', `${data.length} bytes`);
      if (data[0] !== KEY_MESSAGE_VERSION) throw new CryptoError('malformed', `version ${data[0]}`);
      const sender = data[1], recipient = data[2];
      const seq = Number(readBE(data, 3, 8)), epoch = Number(readBE(data, 11, 4));
      if (recipient !== this.index) throw new CryptoError('wrong_recipient', `for ${recipient}`);
      if (!this.channels.has(sender)) throw new CryptoError('unknown_member', `member ${sender}`);
      const key = await open(this.channels.get(sender), data.subarray(15, 27), data.subarray(HEADER_LEN), data.subarray(0, HEADER_LEN));
      if (key.length !== 32) throw new CryptoError('malformed', `base key of ${key.length} bytes`);
      if (seq <= (this.recvSeq.get(sender) || 0)) throw new CryptoError('replayed', `seq ${seq}`);
      if (epoch > this.epoch) throw new CryptoError('future_epoch', `epoch ${epoch}`);
      if (epoch < Math.max(this.joinEpoch, this.since.get(sender)) || this.keys.has(`${sender}:${epoch}`))
        throw new CryptoError('stale_epoch', `epoch ${epoch}`);
      this.recvSeq.set(sender, seq);
      this._store(sender, epoch, key);
      await this._ratchetForward(sender, epoch);
    }
    // §5.1: derive the sender's keys for later JOIN epochs this member already entered.
    async _ratchetForward(sender, epoch) {
      let key = this.keys.get(`${sender}:${epoch}`);
      for (let e = epoch + 1; e <= this.epoch; e++) {
        const h = this.history.get(e);
        if (!h || h.change !== 'join' || h.subject === sender || this.keys.has(`${sender}:${e}`)) break;
        key = await ratchet(key);
        this._store(sender, e, key);
      }
    }
    // The sender switches to a newer own key switchDelay seconds after its epoch started.
    tick(now) {
      let best = this.sendEpoch;
      for (const k of this.keys.keys()) {
        const [s, e] = k.split(':').map(Number);
        if (s === this.index && e > best && this.history.get(e).start + this.switchDelay <= now) best = e;
      }
      const changed = best !== this.sendEpoch;
      this.sendEpoch = best;
      return changed;
    }
    holds(epoch, members) {
      return members.every((m) => this.keys.has(`${m}:${epoch}`));
    }
  }

  return {
    hex, unhex, concat, CryptoError, hkdf, SUITES, encodeHeader, decodeHeader, deriveKeySalt, SFrameKey,
    CLEAR_PREFIX, prefixLength, clearPrefixKey, ClearPrefixSender, clearPrefixOpen,
    kidFor, ratchet, newIdentity, pairwiseKey, Member,
  };
})();

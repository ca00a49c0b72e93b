// e2ee.js: the browser participant's frame crypto, in WebCrypto only. Byte-compatible with
// e2ee_lab/crypto/sframe/ (SFrame suites 1-8: RFC 9605's five and the AES-256-CTR + HMAC-SHA512
// suites 6-8 of draft-barnes-sframe-iana-256-06), e2ee_lab/crypto/transforms.py (clear-prefix
// framing), the KID layout of e2ee_lab/crypto/keys/ and the receivers of e2ee_lab/call/frame_keys.py
// (attribution by KID, retirement of old epochs). FrameKeys is the worker's whole state: the keys
// the page's key agreement (keys.js) hands over, and every frame in and out.
// Loaded by the page (<script>) and by the crypto worker (importScripts). Errors are CryptoError with
// a fixed `reason` naming the drop counter, as in Python.
'use strict';

const E2EE = (() => {
  const enc = new TextEncoder();
  const subtle = crypto.subtle;

  // --- bytes ---------------------------------------------------------------------------------------
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  const unhex = (s) => {
    if (typeof s !== 'string' || !/^([0-9a-f]{2})*$/i.test(s)) throw new CryptoError('malformed', 'not hex');
    return new Uint8Array((s.match(/../g) || []).map((h) => parseInt(h, 16)));
  };
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const be = (value, n) => {            // big-endian, value a BigInt or Number, 0 <= value < 2^(8n)
    let v = BigInt(value);
    if (v < 0n || v >> BigInt(8 * n) !== 0n) throw new RangeError(`${value} does not fit in ${n} bytes`);
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
  const equal = (a, b) => {             // every byte compared: no early exit
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
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
  const suite = (id) => {
    if (!SUITES[id]) throw new CryptoError('unknown_suite', `suite ${id} is not offered`);
    return SUITES[id];
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
        if (!equal(data.subarray(data.length - s.nt), await tag(iv, aad, ct))) {
          throw new CryptoError('auth', 'authentication failed');
        }
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
  const MAX_CTR = (1n << 64n) - 1n;     // §4.3: KID and CTR are 64-bit; a CTR never wraps
  const WINDOW = 128n;                  // replay window in frames, as the Python receivers'

  // §4.3: config byte X|KKK|Y|CCC, then the KID and CTR extensions in minimal big-endian form.
  function field(v) {
    v = BigInt(v);
    if (v < 0n || v > MAX_CTR) throw new RangeError(`${v} is not a 64-bit unsigned integer`);
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
    if (data.length < 1) throw new CryptoError('malformed', 'empty frame');
    const cfg = data[0];
    let at = 1;
    const part = (bits, name) => {
      if (!(bits & 8)) return BigInt(bits & 7);
      const n = (bits & 7) + 1;
      if (data.length < at + n) throw new CryptoError('malformed', `${name} needs ${n} bytes, ${data.length - at} left`);
      const v = readBE(data, at, n);
      if (v < 8n || (n > 1 && data[at] === 0)) throw new CryptoError('malformed', `${name} is not minimally encoded`);
      at += n;
      return v;
    };
    const kid = part(cfg >> 4, 'KID');
    const ctr = part(cfg & 15, 'CTR');
    return { kid, ctr, length: at };
  }

  // §4.4.2: sframe_key and sframe_salt from a base key.
  async function deriveKeySalt(suiteId, kid, baseKey) {
    const s = suite(suiteId);
    const suffix = concat(be(kid, 8), be(suiteId, 2));
    const key = await hkdf(s.hash, baseKey, concat(KEY_LABEL, suffix), s.nk);
    const salt = await hkdf(s.hash, baseKey, concat(SALT_LABEL, suffix), s.nn);
    return { key, salt };
  }
  function nonce(salt, ctr) {
    const c = be(ctr, salt.length);
    return salt.map((b, i) => b ^ c[i]);
  }

  // The replay window of one receive key (RFC 3711 §3.3.2 style). reserve() runs before the AEAD's
  // await and marks the CTR in flight, so a concurrent copy of the frame is refused; commit() after
  // the frame authenticated, release() when it did not (a forgery never moves the window).
  class ReplayWindow {
    constructor() { this.top = -1n; this.seen = new Set(); this.pending = new Set(); }
    reserve(ctr) {
      if (ctr <= this.top && this.top - ctr >= WINDOW) {
        throw new CryptoError('replay', `CTR ${ctr} is ${this.top - ctr} behind the newest, outside the window`);
      }
      if (this.seen.has(ctr) || this.pending.has(ctr)) throw new CryptoError('replay', `CTR ${ctr} was already received`);
      this.pending.add(ctr);
    }
    release(ctr) { this.pending.delete(ctr); }
    commit(ctr) {
      this.pending.delete(ctr);
      this.seen.add(ctr);
      if (ctr > this.top) this.top = ctr;
      if (this.seen.size > 2 * Number(WINDOW)) for (const v of this.seen) if (this.top - v >= WINDOW) this.seen.delete(v);
    }
  }

  // One direction of one KID: protect() for a send key, unprotect() for a receive key.
  class SFrameKey {
    static async create(suiteId, kid, baseKey, nextCtr = 0n) {
      const k = new SFrameKey();
      const { key, salt } = await deriveKeySalt(suiteId, kid, baseKey);
      k.suite = suiteId; k.kid = BigInt(kid); k.salt = salt;
      k.aead = suite(suiteId).nka ? await ctrHmacAead(SUITES[suiteId], key) : await gcmAead(key);
      k.nextCtr = BigInt(nextCtr);
      k.window = new ReplayWindow();
      return k;
    }
    // §4.4.3: header || AEAD.Encrypt(key, salt XOR CTR, aad = header || metadata, plaintext).
    // `ctr` is for known-answer tests: it may skip ahead, never back.
    async protect(plaintext, metadata = new Uint8Array(0), ctr = null) {
      const c = ctr === null ? this.nextCtr : BigInt(ctr);
      if (c < this.nextCtr) throw new CryptoError('nonce_reuse', `CTR ${c} is below this key's next CTR ${this.nextCtr}`);
      if (c > MAX_CTR) throw new CryptoError('counter_exhausted', `KID ${this.kid} has used every CTR up to 2^64-1`);
      // §7.4: "MUST reject requests to encrypt multiple times with the same key and nonce": the CTR
      // is taken here, before the first await, so concurrent calls never share one.
      this.nextCtr = c + 1n;
      const header = encodeHeader(this.kid, c);
      const body = await this.aead.seal(nonce(this.salt, c), plaintext, concat(header, metadata));
      return concat(header, body);
    }
    async unprotect(frame, metadata = new Uint8Array(0)) {
      const h = decodeHeader(frame);
      if (h.kid !== this.kid) throw new CryptoError('unknown_kid', `KID ${h.kid} is not this key's ${this.kid}`);
      this.window.reserve(h.ctr);                // before the await: one of two concurrent copies wins
      const header = frame.subarray(0, h.length);
      let plain;
      try {
        plain = await this.aead.open(nonce(this.salt, h.ctr), frame.subarray(h.length), concat(header, metadata));
      } catch (err) {
        this.window.release(h.ctr);
        throw err;
      }
      this.window.commit(h.ctr);
      return plain;
    }
  }

  // --- KIDs: one per (epoch, media kind, member), e2ee_lab.crypto.keys.sender_keys ------------------
  // kid = (epoch << 12) | (kind << 8) | member; kind 0 audio, 1 video (2..15 are not of the layout).
  const MEDIA_KINDS = ['audio', 'video'];
  const MAX_EPOCH = 2 ** 32 - 1;
  function kidFor(epoch, member, kind) {
    const code = MEDIA_KINDS.indexOf(kind);
    if (code < 0) throw new RangeError(`media kind must be audio or video, not ${kind}`);
    if (!(Number.isInteger(member) && member >= 0 && member < 256)) throw new RangeError(`member index ${member}`);
    if (!(Number.isInteger(epoch) && epoch >= 0 && epoch <= MAX_EPOCH)) throw new RangeError(`epoch ${epoch}`);
    return (BigInt(epoch) << 12n) | (BigInt(code) << 8n) | BigInt(member);
  }
  function parseKid(kid) {
    kid = BigInt(kid);
    const code = Number((kid >> 8n) & 15n);
    const epoch = kid >> 12n;
    if (code >= MEDIA_KINDS.length || epoch > BigInt(MAX_EPOCH) || kid < 0n) {
      throw new CryptoError('unknown_kid', `KID 0x${kid.toString(16)} is not of the lab's layout (kind code ${code})`);
    }
    return { epoch: Number(epoch), member: Number(kid & 255n), kind: MEDIA_KINDS[code] };
  }

  // --- clear-prefix framing (Jitsi / LiveKit; e2ee_lab/crypto/transforms.py) -----------------------
  const CLEAR_PREFIX = { key: 10, delta: 3, audio: 1 };
  const IV_LENGTH = 12;
  const TRAILER = IV_LENGTH + 2;
  const MAX_IV_COUNT = 0xffffffff;      // the IV's 32-bit counter field: refused past it, never wrapped
  const prefixLength = (kind, data) =>
    kind === 'audio' ? CLEAR_PREFIX.audio : ((data[0] & 1) === 0 ? CLEAR_PREFIX.key : CLEAR_PREFIX.delta);
  const CLEAR_PREFIX_INFO = enc.encode('e2ee-lab 1.0 clear-prefix key');
  const clearPrefixKey = (baseKey) => hkdf('SHA-256', baseKey, CLEAR_PREFIX_INFO, 16);

  class ClearPrefixSender {
    static async create(raw, keyIndex, count = null) {
      const s = new ClearPrefixSender();
      s.aead = await aesKey(raw); s.keyIndex = keyIndex;
      s.count = count === null ? crypto.getRandomValues(new Uint16Array(1))[0] : count;  // as Jitsi
      return s;
    }
    // prefix || AES-GCM(IV, body, aad = prefix) || IV || 12 || key index; IV = SSRC || timestamp || count
    async protect(data, kind, ssrc, timestamp) {
      const n = prefixLength(kind, data);
      if (data.length < n) throw new CryptoError('malformed', 'frame shorter than its prefix');
      if (this.count > MAX_IV_COUNT) throw new CryptoError('iv_exhausted', 'the 32-bit IV counter is used up');
      const count = this.count++;              // taken before the await: an IV never repeats
      const iv = concat(be(ssrc >>> 0, 4), be(timestamp >>> 0, 4), be(count, 4));
      const prefix = data.subarray(0, n);
      const body = await seal(this.aead, iv, data.subarray(n), prefix);
      return concat(prefix, body, iv, Uint8Array.of(IV_LENGTH, this.keyIndex));
    }
  }
  // `ring`: key index -> { aes, epoch } of one (sender, kind); returns the plaintext and the epoch.
  async function clearPrefixOpen(ring, data, kind) {
    const n = prefixLength(kind, data);
    if (data.length < n + 16 + TRAILER) throw new CryptoError('malformed', `${data.length} bytes`);
    if (data[data.length - 2] !== IV_LENGTH) throw new CryptoError('malformed', 'IV length byte');
    const entry = ring.get(data[data.length - 1]);
    if (!entry) throw new CryptoError('unknown_key', `no key at index ${data[data.length - 1]}`);
    const prefix = data.subarray(0, n);
    const iv = data.subarray(data.length - TRAILER, data.length - 2);
    const body = await open(entry.aes, iv, data.subarray(n, data.length - TRAILER), prefix);
    return { plain: concat(prefix, body), epoch: entry.epoch };
  }

  // --- the worker's frame keys ---------------------------------------------------------------------
  // The page's Member (keys.js) holds base keys per (sender, epoch); install() brings the worker's
  // keys in line with them (keys the Member deleted are deleted here too). A receiver is told, per
  // stream, the announced publisher (member index) and kind, both from the SFU: untrusted. decrypt()
  // reads the KID first and drops a frame whose KID names another member or kind
  // ('kid_stream_mismatch', before the window is touched), so a frame is credited to the member its
  // authenticated KID names (RFC 9605 §6.1.1). Once a frame of (sender, kind) under epoch e
  // authenticated, that sender's keys of that kind for every epoch < e are deleted (and never
  // installed again); onRetired(sender, kind, e) tells the page. Clear-prefix frames have no KID: the
  // key ring of the announced publisher is used, so a frame moved to another stream fails its tag.
  class FrameKeys {
    constructor(mode, suiteId = 4, onRetired = () => {}) {
      this.mode = mode; this.suite = suiteId; this.onRetired = onRetired;
      this.index = null; this.sendEpoch = null;
      this.send = new Map();          // kind -> SFrameKey or ClearPrefixSender of sendEpoch
      this.spent = new Map();         // send KID (string) -> next CTR, of send keys already replaced
      this.recv = new Map();          // e2ee: KID (string) -> { key, member, epoch, kind }
      this.rings = new Map();         // clear-prefix: "member:kind" -> Map(key index -> { aes, epoch })
      this.floor = new Map();         // "member:kind" -> oldest epoch still accepted
      this.installing = Promise.resolve();
    }
    floorOf(member, kind) { return this.floor.has(`${member}:${kind}`) ? this.floor.get(`${member}:${kind}`) : -1; }

    // keys: [{ member, epoch, baseKey (hex) }], everything the Member holds now (its own included).
    install(msg) {
      this.installing = this.installing.then(() => this._install(msg));
      return this.installing;
    }
    async _install({ index, sendEpoch, keys }) {
      const held = keys.map((k) => ({ member: k.member, epoch: k.epoch, base: unhex(k.baseKey) }));
      const wanted = [];
      for (const k of held) {
        if (k.member === index) continue;
        for (const kind of MEDIA_KINDS) if (k.epoch >= this.floorOf(k.member, kind)) wanted.push({ ...k, kind });
      }
      const made = this.mode === 'e2ee' ? await this._makeSFrame(wanted) : await this._makeClear(wanted);
      const own = held.find((k) => k.member === index && k.epoch === sendEpoch);
      const send = own && sendEpoch !== this.sendEpoch ? await this._makeSend(own) : null;
      // everything built: swap in one synchronous step (frames in flight keep the keys they took)
      this.index = index;
      this._replaceReceive(made);
      if (send) { this._retireSend(); this.send = send; this.sendEpoch = sendEpoch; }
      if (!own) { this._retireSend(); this.send = new Map(); this.sendEpoch = null; }
    }
    async _makeSFrame(wanted) {
      const made = new Map();
      for (const w of wanted) {
        const kid = kidFor(w.epoch, w.member, w.kind);
        const old = this.recv.get(String(kid));
        made.set(String(kid), old || { key: await SFrameKey.create(this.suite, kid, w.base), ...w, base: undefined });
      }
      return made;
    }
    async _makeClear(wanted) {
      const made = new Map();
      for (const w of wanted) {
        const tag = `${w.member}:${w.kind}`;
        if (!made.has(tag)) made.set(tag, new Map());
        const old = this.rings.get(tag)?.get(w.epoch % 256);
        const entry = old && old.epoch === w.epoch ? old : { aes: await aesKey(await clearPrefixKey(w.base)), epoch: w.epoch };
        const ring = made.get(tag);
        if (!ring.has(w.epoch % 256) || ring.get(w.epoch % 256).epoch < w.epoch) ring.set(w.epoch % 256, entry);
      }
      return made;
    }
    async _makeSend(own) {
      const out = new Map();
      for (const kind of MEDIA_KINDS) {
        if (this.mode === 'e2ee') {
          const kid = kidFor(own.epoch, own.member, kind);
          out.set(kind, await SFrameKey.create(this.suite, kid, own.base, this.spent.get(String(kid)) || 0n));
        } else {
          out.set(kind, await ClearPrefixSender.create(await clearPrefixKey(own.base), own.epoch % 256));
        }
      }
      return out;
    }
    _retireSend() {
      for (const key of this.send.values()) if (key instanceof SFrameKey) this.spent.set(String(key.kid), key.nextCtr);
    }
    _replaceReceive(made) {
      // a frame may have retired keys during the awaits above: the floor decides, now
      if (this.mode === 'e2ee') {
        this.recv = new Map([...made].filter(([, v]) => v.epoch >= this.floorOf(v.member, v.kind)));
      } else {
        for (const [tag, ring] of made) {
          const [member, kind] = tag.split(':');
          for (const [i, e] of ring) if (e.epoch < this.floorOf(Number(member), kind)) ring.delete(i);
        }
        this.rings = made;
      }
    }

    // Encrypt one frame of `kind` with this member's current send key of that kind.
    encrypt(data, kind, ssrc = 0, timestamp = 0) {
      const key = this.send.get(kind);
      if (!key) throw new CryptoError('no_key', 'no send key yet');
      return this.mode === 'e2ee' ? key.protect(data) : key.protect(data, kind, ssrc, timestamp);
    }

    // Decrypt one frame of a stream announced as member `member`'s `kind` (member undefined: a stream
    // no member publishes). Returns { data, member, kind, epoch }: who the key says sent it.
    async decrypt(data, member, kind) {
      if (this.mode === 'e2ee') return this._decryptSFrame(data, member, kind);
      if (member === undefined || member === null) throw new CryptoError('unknown_key', 'a stream no member publishes');
      const ring = this.rings.get(`${member}:${kind}`);
      if (!ring) throw new CryptoError('unknown_key', `no keys of member ${member}'s ${kind}`);
      const { plain, epoch } = await clearPrefixOpen(ring, data, kind);
      this.authenticated(member, kind, epoch);
      return { data: plain, member, kind, epoch };
    }
    async _decryptSFrame(data, member, kind) {
      const { kid } = decodeHeader(data);
      const origin = parseKid(kid);
      if (origin.member !== member || origin.kind !== kind) {
        throw new CryptoError('kid_stream_mismatch', `KID names member ${origin.member}'s ${origin.kind}; ` +
                              `the stream is announced as member ${member}'s ${kind}`);
      }
      const entry = this.recv.get(String(kid));
      if (!entry) throw new CryptoError('unknown_kid', `no key for KID 0x${kid.toString(16)}`);
      const plain = await entry.key.unprotect(data);
      this.authenticated(origin.member, origin.kind, origin.epoch);
      return { data: plain, ...origin };
    }
    // A frame of (member, kind) under `epoch` authenticated: delete that sender's older keys of that kind.
    authenticated(member, kind, epoch) {
      if (member === this.index || epoch <= this.floorOf(member, kind)) return;
      this.floor.set(`${member}:${kind}`, epoch);
      for (const [kid, v] of this.recv) if (v.member === member && v.kind === kind && v.epoch < epoch) this.recv.delete(kid);
      const ring = this.rings.get(`${member}:${kind}`);
      if (ring) for (const [i, e] of ring) if (e.epoch < epoch) ring.delete(i);
      this.onRetired(member, kind, epoch);
    }
    // What is installed, for tests and stats: receive KIDs (hex) and clear-prefix epochs by "member:kind".
    describe() {
      const rings = {};
      for (const [tag, ring] of this.rings) rings[tag] = [...ring.values()].map((e) => e.epoch).sort((a, b) => a - b);
      return { index: this.index, sendEpoch: this.sendEpoch, floor: Object.fromEntries(this.floor),
               receiveKids: [...this.recv.keys()].map((k) => BigInt(k).toString(16)).sort(), rings,
               send: Object.fromEntries([...this.send].map(([kind, k]) => [kind, k.kid !== undefined ? k.kid.toString(16) : k.keyIndex])) };
    }
  }

  return {
    enc, hex, unhex, concat, be, readBE, compare, equal, CryptoError, hkdf, aesKey, seal, open,
    SUITES, MAX_CTR, encodeHeader, decodeHeader, deriveKeySalt, ReplayWindow, SFrameKey,
    MEDIA_KINDS, MAX_EPOCH, kidFor, parseKid,
    CLEAR_PREFIX, MAX_IV_COUNT, prefixLength, clearPrefixKey, ClearPrefixSender, clearPrefixOpen,
    FrameKeys,
  };
})();

// keys.js: the browser participant's group key agreement in WebCrypto, byte for byte the Python
// package e2ee_lab/crypto/keys/ (whose docstring is the normative description): P-256 identities,
// roster entries [index, user, identityHex, sessionHex] and the roster-set check, group codes,
// safety numbers bound to the user id, the pairwise key (ECDH + HKDF-SHA256), key messages v2 bound
// to the recipient's call session, the RFC 9605 §5.1 ratchet with the suite's hash, epochs, the
// switch-over and the retirement of old epochs. Everything from signalling is adversarial: a bad
// update or message raises a CryptoError (a fixed `reason`, as in Python) and changes nothing.
// What the pairwise channel does not give: static-static ECDH, so key messages have no forward
// secrecy and allow key-compromise impersonation (an ephemeral ECDH per call, or MLS, would).
// Loaded by the page after e2ee.js; adds its names to E2EE.
'use strict';

(() => {
  const { enc, hex, unhex, concat, be, readBE, compare, equal, CryptoError, hkdf, aesKey, seal, open,
          SUITES, MEDIA_KINDS, MAX_EPOCH, kidFor } = E2EE;
  const subtle = crypto.subtle;

  const PAIRWISE_LABEL = enc.encode('e2ee-lab 1.0 pairwise key ');
  const RATCHET_LABEL = enc.encode('SFrame 1.0 Ratchet');
  const GROUP_CODE_LABEL = enc.encode('e2ee-lab 1.0 group code');
  const KEY_MESSAGE_VERSION = 2;
  const HEADER_LEN = 43;      // version 1, sender 1, recipient 1, session 16, seq 8, epoch 4, nonce 12
  const TAG_LEN = 16;
  const NONCE_LEN = 12;
  const SESSION_LEN = 16;
  const MAX_USER_LEN = 64;
  const CODE_LEN = 32;
  const NO_CODE = new Uint8Array(CODE_LEN);
  const SAFETY_VERSION = Uint8Array.of(0, 0);
  const SAFETY_ITERATIONS = 5200;
  const CHANGES = ['join', 'leave', 'rekey'];
  const malformed = (what) => new CryptoError('malformed', what);

  // §5.1: HKDF-Expand(HKDF-Extract("", base_key), "SFrame 1.0 Ratchet", Nh), the suite's hash and Nh.
  const ratchet = (baseKey, suiteId = 4) => hkdf(SUITES[suiteId].hash, baseKey, RATCHET_LABEL, SUITES[suiteId].nh);

  // --- identities, user ids, the pairwise key ------------------------------------------------------
  async function newIdentity() {
    const pair = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    const pub = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));  // 04 || x || y
    return { privateKey: pair.privateKey, public: pub };
  }
  // A known key pair (tests: the same key as a Python IdentityKeyPair): PKCS #8 private key and raw public key.
  async function importIdentity(pkcs8, publicKey) {
    const privateKey = await subtle.importKey('pkcs8', pkcs8, { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    return { privateKey, public: publicKey };
  }
  function userBytes(user) {
    const raw = typeof user === 'string' ? enc.encode(user) : null;
    if (raw === null || raw.length < 1 || raw.length > MAX_USER_LEN) throw malformed(`a user id has 1..${MAX_USER_LEN} bytes of UTF-8`);
    return raw;
  }
  // HKDF-SHA256(salt "", ECDH x-coordinate, "e2ee-lab 1.0 pairwise key " || min(pub) || max(pub), 16)
  async function pairwiseSecret(identity, peerPublic) {
    let peer;
    try {
      peer = await subtle.importKey('raw', peerPublic, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
    } catch (e) {
      throw new CryptoError('invalid_identity', 'not a P-256 public key');
    }
    const shared = new Uint8Array(await subtle.deriveBits({ name: 'ECDH', public: peer }, identity.privateKey, 256));
    const [lo, hi] = compare(identity.public, peerPublic) <= 0 ? [identity.public, peerPublic] : [peerPublic, identity.public];
    return hkdf('SHA-256', shared, concat(PAIRWISE_LABEL, lo, hi), 16);
  }
  const pairwiseKey = async (identity, peerPublic) => aesKey(await pairwiseSecret(identity, peerPublic));

  // --- safety numbers and group codes (shown as 5-digit groups) -------------------------------------
  // 30 digits from the first 30 bytes: six 5-byte big-endian numbers, each mod 100000.
  function digits(digest) {
    let out = '';
    for (let i = 0; i < 30; i += 5) out += String(readBE(digest, i, 5) % 100000n).padStart(5, '0');
    return out;
  }
  const groups = (s) => s.match(/.{5}/g);
  // d = 0x0000 || key || utf8(user); 5200 times d = SHA-512(d || key); 30 digits (after Signal's).
  async function fingerprint(user, key) {
    let d = concat(SAFETY_VERSION, key, userBytes(user));
    for (let i = 0; i < SAFETY_ITERATIONS; i++) d = new Uint8Array(await subtle.digest('SHA-512', concat(d, key)));
    return digits(d);
  }
  // A pair's number: both fingerprints, sorted and joined (60 digits, the same on both sides).
  async function safetyNumber([userA, keyA], [userB, keyB]) {
    return [await fingerprint(userA, keyA), await fingerprint(userB, keyB)].sort().join('');
  }
  const entryBytes = (e) => {
    const user = userBytes(e.user);
    return concat(Uint8Array.of(e.index, user.length), user, Uint8Array.of(e.identity.length), e.identity, e.session);
  };
  // code_e = SHA-256("e2ee-lab 1.0 group code" || u32be(e) || prev || entries in index order)
  async function groupCode(epoch, entries, prev = NO_CODE) {
    const sorted = [...entries].sort((a, b) => a.index - b.index);
    const data = concat(GROUP_CODE_LABEL, be(epoch, 4), prev, ...sorted.map(entryBytes));
    return new Uint8Array(await subtle.digest('SHA-256', data));
  }

  // --- roster updates from signalling (JSON) and the roster-set check -------------------------------
  const isIndex = (v) => Number.isInteger(v) && v >= 0 && v < 256;
  function parseEntry(e) {
    if (!Array.isArray(e) || e.length !== 4 || !isIndex(e[0])) throw malformed('a roster entry is [index, user, identityHex, sessionHex]');
    const [index, user, identity, session] = [e[0], e[1], unhex(e[2]), unhex(e[3])];
    userBytes(user);
    if (session.length !== SESSION_LEN || identity.length < 1 || identity.length > 255) throw malformed(`roster entry of member ${index}`);
    return { index, user, identity, session };
  }
  // {type: "roster", epoch, change, subject, members: [entries], previousCode: hex | null}
  function parseRosterUpdate(msg) {
    if (!msg || typeof msg !== 'object' || !Array.isArray(msg.members)) throw malformed('not a roster update');
    const { epoch, change, subject } = msg;
    if (!(Number.isInteger(epoch) && epoch >= 0 && epoch <= MAX_EPOCH) || !CHANGES.includes(change)) throw malformed('epoch or change');
    if (!(subject === null || isIndex(subject))) throw malformed('subject');
    const previousCode = msg.previousCode === null || msg.previousCode === undefined ? null : unhex(msg.previousCode);
    return { epoch, change, subject, members: msg.members.map(parseEntry), previousCode };
  }
  const sameEntry = (a, b) => a.index === b.index && a.user === b.user && equal(a.identity, b.identity) && equal(a.session, b.session);
  // The fixed members' check (crypto/keys/roster.py check_member_set): the update lists `me` exactly
  // as it joined, no index twice, and (but for its own JOIN) exactly the set its change implies with
  // P = peers: JOIN of s: s not in P, P ∪ {s}; LEAVE of s: s in P, P − {s}; REKEY: P, no subject.
  function checkMemberSet(update, me, peers, ownJoin) {
    const indices = update.members.map((e) => e.index);
    if (new Set(indices).size !== indices.length) throw new CryptoError('roster_mismatch', `epoch ${update.epoch} lists an index twice`);
    if (!update.members.some((e) => sameEntry(e, me))) {
      throw new CryptoError('roster_mismatch', `epoch ${update.epoch} does not list member ${me.index} as it joined`);
    }
    if (ownJoin) return;
    const listed = new Set(indices.filter((i) => i !== me.index));
    const s = update.subject;
    const [expected, subjectOk] = {
      join: [new Set([...peers, s]), !peers.has(s)],
      leave: [new Set([...peers].filter((p) => p !== s)), peers.has(s)],
      rekey: [new Set(peers), s === null],
    }[update.change];
    if (listed.size !== expected.size || [...listed].some((i) => !expected.has(i)) || !subjectOk) {
      throw new CryptoError('roster_mismatch', `${update.change} of ${s} in epoch ${update.epoch} lists ` +
                            `[${[...listed].sort((a, b) => a - b)}]; with peers [${[...peers].sort((a, b) => a - b)}] it implies ` +
                            `[${[...expected].sort((a, b) => a - b)}]`);
    }
  }

  // --- key message v2 ---------------------------------------------------------------------------------
  function keyMessageHeader({ sender, recipient, session, seq, epoch, nonce }) {
    return concat(Uint8Array.of(KEY_MESSAGE_VERSION, sender, recipient), session, be(seq, 8), be(epoch, 4), nonce);
  }
  async function sealKeyMessage(key, fields, payload) {
    const header = keyMessageHeader(fields);
    return concat(header, await seal(key, fields.nonce, payload, header));
  }
  function parseKeyMessage(data) {
    if (!(data instanceof Uint8Array) || data.length < HEADER_LEN + TAG_LEN) throw malformed(`key message of ${data && data.length} bytes`);
    if (data[0] !== KEY_MESSAGE_VERSION) throw malformed(`version byte ${data[0]}, expected ${KEY_MESSAGE_VERSION}`);
    return { sender: data[1], recipient: data[2], session: data.subarray(3, 19), seq: readBE(data, 19, 8),
             epoch: Number(readBE(data, 27, 4)), nonce: data.subarray(31, HEADER_LEN),
             header: data.subarray(0, HEADER_LEN), ciphertext: data.subarray(HEADER_LEN) };
  }
  const openKeyMessage = (key, msg) => open(key, msg.nonce, msg.ciphertext, msg.header);

  // --- the member -------------------------------------------------------------------------------------
  const TRANSITIONS = {
    'outside:joined': 'active', 'active:changed': 'switching', 'switching:changed': 'switching',
    'switching:switched': 'active', 'active:key': 'active', 'switching:key': 'switching',
    'active:removed': 'left', 'switching:removed': 'left',
  };
  function nextState(state, trigger) {
    const next = TRANSITIONS[`${state}:${trigger}`];
    if (!next) throw new CryptoError('illegal_transition', `${trigger} is illegal in state ${state}`);
    return next;
  }
  const split = (tag) => tag.split(':').map(Number);

  // One member (crypto/keys/member.py): roster updates and key messages in, key messages and base keys
  // out; time only moves through `now` (seconds). Calls are taken one at a time, in order.
  class Member {
    constructor({ index, identity, user, session, switchDelay = 2, grace = 10, suite = 4 }) {
      kidFor(0, index, 'audio');                                     // RangeError for a bad index
      userBytes(user);
      if (!(session instanceof Uint8Array) || session.length !== SESSION_LEN) throw new RangeError('a session is 16 bytes');
      if (!SUITES[suite]) throw new RangeError(`suite ${suite}`);
      Object.assign(this, { index, identity, user, session, suite, policy: { switchDelay, grace } });
      this.entry = { index, user, identity: identity.public, session };   // what every roster must list
      this.state = 'outside'; this.epoch = -1; this.joinEpoch = null; this.sendEpoch = null;
      this.keyVersion = 0;                  // bumps whenever the keys held or the send epoch change
      this.peers = new Map(); this.since = new Map(); this.channels = new Map();
      this.sendSeq = new Map(); this.recvSeq = new Map(); this.history = new Map(); this.codes = new Map();
      this.keys = new Map();                // "sender:epoch" -> base key
      this.floor = new Map();               // "sender:kind" -> oldest epoch still accepted
      this.retireAt = new Map(); this.retired = new Set();
      this.queue = Promise.resolve();
    }
    _serial(job) {
      const run = this.queue.then(job);
      this.queue = run.catch(() => {});
      return run;
    }
    _floor(sender, kind) { return this.floor.has(`${sender}:${kind}`) ? this.floor.get(`${sender}:${kind}`) : -1; }

    // A roster update (JSON) -> [[recipient, key message bytes], ...] to relay.
    handleRoster(msg, now) { return this._serial(() => this._handleRoster(msg, now)); }
    async _handleRoster(msg, now) {
      this._advance(now);
      const update = parseRosterUpdate(msg);
      if (update.change === 'leave' && update.subject === this.index) {  // own leave: LEFT, every key wiped
        this.state = nextState(this.state, 'removed');
        this._wipe();
        return [];
      }
      const ownJoin = update.change === 'join' && update.subject === this.index;
      const newState = nextState(this.state, ownJoin ? 'joined' : 'changed');
      if (!ownJoin) this._checkEpochOrder(update.epoch);
      checkMemberSet(update, this.entry, new Set(this.peers.keys()), ownJoin);
      const newPeers = await this._checkedPeers(update);
      const code = await this._nextCode(update, ownJoin);
      const ratcheted = update.change === 'join' && !ownJoin ? await this._ratchetEpoch(update.epoch - 1) : [];
      // every check passed: from here on the update is applied, synchronously
      this.history.set(update.epoch, { change: update.change, subject: update.subject, start: now });
      if (this.epoch >= 0) this.retireAt.set(this.epoch, now + this.policy.switchDelay + this.policy.grace);
      this.epoch = update.epoch;
      this.codes.set(update.epoch, code);
      if (ownJoin) { this.joinEpoch = update.epoch; this.sendEpoch = update.epoch; }
      this._pin(newPeers, update);
      const [key, recipients] = this._rotateOwnKey(update, ownJoin, ratcheted);
      this.state = newState;
      this.keyVersion++;
      return this._sealAll(recipients, update.epoch, key);
    }
    _checkEpochOrder(epoch) {
      if (epoch <= this.epoch) throw new CryptoError('stale_epoch', `roster update for epoch ${epoch}, already in ${this.epoch}`);
      if (epoch > this.epoch + 1) throw new CryptoError('future_epoch', `roster update for epoch ${epoch}, expected ${this.epoch + 1}`);
    }
    async _checkedPeers(update) {
      const fresh = new Map();
      for (const entry of update.members) {
        if (entry.index === this.index) continue;
        const known = this.peers.get(entry.index);
        if (known && !sameEntry(known, entry)) {
          throw new CryptoError('identity_changed', `member ${entry.index}'s identity key, user or session changed`);
        }
        if (!known) fresh.set(entry.index, { entry, channel: await pairwiseKey(this.identity, entry.identity) });
      }
      return fresh;
    }
    // The group code over the update's roster, after this member's previous code (a newcomer: after
    // the server's previousCode claim, zeros when it gives none).
    async _nextCode(update, ownJoin) {
      let prev = this.codes.get(update.epoch - 1) || NO_CODE;
      if (update.epoch === 0) prev = NO_CODE;
      else if (ownJoin) prev = update.previousCode === null ? NO_CODE : update.previousCode;
      if (prev.length !== CODE_LEN) throw new CryptoError('roster_mismatch', `previous group code of ${prev.length} bytes`);
      return groupCode(update.epoch, update.members, prev);
    }
    // On someone else's JOIN every key of the previous epoch is ratcheted once (§5.1).
    async _ratchetEpoch(epoch) {
      const out = [];
      for (const [tag, key] of this.keys) {
        const [s, e] = split(tag);
        if (e === epoch) out.push([s, await ratchet(key, this.suite)]);
      }
      return out;
    }
    _pin(fresh, update) {
      for (const [m, { entry, channel }] of fresh) {
        this.peers.set(m, entry); this.channels.set(m, channel);
        this.since.set(m, update.subject === m ? update.epoch : 0);
      }
      if (update.change === 'leave') for (const t of [this.peers, this.channels, this.sendSeq, this.recvSeq]) t.delete(update.subject);
    }
    _rotateOwnKey(update, ownJoin, ratcheted) {
      const e = update.epoch;
      if (update.change === 'join' && !ownJoin) {
        for (const [s, key] of ratcheted) if (!this.keys.has(`${s}:${e}`)) this.keys.set(`${s}:${e}`, key);
        const own = this.keys.get(`${this.index}:${e}`);
        return [own, own ? [update.subject] : []];
      }
      const key = crypto.getRandomValues(new Uint8Array(SUITES[this.suite].nh));
      this.keys.set(`${this.index}:${e}`, key);
      return [key, [...this.channels.keys()].sort((a, b) => a - b)];
    }
    async _sealAll(recipients, epoch, key) {
      const jobs = recipients.map((r) => {    // sequence numbers taken now, in order
        const seq = (this.sendSeq.get(r) || 0n) + 1n;
        this.sendSeq.set(r, seq);
        const fields = { sender: this.index, recipient: r, session: this.peers.get(r).session, seq, epoch,
                         nonce: crypto.getRandomValues(new Uint8Array(NONCE_LEN)) };
        return [r, sealKeyMessage(this.channels.get(r), fields, key)];
      });
      const out = [];
      for (const [r, sealed] of jobs) out.push([r, await sealed]);
      return out;
    }

    // A key message (bytes) from the relay. The session check comes before opening: a message sealed
    // for another call is refused unread ('wrong_call').
    receiveKeyMessage(data, now) { return this._serial(() => this._receiveKeyMessage(data, now)); }
    async _receiveKeyMessage(data, now) {
      this._advance(now);
      const newState = nextState(this.state, 'key');
      const msg = parseKeyMessage(data);
      if (msg.recipient !== this.index) throw new CryptoError('wrong_recipient', `for member ${msg.recipient}`);
      if (!equal(msg.session, this.session)) throw new CryptoError('wrong_call', `for session ${hex(msg.session).slice(0, 8)}…`);
      if (!this.channels.has(msg.sender)) throw new CryptoError('unknown_member', `no channel with member ${msg.sender}`);
      const key = await openKeyMessage(this.channels.get(msg.sender), msg);
      if (key.length !== SUITES[this.suite].nh) throw malformed(`base key of ${key.length} bytes`);
      const chain = await this._chain(msg.sender, msg.epoch, key);
      if (msg.seq <= (this.recvSeq.get(msg.sender) || 0n)) throw new CryptoError('replay', `seq ${msg.seq} from member ${msg.sender}`);
      this._checkKeyEpoch(msg.sender, msg.epoch);   // against the state now (time or a frame may have retired keys)
      this.recvSeq.set(msg.sender, msg.seq);
      this.keys.set(`${msg.sender}:${msg.epoch}`, key);
      for (const [e, k] of chain) if (!this.keys.has(`${msg.sender}:${e}`)) this.keys.set(`${msg.sender}:${e}`, k);
      this.state = newState;
      this.keyVersion++;
    }
    // §5.1: the sender's keys for the later JOIN epochs this member already entered.
    async _chain(sender, epoch, key) {
      const out = [];
      for (let e = epoch + 1; e <= this.epoch; e++) {
        const h = this.history.get(e);
        if (!h || h.change !== 'join' || h.subject === sender || this.keys.has(`${sender}:${e}`)) break;
        key = await ratchet(key, this.suite);
        out.push([e, key]);
      }
      return out;
    }
    _checkKeyEpoch(sender, epoch) {
      if (epoch > this.epoch) throw new CryptoError('future_epoch', `key for epoch ${epoch}, this member is in ${this.epoch}`);
      if (epoch < Math.max(this.joinEpoch, this.since.get(sender) || 0) || this.retired.has(epoch) ||
          this.keys.has(`${sender}:${epoch}`) || MEDIA_KINDS.every((k) => epoch < this._floor(sender, k))) {
        throw new CryptoError('stale_epoch', `key for epoch ${epoch} from member ${sender}`);
      }
    }

    // Let time pass: switch to a due send key, delete keys whose grace ended. True if keys changed.
    tick(now) {
      const version = this.keyVersion;
      this._advance(now);
      return version !== this.keyVersion;
    }
    _advance(now) {
      if (this.state === 'outside' || this.state === 'left') return;
      this._switchSendKey(now);
      for (const [epoch, t] of [...this.retireAt]) {
        if (t > now) continue;
        this.retireAt.delete(epoch);
        this.retired.add(epoch);
        for (const tag of [...this.keys.keys()]) if (split(tag)[1] === epoch) this.keys.delete(tag);
        this.keyVersion++;
      }
    }
    _switchSendKey(now) {
      let due = null;
      for (const tag of this.keys.keys()) {
        const [s, e] = split(tag);
        if (s === this.index && e > this.sendEpoch && this.history.get(e).start + this.policy.switchDelay <= now) due = Math.max(due ?? e, e);
      }
      if (due !== null) { this.sendEpoch = due; this.keyVersion++; }
      const pending = [...this.keys.keys()].some((tag) => split(tag)[0] === this.index && split(tag)[1] > this.sendEpoch);
      if (this.state === 'switching' && !pending) this.state = nextState(this.state, 'switched');
    }
    // A frame of `sender`'s `kind` under `epoch` authenticated (the worker says so): older epochs of
    // that sender and kind are retired; a base key goes once both kinds are past it.
    frameAuthenticated(sender, kind, epoch) {
      if (sender === this.index || this._floor(sender, kind) >= epoch) return;
      this.floor.set(`${sender}:${kind}`, epoch);
      for (const tag of [...this.keys.keys()]) {
        const [s, e] = split(tag);
        if (s === sender && e < epoch && MEDIA_KINDS.every((k) => this._floor(s, k) > e)) this.keys.delete(tag);
      }
      this.keyVersion++;
    }
    _wipe() {
      this.keys.clear(); this.channels.clear(); this.retireAt.clear();
      this.keyVersion++;
    }

    // --- queries ---
    groupCode(epoch = this.epoch) {
      if (!this.codes.has(epoch)) throw new CryptoError('stale_epoch', `no group code for epoch ${epoch}`);
      const d = digits(this.codes.get(epoch));
      return { epoch, code: hex(this.codes.get(epoch)), digits: d, text: groups(d).join(' ') };
    }
    async safetyNumber(peer) {
      const entry = this.peers.get(peer);
      if (!entry) throw new CryptoError('unknown_member', `no identity pinned for member ${peer}`);
      return safetyNumber([this.user, this.identity.public], [entry.user, entry.identity]);
    }
    baseKeys() {
      return [...this.keys].map(([tag, key]) => ({ member: split(tag)[0], epoch: split(tag)[1], baseKey: hex(key) }));
    }
    // This member sends under `epoch` and holds every other member's key of it, both kinds.
    holds(epoch, members) {
      return this.sendEpoch === epoch && members.every((m) => m === this.index ||
        (this.keys.has(`${m}:${epoch}`) && MEDIA_KINDS.every((k) => this._floor(m, k) <= epoch)));
    }
    // The whole state, JSON-able (tests compare it before and after a refused input).
    snapshot() {
      const entries = (map, f = (v) => v) => [...map].map(([k, v]) => [String(k), f(v)]).sort();
      const entry = (e) => [e.index, e.user, hex(e.identity), hex(e.session)];
      return { state: this.state, epoch: this.epoch, joinEpoch: this.joinEpoch, sendEpoch: this.sendEpoch,
               keyVersion: this.keyVersion, peers: entries(this.peers, entry), since: entries(this.since),
               channels: [...this.channels.keys()].sort(), sendSeq: entries(this.sendSeq, String),
               recvSeq: entries(this.recvSeq, String), history: entries(this.history), codes: entries(this.codes, hex),
               keys: entries(this.keys, hex), floor: entries(this.floor), retireAt: entries(this.retireAt),
               retired: [...this.retired].sort() };
    }
  }

  Object.assign(E2EE, {
    KEY_MESSAGE_VERSION, HEADER_LEN, SESSION_LEN, SAFETY_ITERATIONS, NO_CODE,
    ratchet, newIdentity, importIdentity, pairwiseSecret, pairwiseKey, digits, fingerprint, safetyNumber,
    groupCode, parseRosterUpdate, checkMemberSet, keyMessageHeader, sealKeyMessage, parseKeyMessage,
    openKeyMessage, nextState, Member,
  });
})();

// e2ee_checks.js: drivers for tests/test_browser_js.py, evaluated into the browser participant's page
// (which has loaded e2ee.js and keys.js) over the DevTools protocol. They run the page's own code on
// inputs the Python test makes with the Python package (identities, roster updates, key messages,
// SFrame frames) and return plain data (values, CryptoError reasons, state snapshots); the Python test
// compares them with what the Python implementation computes. No check here decides pass or fail.
'use strict';

(() => {
  const E = E2EE;
  const { hex, unhex } = E;
  const reasonOf = (e) => (e && e.reason) || `${e && e.name}: ${e && e.message}`;
  const outcome = async (job) => {
    try { return { ok: true, value: await job() }; } catch (e) { return { ok: false, reason: reasonOf(e) }; }
  };
  const settled = (results) => results.map((r) => (r.status === 'fulfilled' ? { ok: true } : { ok: false, reason: reasonOf(r.reason) }));
  const members = new Map();     // name -> E.Member
  const frameKeys = new Map();   // name -> { keys: E.FrameKeys, retired: [[member, kind, epoch]] }

  const memberState = (m) => ({ state: m.state, epoch: m.epoch, sendEpoch: m.sendEpoch,
                                keys: m.baseKeys().sort((a, b) => a.member - b.member || a.epoch - b.epoch) });

  async function memberStep(m, s) {
    if (s.op === 'roster' || s.op === 'key') m.tick(s.now);   // time passes first, whatever the input
    const before = JSON.stringify(m.snapshot());
    let result;
    if (s.op === 'roster') {
      result = await outcome(async () => (await m.handleRoster(s.msg, s.now)).map(([r, d]) => [r, hex(d)]));
    } else if (s.op === 'key') {
      result = await outcome(() => m.receiveKeyMessage(unhex(s.data), s.now));
    } else if (s.op === 'tick') {
      result = { ok: true, value: m.tick(s.now) };
    } else if (s.op === 'frame') {          // a frame of (sender, kind) under epoch authenticated
      result = { ok: true, value: m.frameAuthenticated(s.sender, s.kind, s.epoch) };
    } else if (s.op === 'groupCode') {
      result = await outcome(() => m.groupCode(s.epoch));
    } else if (s.op === 'safetyNumber') {
      result = await outcome(() => m.safetyNumber(s.peer));
    } else {
      throw new Error(`unknown member step ${s.op}`);
    }
    return { ...result, unchanged: before === JSON.stringify(m.snapshot()), ...memberState(m) };
  }

  async function frameStep(f, s) {
    const frame = s.frame !== undefined ? unhex(s.frame) : null;
    if (s.op === 'install') {
      await f.keys.install({ index: s.index, sendEpoch: s.sendEpoch, keys: s.keys });
      return { ok: true };
    }
    if (s.op === 'decrypt') {
      return outcome(async () => {
        const got = await f.keys.decrypt(frame, s.member, s.kind);
        return { data: hex(got.data), member: got.member, kind: got.kind, epoch: got.epoch };
      });
    }
    if (s.op === 'concurrent') {          // every copy started before any is awaited
      return { ok: true, value: settled(await Promise.allSettled(s.frames.map((x) => f.keys.decrypt(unhex(x), s.member, s.kind)))) };
    }
    if (s.op === 'encryptMany') {         // n protects started at once, none awaited in between
      const jobs = [];
      for (let i = 0; i < s.n; i++) jobs.push(f.keys.encrypt(unhex(s.data), s.kind, s.ssrc || 0, i));
      return { ok: true, value: (await Promise.all(jobs)).map(hex) };
    }
    throw new Error(`unknown frame step ${s.op}`);
  }

  window.e2eeChecks = {
    // --- cross-implementation values -------------------------------------------------------------
    kids({ cases, invalid }) {
      return { kids: cases.map(([e, m, k]) => E.kidFor(e, m, k).toString()),
               parsed: cases.map(([e, m, k]) => E.parseKid(E.kidFor(e, m, k))),
               invalid: invalid.map((kid) => { try { E.parseKid(BigInt(kid)); return 'accepted'; } catch (e) { return reasonOf(e); } }),
               headers: cases.map(([e, m, k]) => hex(E.encodeHeader(E.kidFor(e, m, k), 300n))) };
    },
    async ratchet({ suite, base }) { return hex(await E.ratchet(unhex(base), suite)); },
    async groupCode({ epoch, members, prev }) {
      const entries = E.parseRosterUpdate({ epoch, change: 'rekey', subject: null, members, previousCode: null }).members;
      const code = await E.groupCode(epoch, entries, unhex(prev));
      return { code: hex(code), digits: E.digits(code) };
    },
    async safetyNumber({ a, b }) {
      return { number: await E.safetyNumber([a[0], unhex(a[1])], [b[0], unhex(b[1])]),
               fingerprintA: await E.fingerprint(a[0], unhex(a[1])) };
    },
    // The page's identity is a Python key pair here (PKCS #8); `message` was sealed by Python to it.
    async keyMessage({ pkcs8, publicKey, peer, message, seal }) {
      const identity = await E.importIdentity(unhex(pkcs8), unhex(publicKey));
      const secret = await E.pairwiseSecret(identity, unhex(peer));
      const key = await E.pairwiseKey(identity, unhex(peer));
      const msg = E.parseKeyMessage(unhex(message));
      const payload = await E.openKeyMessage(key, msg);
      const tampered = unhex(message); tampered[5] ^= 1;     // a session byte: in the AAD
      const sealed = await E.sealKeyMessage(key, { ...seal, session: unhex(seal.session), nonce: unhex(seal.nonce),
                                                   seq: BigInt(seal.seq) }, unhex(seal.payload));
      return { pairwise: hex(secret), sender: msg.sender, recipient: msg.recipient, session: hex(msg.session),
               seq: String(msg.seq), epoch: msg.epoch, payload: hex(payload), sealed: hex(sealed),
               tampered: (await outcome(() => E.openKeyMessage(key, E.parseKeyMessage(tampered)))).reason };
    },

    // --- a Member driven step by step (state kept between calls) ------------------------------------
    async newMember({ name, pkcs8, publicKey, index, user, session, suite, switchDelay, grace }) {
      const identity = await E.importIdentity(unhex(pkcs8), unhex(publicKey));
      const m = new E.Member({ index, identity, user, session: unhex(session), suite, switchDelay, grace });
      members.set(name, m);
      return memberState(m);
    },
    async memberSteps({ name, steps }) {
      const m = members.get(name);
      const out = [];
      for (const s of steps) out.push(await memberStep(m, s));
      return out;
    },

    // --- the worker's FrameKeys driven step by step --------------------------------------------------
    newFrameKeys({ name, mode, suite }) {
      const entry = { retired: [] };
      entry.keys = new E.FrameKeys(mode, suite, (member, kind, epoch) => entry.retired.push([member, kind, epoch]));
      frameKeys.set(name, entry);
      return true;
    },
    async frameSteps({ name, steps }) {
      const f = frameKeys.get(name);
      const out = [];
      for (const s of steps) out.push({ ...(await frameStep(f, s)), installed: f.keys.describe(), retired: [...f.retired] });
      return out;
    },

    // --- SFrame and clear-prefix limits; the replay window under concurrency --------------------------
    async ctrLimits({ suite, kid, base }) {
      const pt = Uint8Array.of(1, 2, 3);
      const k = await E.SFrameKey.create(suite, BigInt(kid), unhex(base));
      const last = await outcome(async () => hex(await k.protect(pt, new Uint8Array(0), E.MAX_CTR)));
      const past = await outcome(() => k.protect(pt));
      const j = await E.SFrameKey.create(suite, BigInt(kid), unhex(base));
      await j.protect(pt, new Uint8Array(0), 5n);
      const back = await outcome(() => j.protect(pt, new Uint8Array(0), 3n));
      return { last, past, back, next: String(j.nextCtr) };
    },
    async ivLimit({ key }) {
      const s = await E.ClearPrefixSender.create(unhex(key), 7, E.MAX_IV_COUNT);
      const data = new Uint8Array(20);
      const last = await outcome(async () => hex(await s.protect(data, 'video', 0x11223344, 90000)));
      const past = await outcome(() => s.protect(data, 'video', 0x11223344, 93000));
      return { last, past, count: s.count };
    },
    // `frame` (hex) under `kid`: copies unprotected concurrently on one receive key, a forged copy first.
    async replayRace({ suite, kid, base, frame, copies }) {
      const k = await E.SFrameKey.create(suite, BigInt(kid), unhex(base));
      const race = settled(await Promise.allSettled(Array.from({ length: copies }, () => k.unprotect(unhex(frame)))));
      const r = await E.SFrameKey.create(suite, BigInt(kid), unhex(base));
      const forged = unhex(frame); forged[forged.length - 1] ^= 1;
      const withForgery = settled(await Promise.allSettled([r.unprotect(forged), r.unprotect(unhex(frame))]));
      const afterRelease = await outcome(async () => hex(await r.unprotect(unhex(frame))));
      const s = await E.SFrameKey.create(suite, BigInt(kid), unhex(base));
      const forgedAlone = await outcome(() => s.unprotect(forged));
      const genuineAfter = await outcome(async () => hex(await s.unprotect(unhex(frame))));
      return { race, withForgery, afterRelease, forgedAlone, genuineAfter };
    },
    async concurrentProtects({ suite, kid, base, n }) {
      const k = await E.SFrameKey.create(suite, BigInt(kid), unhex(base));
      const jobs = [];
      for (let i = 0; i < n; i++) jobs.push(k.protect(Uint8Array.of(i)));
      return (await Promise.all(jobs)).map(hex);
    },
  };
})();

// worker.js: the Encoded Transform worker. Every encoded frame the page sends or receives passes
// through here (RTCRtpScriptTransform, or createEncodedStreams as a fallback) and is encrypted or
// decrypted with the keys the page's key agreement produced (E2EE.Member in e2ee.js).
'use strict';
importScripts('e2ee.js');

const state = {
  mode: 'e2ee', suite: 4, members: {},                 // publisher name -> member index
  send: null, sendEpoch: null,                          // SFrameKey or ClearPrefixSender
  recvSFrame: new Map(),                                // KID -> SFrameKey
  recvClear: new Map(),                                 // member -> Map(key index -> AES key)
  installed: new Set(),
  stats: {},                                            // transform id -> counters
};

function counters(id) {
  if (!state.stats[id]) state.stats[id] = { frames: 0, ok: 0, bytesIn: 0, bytesOut: 0, dropped: {}, firstMs: null, lastMs: null, keyFrames: 0 };
  return state.stats[id];
}

async function installKeys(msg) {
  Object.assign(state, { mode: msg.mode, suite: msg.suite, members: msg.members });
  for (const k of msg.keys) {
    const tag = `${k.member}:${k.epoch}`;
    if (state.installed.has(tag)) continue;
    state.installed.add(tag);
    const base = E2EE.unhex(k.baseKey);
    const mine = k.member === msg.index;
    if (state.mode === 'e2ee') {
      const key = await E2EE.SFrameKey.create(state.suite, E2EE.kidFor(k.epoch, k.member), base);
      if (!mine) state.recvSFrame.set(E2EE.kidFor(k.epoch, k.member), key);
      else if (k.epoch === msg.sendEpoch) { state.send = key; state.sendEpoch = k.epoch; }
      else state.installed.delete(tag);
    } else if (state.mode === 'clear-prefix') {
      const raw = await E2EE.clearPrefixKey(base);
      if (!mine) {
        if (!state.recvClear.has(k.member)) state.recvClear.set(k.member, new Map());
        state.recvClear.get(k.member).set(k.epoch % 256, await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['decrypt']));
      } else if (k.epoch === msg.sendEpoch) { state.send = await E2EE.ClearPrefixSender.create(raw, k.epoch % 256); state.sendEpoch = k.epoch; }
      else state.installed.delete(tag);
    }
  }
}

async function encrypt(frame, opts, data) {
  if (state.mode === 'dtls-srtp') return data;
  if (!state.send) throw new E2EE.CryptoError('no_key', 'no send key yet');
  if (state.mode === 'e2ee') return state.send.protect(data);
  const md = frame.getMetadata();
  return state.send.protect(data, opts.kind, md.synchronizationSource, md.rtpTimestamp ?? frame.timestamp);
}

async function decrypt(frame, opts, data) {
  if (state.mode === 'dtls-srtp') return data;
  if (state.mode === 'e2ee') {
    const { kid } = E2EE.decodeHeader(data);
    const key = state.recvSFrame.get(Number(kid));
    if (!key) throw new E2EE.CryptoError('unknown_kid', `no key for KID ${kid}`);
    return key.unprotect(data);
  }
  const member = state.members[opts.publisher];
  const keys = state.recvClear.get(member);
  if (!keys) throw new E2EE.CryptoError('unknown_key', `no keys of ${opts.publisher}`);
  return E2EE.clearPrefixOpen(keys, data, opts.kind);
}

function pipe(readable, writable, opts) {
  const id = `${opts.dir}:${opts.kind}:${opts.publisher || 'self'}`;
  const c = counters(id);
  const transform = new TransformStream({
    async transform(frame, controller) {
      const data = new Uint8Array(frame.data);
      c.frames++; c.bytesIn += data.length;
      c.firstMs ??= Date.now(); c.lastMs = Date.now();
      if (frame.type === 'key') c.keyFrames++;
      try {
        const out = await (opts.dir === 'enc' ? encrypt : decrypt)(frame, opts, data);
        frame.data = out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength);
        c.ok++; c.bytesOut += out.length;
        controller.enqueue(frame);
      } catch (err) {
        const reason = err.reason || 'error';
        c.dropped[reason] = (c.dropped[reason] || 0) + 1;   // drop, count, carry on
      }
    },
  });
  readable.pipeThrough(transform).pipeTo(writable).catch(() => {});
}

self.onrtctransform = (event) => pipe(event.transformer.readable, event.transformer.writable, event.transformer.options);
self.onmessage = async ({ data: m }) => {
  if (m.op === 'legacy') pipe(m.readable, m.writable, m.options);
  else if (m.op === 'keys') { await installKeys(m); self.postMessage({ op: 'keys-installed', sendEpoch: state.sendEpoch }); }
  else if (m.op === 'stats') self.postMessage({ op: 'stats', stats: state.stats, seq: m.seq });
};

// worker.js: the Encoded Transform worker. Every encoded frame the page sends or receives passes
// through here (RTCRtpScriptTransform, or createEncodedStreams as a fallback) and is encrypted or
// decrypted with E2EE.FrameKeys (e2ee.js), which holds the keys the page's key agreement (keys.js)
// hands over. Each receive transform knows its stream's announced publisher and kind (from the SFU:
// untrusted); a frame is counted under the member its authenticated KID names.
'use strict';
importScripts('e2ee.js');

const state = {
  mode: null, members: {},                              // mode from the page; publisher name -> member index (the SFU's word)
  keys: null,                                           // E2EE.FrameKeys once the page armed
  stats: {},                                            // transform id -> counters
  credited: {},                                         // "member:kind" -> frames authenticated under that member's KID
};

function counters(id) {
  if (!state.stats[id]) state.stats[id] = { frames: 0, ok: 0, bytesIn: 0, bytesOut: 0, dropped: {}, firstMs: null, lastMs: null, keyFrames: 0 };
  return state.stats[id];
}

// Until the page says which mode the call is in, every frame is dropped (fail closed).
function installKeys(msg) {
  state.mode = msg.mode; state.members = msg.members || {};
  if (msg.mode === 'dtls-srtp') return Promise.resolve();
  state.keys ??= new E2EE.FrameKeys(msg.mode, msg.suite,
                                    (sender, kind, epoch) => self.postMessage({ op: 'retired', sender, kind, epoch }));
  return state.keys.install(msg);
}

function encrypt(frame, opts, data) {
  if (state.mode === 'dtls-srtp') return data;
  if (!state.keys) throw new E2EE.CryptoError('no_key', 'no send key yet');
  const md = frame.getMetadata();
  return state.keys.encrypt(data, opts.kind, md.synchronizationSource, md.rtpTimestamp ?? frame.timestamp);
}

async function decrypt(frame, opts, data) {
  if (state.mode === 'dtls-srtp') return data;
  if (!state.keys) throw new E2EE.CryptoError('no_key', 'no receive key yet');
  const got = await state.keys.decrypt(data, state.members[opts.publisher], opts.kind);
  const tag = `${got.member}:${got.kind}`;
  state.credited[tag] = (state.credited[tag] || 0) + 1;
  return got.data;
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
  else if (m.op === 'mode') state.mode = m.mode;
  else if (m.op === 'keys') {
    await installKeys(m);
    self.postMessage({ op: 'keys-installed', keys: state.keys ? state.keys.describe() : null });
  } else if (m.op === 'stats') {
    self.postMessage({ op: 'stats', seq: m.seq, stats: state.stats, credited: state.credited,
                       keys: state.keys ? state.keys.describe() : null });
  }
};

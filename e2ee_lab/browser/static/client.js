// client.js: the page of the browser participant. It answers the SFU's offer (non-trickle, loopback
// candidates only), sends a canvas test pattern and the fake microphone, puts an Encoded Transform
// on every sender and receiver, runs the group key agreement (E2EE.Member) and counts and samples
// what it renders. Signalling is HTTP to the server that served the page (GET /signal long-polls,
// POST /signal sends); the harness drives the rest over the DevTools protocol through window.lab.
'use strict';

const PATTERN = { left: [64, 64, 64], right: [192, 192, 192], bar: [255, 255, 255], barWidth: 8 };
const SAMPLE_EVERY = 10;     // rendered frames between two canvas pixel reads
const STRIDE = 4;            // every 4th pixel each way, as the lab's receivers compare

const lab = {
  opts: null, pc: null, worker: null, member: null, stream: null, senders: [],
  api: null, late: [], log: [], errors: {}, remote: {}, identity: null, armed: false, workerReplies: new Map(),
};

function fail(reason) { lab.errors[reason] = (lab.errors[reason] || 0) + 1; }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now() / 1000;

// --- media: a canvas test pattern (what receivers check pixels against) and the fake mic ---------
function startPattern(width, height, fps) {
  const canvas = document.createElement('canvas');
  canvas.width = width; canvas.height = height;
  document.getElementById('local').appendChild(canvas);
  const g = canvas.getContext('2d');
  let frame = 0;
  const draw = () => {
    g.fillStyle = `rgb(${PATTERN.left})`; g.fillRect(0, 0, width / 2, height);
    g.fillStyle = `rgb(${PATTERN.right})`; g.fillRect(width / 2, 0, width / 2, height);
    g.fillStyle = `rgb(${PATTERN.bar})`;
    g.fillRect((frame * 4) % width, 0, PATTERN.barWidth, height);
    frame++;
  };
  draw();
  lab.patternTimer = setInterval(draw, 1000 / fps);
  return canvas.captureStream(fps).getVideoTracks()[0];
}

lab.init = async (opts) => {
  lab.opts = opts;
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  const video = startPattern(opts.width, opts.height, opts.fps);
  lab.stream = new MediaStream([mic.getAudioTracks()[0], video]);
  lab.api = opts.api === 'script' && typeof RTCRtpScriptTransform !== 'undefined' ? 'script' : 'legacy';
  lab.worker = new Worker('worker.js');
  lab.worker.onmessage = ({ data }) => {
    if (data.op === 'stats') { lab.workerReplies.get(data.seq)?.(data); lab.workerReplies.delete(data.seq); }
    else if (data.op === 'retired' && lab.member) lab.member.frameAuthenticated(data.sender, data.kind, data.epoch);
  };
  lab.worker.postMessage({ op: 'mode', mode: opts.mode });   // before any transform exists
  // The page's own key material, from this browser's CSPRNG: identity (WebCrypto P-256, not
  // extractable), and a fresh session id for this call. The user id is the participant's name.
  lab.identity = await E2EE.newIdentity();
  lab.session = crypto.getRandomValues(new Uint8Array(E2EE.SESSION_LEN));
  listen();
  return { api: lab.api, identity: E2EE.hex(lab.identity.public), session: E2EE.hex(lab.session), user: opts.name,
           scriptTransform: typeof RTCRtpScriptTransform, createEncodedStreams: typeof RTCRtpSender.prototype.createEncodedStreams,
           sframeTransform: typeof SFrameTransform };
};

// --- the Encoded Transform on a sender or receiver -----------------------------------------------
function attach(endpoint, options) {
  if (lab.api === 'script') {
    endpoint.transform = new RTCRtpScriptTransform(lab.worker, options);
  } else {
    const { readable, writable } = endpoint.createEncodedStreams();
    lab.worker.postMessage({ op: 'legacy', readable, writable, options }, [readable, writable]);
  }
}

// The SFU's offer: which m-sections we send on (the SFU's recvonly ones) and whose stream each
// other m-section carries (its a=msid track id, "<publisher>-<kind>").
function readOffer(sdp) {
  const sections = {};
  let cur = null;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) { cur = { kind: line.slice(2).split(' ')[0] }; continue; }
    if (!cur) continue;
    if (line.startsWith('a=mid:')) sections[line.slice(6)] = cur;
    if (/^a=(sendonly|recvonly|sendrecv|inactive)$/.test(line)) cur.direction = line.slice(2);
    if (line.startsWith('a=msid:')) cur.track = line.split(' ')[1];
  }
  return sections;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1)$/;
function loopbackOnly(sdp) {
  // Chrome has no switch limiting candidates to loopback: drop every other candidate line here.
  return sdp.split('\r\n').filter((line) => {
    if (!line.startsWith('a=candidate:')) return true;
    const ok = LOOPBACK.test(line.split(' ')[4]);
    if (!ok) fail('non_loopback_candidate_stripped');
    return ok;
  }).join('\r\n');
}

async function answer(offer) {
  const pc = lab.pc = new RTCPeerConnection({ iceServers: [], encodedInsertableStreams: lab.api === 'legacy' });
  const sections = readOffer(offer);
  const decOptions = (s) => ({ dir: 'dec', kind: s.kind, publisher: (s.track || '').replace(/-(audio|video)$/, '') });
  // Pitfall demonstration only. An offerer's ontrack fires when the answer is applied, i.e. after
  // negotiation; ours (the answerer's) fires inside setRemoteDescription(offer), early enough. To
  // show what an offerer gets, the ontrack attach is held until our answer is applied.
  pc.ontrack = (e) => {
    const s = sections[e.transceiver.mid];
    if (lab.opts.transformInOntrack && s) lab.late.push(() => attach(e.receiver, decOptions(s)));
  };
  await pc.setRemoteDescription({ type: 'offer', sdp: offer });
  for (const tr of pc.getTransceivers()) {
    const s = sections[tr.mid];
    if (!s) continue;
    if (s.direction === 'recvonly') {                    // the SFU receives: we publish here
      tr.direction = 'sendonly';                         // the track is attached once the keys are armed
      attach(tr.sender, { dir: 'enc', kind: s.kind });
      tr.sender.kind = s.kind;
      lab.senders.push(tr.sender);
    } else {                                             // a forwarded stream: decrypt it
      const options = decOptions(s);
      tr.direction = 'recvonly';
      // Pitfall: Chromium ignores a receiver transform set in ontrack; attach it here, before the answer.
      if (!lab.opts.transformInOntrack) attach(tr.receiver, options);
      lab.remote[tr.mid] = { mid: tr.mid, kind: s.kind, publisher: options.publisher, rendered: 0, presented: 0, samples: [], renderTimes: [] };
      watch(tr.receiver.track, lab.remote[tr.mid]);
    }
  }
  await pc.setLocalDescription(await pc.createAnswer());
  for (const f of lab.late) f();                        // pitfall: Chromium ignores a receive RTCRtpScriptTransform set now
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((resolve) => {
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
      setTimeout(resolve, 5000);
    });
  }
  return { raw: pc.localDescription.sdp, sdp: loopbackOnly(pc.localDescription.sdp) };
}

// --- what we receive: count with requestVideoFrameCallback, read pixels back from a canvas -------
function watch(track, info) {
  if (track.kind === 'audio') { const a = new Audio(); a.srcObject = new MediaStream([track]); a.muted = true; a.play().catch(() => {}); return; }
  const v = document.createElement('video');
  v.dataset.mid = info.mid;
  v.muted = true; v.autoplay = true; v.playsInline = true;
  v.srcObject = new MediaStream([track]);
  document.getElementById('remote').appendChild(v);
  const canvas = document.createElement('canvas');
  const g = canvas.getContext('2d', { willReadFrequently: true });
  const onFrame = (ts, md) => {
    info.rendered++;
    info.presented = md.presentedFrames;
    info.renderTimes.push(Date.now());
    // not the first frame: CI once read an all-black canvas there (drawn before it was paintable)
    if (info.rendered % SAMPLE_EVERY === 0) sample(v, canvas, g, info, md);
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
  v.play().catch(() => fail('play'));
}

function sample(v, canvas, g, info, md) {
  const w = v.videoWidth, h = v.videoHeight;
  if (!w || !h) return;
  canvas.width = w; canvas.height = h;
  g.drawImage(v, 0, 0, w, h);
  const px = g.getImageData(0, 0, w, h).data;
  const out = [];
  for (let y = 0; y < h; y += STRIDE) for (let x = 0; x < w; x += STRIDE) {
    const i = (y * w + x) * 4;
    out.push(px[i], px[i + 1], px[i + 2]);
  }
  info.samples.push({ rtpTimestamp: md.rtpTimestamp ?? null, width: Math.ceil(w / STRIDE), height: Math.ceil(h / STRIDE),
                      pixels: btoa(String.fromCharCode(...out)) });
  if (info.samples.length > 20) info.samples.shift();
}

// --- signalling: HTTP to the server that served the page, in order both ways ---------------------
let outbox = Promise.resolve();
function send(msg) {                                     // POSTs chained: they arrive as sent
  const body = JSON.stringify(msg);
  outbox = outbox.then(() => fetch('signal', { method: 'POST', body }))
    .then((reply) => reply.ok || fail('signal_post_refused'), () => fail('signal_post_failed'));
}

async function onSignal(msg) {
  if (msg.type === 'offer') {
    try { send({ type: 'answer', ...(await answer(msg.sdp)) }); }
    catch (err) { send({ type: 'error', about: 'offer', message: String(err) }); }
  } else if (msg.type === 'join') {
    try { join(msg.index); } catch (err) { fail('keys_bad_join'); }  // the server's word: never trusted to be sane
  } else if (msg.type === 'roster' || msg.type === 'key') keySignal(msg);
  else fail('signal_unknown');
}

async function listen() {                                // long-poll: GET /signal?after=<last seq seen>
  let after = 0;
  for (;;) {
    let reply;
    try { reply = await (await fetch(`signal?after=${after}`)).json(); }
    catch (err) { fail('signal_poll_failed'); await sleep(200); continue; }
    for (const item of Array.isArray(reply && reply.messages) ? reply.messages : []) {
      if (!item || !Number.isInteger(item.seq) || item.seq <= after || !item.message) { fail('signal_malformed'); continue; }
      after = item.seq;
      try { await onSignal(item.message); } catch (err) { fail('signal_error'); }   // drop, count, carry on
    }
    if (reply && reply.closed) return;
  }
}

// --- key agreement: roster updates and key messages from the SFU's relay --------------------------
const SUITE = 4;                                          // AES_128_GCM_SHA256_128, the Python members' default
let pushedVersion = -1;
function pushKeys() {                                     // the worker's keys follow the Member's
  const m = lab.member;
  if (!lab.armed || !m) return;
  pushedVersion = m.keyVersion;
  lab.worker.postMessage({ op: 'keys', mode: lab.opts.mode, suite: SUITE, index: m.index, sendEpoch: m.sendEpoch,
                           members: lab.members, keys: m.baseKeys() });
}
const pushIfChanged = () => lab.member && lab.member.keyVersion !== pushedVersion && pushKeys();

function join(index) {
  if (lab.member) throw new E2EE.CryptoError('illegal_transition', 'joined twice');
  const { switchDelay, grace, name } = lab.opts;
  lab.member = new E2EE.Member({ index, identity: lab.identity, user: name, session: lab.session,
                                 switchDelay, grace, suite: SUITE });
  lab.signals = Promise.resolve();
}

function keySignal(msg) {                                // processed strictly in arrival order
  if (!lab.member) { fail('keys_not_member'); return; }
  lab.signals = lab.signals.then(async () => {
    try {
      if (msg.type === 'roster') {
        for (const [recipient, data] of await lab.member.handleRoster(msg, now()))
          send({ type: 'key', sender: lab.member.index, recipient, data: E2EE.hex(data) });
      } else {
        await lab.member.receiveKeyMessage(E2EE.unhex(msg.data), now());
      }
    } catch (err) {
      fail(`keys_${err.reason || 'error'}`);
    }
    pushIfChanged();
  });
}

lab.keysReady = (epoch, members) => {
  const m = lab.member;
  if (!m) return false;
  m.tick(now());
  return m.holds(epoch, members);
};

// What the page's member would read out: the group code of its current epoch, and a safety number.
lab.groupCode = (epoch) => (lab.member ? lab.member.groupCode(epoch) : null);
lab.safetyNumber = (peer) => lab.member.safetyNumber(peer);

lab.arm = (members) => {
  lab.members = members; lab.armed = true;
  pushKeys();
  // Media starts now, so the first frame each encoder makes (a key frame) already has a key.
  return Promise.all(lab.senders.map((sender) => sender.replaceTrack(lab.stream.getTracks().find((t) => t.kind === sender.kind))))
    .then(() => { lab.tickTimer = setInterval(() => lab.member && lab.member.tick(now()) && pushKeys(), 50); });
};

lab.stopSending = async () => {
  for (const s of lab.senders) await s.replaceTrack(null);
  clearInterval(lab.patternTimer);
};

// --- results ------------------------------------------------------------------------------------
// Where things are on the screen (CSS pixels; a screenshot has devicePixelRatio times as many).
function layout() {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; };
  const remote = {};
  for (const v of document.querySelectorAll('#remote video'))
    remote[v.dataset.mid] = { box: box(v), width: v.videoWidth, height: v.videoHeight };
  const local = document.querySelector('#local canvas');
  return { viewport: [document.documentElement.clientWidth, document.documentElement.clientHeight],
           window: [innerWidth, innerHeight], dpr: devicePixelRatio, local: local ? box(local) : null, remote };
}

let statsSeq = 0;
function workerStats() {
  const seq = ++statsSeq;
  return new Promise((resolve) => {
    lab.workerReplies.set(seq, resolve);
    lab.worker.postMessage({ op: 'stats', seq });
    setTimeout(() => resolve(null), 2000);
  });
}

lab.stats = async () => {
  const rtp = [];
  if (lab.pc) (await lab.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' || r.type === 'outbound-rtp')
      rtp.push({ type: r.type, kind: r.kind, mid: r.mid, ssrc: r.ssrc, packets: r.packetsReceived ?? r.packetsSent,
                 frames: r.framesDecoded ?? r.framesEncoded ?? null, keyFrames: r.keyFramesDecoded ?? r.keyFramesEncoded ?? null,
                 framesReceived: r.framesReceived ?? null, pli: r.pliCount ?? null, nack: r.nackCount ?? null });
  });
  const remote = Object.values(lab.remote).map(({ renderTimes, ...r }) => ({ ...r, renderTimes }));
  const worker = await workerStats();
  const m = lab.member;
  const member = m && { index: m.index, state: m.state, epoch: m.epoch, sendEpoch: m.sendEpoch,
                        groupCode: m.codes.size ? m.groupCode().digits : null };
  return { worker: worker && worker.stats, credited: worker && worker.credited, frameKeys: worker && worker.keys,
           rtp, remote, layout: layout(), errors: lab.errors, api: lab.api,
           connectionState: lab.pc ? lab.pc.connectionState : 'new', sendEpoch: m ? m.sendEpoch : null, member };
};

// RFC 9605 Appendix C vectors (and draft-barnes-sframe-iana-256's for suites 6-8), run inside the page.
lab.vectors = async (vectors) => {
  const results = [];
  for (const v of vectors.sframe.filter((x) => E2EE.SUITES[x.cipher_suite])) {
    const { key, salt } = await E2EE.deriveKeySalt(v.cipher_suite, v.kid, E2EE.unhex(v.base_key));
    const k = await E2EE.SFrameKey.create(v.cipher_suite, v.kid, E2EE.unhex(v.base_key));
    const ct = await k.protect(E2EE.unhex(v.pt), E2EE.unhex(v.metadata), v.ctr);
    const r = await E2EE.SFrameKey.create(v.cipher_suite, v.kid, E2EE.unhex(v.base_key));
    const pt = await r.unprotect(ct, E2EE.unhex(v.metadata));
    let tampered = 'accepted';
    try { const fresh = await E2EE.SFrameKey.create(v.cipher_suite, v.kid, E2EE.unhex(v.base_key)); const bad = ct.slice(); bad[bad.length - 1] ^= 1; await fresh.unprotect(bad, E2EE.unhex(v.metadata)); } catch (e) { tampered = e.reason; }
    results.push({ suite: v.cipher_suite, key: E2EE.hex(key) === v.sframe_key, salt: E2EE.hex(salt) === v.sframe_salt,
                   ct: E2EE.hex(ct) === v.ct, pt: E2EE.hex(pt) === v.pt, tampered });
  }
  let headers = 0, headerFailures = 0;
  for (const h of vectors.header) {
    headers++;
    const got = E2EE.hex(E2EE.encodeHeader(BigInt(h.kid_hex), BigInt(h.ctr_hex)));
    const back = E2EE.decodeHeader(E2EE.unhex(h.encoded));
    if (got !== h.encoded || back.kid !== BigInt(h.kid_hex) || back.ctr !== BigInt(h.ctr_hex)) headerFailures++;
  }
  return { sframe: results, headers, headerFailures };
};

window.lab = lab;

-- Wireshark dissector for the SFrame RTP payload format (draft-ietf-avtcore-rtp-sframe-02, §4)
-- and the SFrame header it carries (RFC 9605 §4.3). Part of e2ee_lab.
--
-- Load it and point RTP payload types at it, e.g. for the lab's VP8 (96) and Opus (111):
--   tshark -X lua_script:sframe.lua -r call.pcap -d udp.port==PORT,rtp -d rtp.pt==96,sframe
-- or set the payload types once: -o sframe.payload_types:96,111
--
-- The descriptor byte: S (first fragment), E (last fragment), T (1 = packetized content,
-- per-packet SFrame; 0 = raw content, per-frame SFrame), five reserved bits. A fragment with
-- S = 1 starts with the SFrame header: config byte X|KKK|Y|CCC, then the KID and the CTR in the
-- minimal number of big-endian bytes when X or Y is set. The analyst sees what the SFU sees:
-- KID, CTR and lengths; the rest is ciphertext (and, in the E = 1 fragment, the tag, whose length
-- depends on the cipher suite: preference sframe.tag_length, 16 for the GCM suites).
-- Malformed input is marked with expert info, never trusted: an empty fragment, a truncated
-- header and a non-minimal KID/CTR encoding (RFC 9605 §4.3 requires the minimal form).

local sframe = Proto("sframe", "SFrame RTP payload (draft-ietf-avtcore-rtp-sframe-02)")

local f = {
  descriptor = ProtoField.uint8("sframe.descriptor", "Payload descriptor", base.HEX),
  s = ProtoField.bool("sframe.descriptor.s", "S (first fragment)", 8, nil, 0x80),
  e = ProtoField.bool("sframe.descriptor.e", "E (last fragment)", 8, nil, 0x40),
  t = ProtoField.bool("sframe.descriptor.t", "T (packetized content: per-packet)", 8, nil, 0x20),
  reserved = ProtoField.uint8("sframe.descriptor.reserved", "Reserved", base.HEX, nil, 0x1f),
  fragment_len = ProtoField.uint32("sframe.fragment_len", "Fragment length", base.DEC),
  config = ProtoField.uint8("sframe.config", "SFrame config byte", base.HEX),
  x = ProtoField.bool("sframe.config.x", "X (extended KID)", 8, nil, 0x80),
  k = ProtoField.uint8("sframe.config.k", "K", base.DEC, nil, 0x70),
  y = ProtoField.bool("sframe.config.y", "Y (extended CTR)", 8, nil, 0x08),
  c = ProtoField.uint8("sframe.config.c", "C", base.DEC, nil, 0x07),
  kid = ProtoField.uint64("sframe.kid", "KID", base.DEC),
  ctr = ProtoField.uint64("sframe.ctr", "CTR", base.DEC),
  header_len = ProtoField.uint8("sframe.header_len", "SFrame header length", base.DEC),
  ciphertext = ProtoField.bytes("sframe.ciphertext", "Encrypted data"),
  ciphertext_len = ProtoField.uint32("sframe.ciphertext_len", "Encrypted data length", base.DEC),
  tag = ProtoField.bytes("sframe.tag", "Authentication tag"),
}
sframe.fields = {
  f.descriptor, f.s, f.e, f.t, f.reserved, f.fragment_len, f.config, f.x, f.k, f.y, f.c,
  f.kid, f.ctr, f.header_len, f.ciphertext, f.ciphertext_len, f.tag,
}

local ef = {
  empty = ProtoExpert.new("sframe.empty", "Descriptor without fragment bytes",
    expert.group.MALFORMED, expert.severity.ERROR),
  truncated = ProtoExpert.new("sframe.truncated", "SFrame header truncated",
    expert.group.MALFORMED, expert.severity.ERROR),
  nonminimal = ProtoExpert.new("sframe.nonminimal", "KID/CTR not minimally encoded (RFC 9605 4.3)",
    expert.group.MALFORMED, expert.severity.WARN),
}
sframe.experts = { ef.empty, ef.truncated, ef.nonminimal }

sframe.prefs.tag_length = Pref.uint("Tag length (bytes)", 16,
  "SFrame tag length of the cipher suite in use: 16 (GCM), 10, 8 or 4 (CTR+HMAC suites)")
sframe.prefs.payload_types = Pref.string("Payload types", "",
  "Comma-separated RTP payload types to dissect as SFrame (also: Decode As rtp.pt)")

-- One KID or CTR extension: value, and whether its encoding was minimal.
local function extension(tvb, pos, n)
  local range = tvb(pos, n)
  local value = range:uint64()
  local first = range:range(0, 1):uint()
  local minimal
  if n == 1 then minimal = first >= 8 else minimal = first ~= 0 end
  return range, value, minimal
end

local function dissect_header(tvb, pos, tree, pinfo)
  local len = tvb:len() - pos
  local cfg = tvb(pos, 1):uint()
  local kid_n = (bit.band(cfg, 0x80) ~= 0) and (bit.band(bit.rshift(cfg, 4), 7) + 1) or 0
  local ctr_n = (bit.band(cfg, 0x08) ~= 0) and (bit.band(cfg, 7) + 1) or 0
  local hlen = 1 + kid_n + ctr_n
  local htree = tree:add(sframe, tvb(pos, math.min(hlen, len)), "SFrame header")
  local ctree = htree:add(f.config, tvb(pos, 1))
  ctree:add(f.x, tvb(pos, 1)); ctree:add(f.k, tvb(pos, 1))
  ctree:add(f.y, tvb(pos, 1)); ctree:add(f.c, tvb(pos, 1))
  if hlen > len then
    htree:add_proto_expert_info(ef.truncated,
      string.format("SFrame header needs %d bytes, %d present", hlen, len))
    return nil
  end
  local kid, ctr
  if kid_n > 0 then
    local range, value, minimal = extension(tvb, pos + 1, kid_n)
    kid = value
    local item = htree:add(f.kid, range, value)
    if not minimal then item:add_proto_expert_info(ef.nonminimal) end
  else
    kid = UInt64(bit.band(bit.rshift(cfg, 4), 7))
    htree:add(f.kid, tvb(pos, 1), kid)
  end
  if ctr_n > 0 then
    local range, value, minimal = extension(tvb, pos + 1 + kid_n, ctr_n)
    ctr = value
    local item = htree:add(f.ctr, range, value)
    if not minimal then item:add_proto_expert_info(ef.nonminimal) end
  else
    ctr = UInt64(bit.band(cfg, 7))
    htree:add(f.ctr, tvb(pos, 1), ctr)
  end
  htree:add(f.header_len, tvb(pos, hlen), hlen)
  htree:append_text(string.format(", KID %s, CTR %s", tostring(kid), tostring(ctr)))
  pinfo.cols.info:append(string.format(" SFrame KID=%s CTR=%s", tostring(kid), tostring(ctr)))
  return hlen
end

function sframe.dissector(tvb, pinfo, tree)
  local total = tvb:len()
  if total < 1 then return 0 end
  pinfo.cols.protocol:set("SFrame")
  local subtree = tree:add(sframe, tvb(), "SFrame RTP payload")
  local d = tvb(0, 1):uint()
  local dtree = subtree:add(f.descriptor, tvb(0, 1))
  dtree:add(f.s, tvb(0, 1)); dtree:add(f.e, tvb(0, 1))
  dtree:add(f.t, tvb(0, 1)); dtree:add(f.reserved, tvb(0, 1))
  local s, e = bit.band(d, 0x80) ~= 0, bit.band(d, 0x40) ~= 0
  local t = bit.band(d, 0x20) ~= 0
  pinfo.cols.info:append(string.format(" [%s%s%s]", s and "S" or "-", e and "E" or "-",
    t and " per-packet" or " per-frame"))
  local flen = total - 1
  subtree:add(f.fragment_len, tvb(0, 1), flen)
  if flen == 0 then
    subtree:add_proto_expert_info(ef.empty)
    return total
  end
  local pos = 1
  if s then
    local hlen = dissect_header(tvb, 1, subtree, pinfo)
    if hlen == nil then return total end
    pos = 1 + hlen
  end
  local rest = total - pos
  local taglen = e and math.min(sframe.prefs.tag_length, rest) or 0
  if rest - taglen > 0 then
    subtree:add(f.ciphertext, tvb(pos, rest - taglen))
    subtree:add(f.ciphertext_len, tvb(pos, rest - taglen), rest - taglen)
  end
  if taglen > 0 then subtree:add(f.tag, tvb(total - taglen, taglen)) end
  return total
end

local registered = {}
function sframe.init()
  local table = DissectorTable.get("rtp.pt")
  for pt in string.gmatch(sframe.prefs.payload_types, "%d+") do
    local n = tonumber(pt)
    if n and n >= 0 and n < 128 and not registered[n] then
      table:add(n, sframe)
      registered[n] = true
    end
  end
end

DissectorTable.get("rtp.pt"):add_for_decode_as(sframe)

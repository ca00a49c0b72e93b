"""e2ee_lab: show, measure and teach end-to-end encryption for WebRTC conferences through an SFU.

The package implements the pipeline encode -> frame-encrypt -> packetize -> SRTP -> SFU forward ->
SRTP -> depacketize -> frame-decrypt -> decode on loopback, and the notebooks in ``notebooks/``
run it, capture it and explain it. See ``README.md`` for the two commands.
"""

__version__ = "0.1.0"

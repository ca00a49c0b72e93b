"""e2ee_lab: show, measure and teach end-to-end encryption for WebRTC conferences through an SFU.

The package implements the pipeline encode -> frame-encrypt -> packetize -> SRTP -> SFU forward ->
SRTP -> depacketize -> frame-decrypt -> decode on loopback, and the notebooks in ``notebooks/``
run it, capture it and explain it. See ``README.md`` for the two commands.
"""

__version__ = "0.1.0"

__all__ = ["run_call", "run_call_async", "CallResult"]


def __getattr__(name: str):
    # Lazy: importing e2ee_lab (e.g. for crypto alone) should not pull in aiortc and PyAV.
    if name in __all__:
        from e2ee_lab import call

        return getattr(call, name)
    raise AttributeError(f"module 'e2ee_lab' has no attribute {name!r}")

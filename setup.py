"""Build hook for the optional libpcap extension; package metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rpcinspect.capture._pcapscan",
            sources=["rpcinspect/capture/_pcapscan.c", "rpcinspect/capture/rpcselect.c"],
            depends=["rpcinspect/capture/rpcselect.h"],
            libraries=["pcap"],
            # Without libpcap headers or a C compiler the build is skipped and
            # rpcinspect falls back to its pure-Python pcap reader.
            optional=True,
        ),
        Extension(
            # the in-order TCP/DCE-RPC fast path (see the file's comment); pure Python without it
            "rpcinspect.flows._fastpath",
            sources=["rpcinspect/flows/_fastpath.c"],
            optional=True,
        ),
    ],
)

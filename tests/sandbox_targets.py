"""Functions the sandbox tests run in the child: one hangs, one eats memory. (They are
ours only for the tests; the sandbox must survive any function that misbehaves.)"""
from __future__ import annotations


def hang(pdf: bytes) -> None:
    while True:
        pass


def eat_memory(pdf: bytes) -> int:
    hog = []
    while True:
        hog.append(bytearray(64 << 20))


def crash(pdf: bytes) -> None:
    import os
    import signal
    os.kill(os.getpid(), signal.SIGSEGV)


def echo_length(pdf: bytes, extra: int) -> int:
    return len(pdf) + extra

"""A seccomp filter that refuses network sockets, installed by the worker on itself.

Where namespaces are refused (inside a container on Gradescope, which runs the grading image
as root with the network on), the worker cannot be given an empty network of its own; instead
it asks the kernel to refuse the system calls that create sockets, before anything of the
submission is imported. The filter is a classic BPF program written here with the standard
library (no libseccomp needed in the image):

* any system call of another ABI than the native one (i386 or x32 on x86_64, whose numbers
  differ and could dodge the checks) fails with EACCES;
* ``socket`` fails with EACCES, whatever the family: no TCP, UDP, raw, netlink or even Unix
  socket can be opened (``socketpair``, which only connects a process to itself, stays);
* ``io_uring_setup`` fails too (io_uring can open sockets without the ``socket`` call).

Everything else is allowed. ``no_new_privs`` is set first, as the kernel requires for an
unprivileged process; the filter is inherited by every child and cannot be removed.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

__all__ = ["SeccompUnavailable", "deny_sockets"]

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
X32_SYSCALL_BIT = 0x40000000

# BPF opcodes: load a word at an absolute offset, jump if equal / if greater or equal, return
LD_ABS, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
# offsets in struct seccomp_data
NR, ARCH = 0, 4

# machine -> (AUDIT_ARCH value, socket, io_uring_setup)
ARCHES = {
    "x86_64": (0xC000003E, 41, 425),
    "aarch64": (0xC00000B7, 198, 425),
}


class SeccompUnavailable(OSError):
    """This machine or kernel cannot install the filter."""


def program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter as BPF instructions ``(code, jump if true, jump if false, k)``; jumps are
    relative to the next instruction."""
    if machine not in ARCHES:
        raise SeccompUnavailable(f"no seccomp filter for the {machine} architecture")
    arch, socket_nr, io_uring_nr = ARCHES[machine]
    deny = (RET, 0, 0, SECCOMP_RET_ERRNO | errno.EACCES)
    allow = (RET, 0, 0, SECCOMP_RET_ALLOW)
    body = [
        (LD_ABS, 0, 0, ARCH),
        (JEQ, 0, 5, arch),  # another ABI: deny
        (LD_ABS, 0, 0, NR),
        (JGE, 3, 0, X32_SYSCALL_BIT),  # x32 numbers on x86_64 (never valid on aarch64)
        (JEQ, 2, 0, socket_nr),
        (JEQ, 1, 0, io_uring_nr),
        allow,
        deny,
    ]
    return body


def deny_sockets() -> None:
    """Install the filter on this process (and so on everything it starts)."""
    instructions = program(platform.machine())
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in instructions)
    buffer = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(instructions), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompUnavailable(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise SeccompUnavailable(
            code, f"installing the seccomp filter failed: {errno.errorcode.get(code)}"
        )

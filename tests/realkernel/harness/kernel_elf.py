"""Turn a Debian bzImage into the plain ELF vmlinux that QEMU can boot through its PVH entry.

Booting the ELF skips the real-mode setup and the in-guest xz decompression, which is slow
under TCG. Debian compresses its kernels with xz; the payload is the first xz stream inside the
bzImage. Usage: python3 kernel_elf.py BZIMAGE OUT_ELF (exit 1 when no ELF payload is found, in
which case the harness boots the bzImage itself).
"""

from __future__ import annotations

import lzma
import sys
from pathlib import Path

XZ_MAGIC = b"\xfd7zXZ\x00"
ELF_MAGIC = b"\x7fELF"


def elf_payload(bzimage: bytes) -> bytes | None:
    """The decompressed ELF kernel inside a bzImage, or None when there is none."""
    start = bzimage.find(XZ_MAGIC)
    if start < 0:
        return None
    try:
        payload = lzma.LZMADecompressor().decompress(bzimage[start:])
    except lzma.LZMAError:
        return None
    return payload if payload.startswith(ELF_MAGIC) else None


def main(argv: list[str]) -> int:
    """Write the ELF payload of argv[0] to argv[1]; 0 on success, 1 when there is none."""
    if len(argv) != 2:
        print("usage: kernel_elf.py BZIMAGE OUT_ELF", file=sys.stderr)
        return 2
    payload = elf_payload(Path(argv[0]).read_bytes())
    if payload is None:
        print(f"kernel_elf: no xz-compressed ELF in {argv[0]}", file=sys.stderr)
        return 1
    Path(argv[1]).write_bytes(payload)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

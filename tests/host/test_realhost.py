"""`hostdev list` agrees with `lspci -Dnnk` on the machine running the tests.

The machine's real PCI devices are read through the default /sys root: this is the one test
that looks at real hardware, and it asserts agreement, not any particular device.
"""

import json
import re
import shutil
import subprocess
import sys

import pytest

_LINE = re.compile(
    r"^(?P<addr>[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) .*\[(?P<cls>[0-9a-f]{4})\]: "
    r".*\[(?P<vendor>[0-9a-f]{4}):(?P<device>[0-9a-f]{4})\]"
)


def lspci_devices() -> dict[str, dict[str, str | None]]:
    """Parse `lspci -Dnnk` into address → class (4 digits), vendor, device, driver."""
    out = subprocess.run(["lspci", "-Dnnk"], check=True, capture_output=True, text=True).stdout
    devices: dict[str, dict[str, str | None]] = {}
    current: dict[str, str | None] | None = None
    for line in out.splitlines():
        match = _LINE.match(line)
        if match:
            current = {
                "class": match["cls"],
                "vendor": match["vendor"],
                "device": match["device"],
                "driver": None,
            }
            devices[match["addr"]] = current
        elif current is not None and "Kernel driver in use:" in line:
            current["driver"] = line.split(":", 1)[1].strip()
    return devices


@pytest.mark.realhost
@pytest.mark.skipif(shutil.which("lspci") is None, reason="lspci (pciutils) is not installed")
def test_list_matches_lspci() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hostdev.cli.main", "list", "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    ours = {d["address"]: d for d in json.loads(out)["devices"]}
    theirs = lspci_devices()
    assert set(ours) == set(theirs)
    for address, expected in theirs.items():
        dev = ours[address]
        assert dev["class"][:4] == expected["class"], address
        assert (dev["vendor"], dev["device"]) == (expected["vendor"], expected["device"])
        assert dev["driver"] == expected["driver"], address

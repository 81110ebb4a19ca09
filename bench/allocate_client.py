"""The kubelet's side of the Allocate benchmark, in a process of its own.

The kubelet is a separate process; timing its calls from the benchmark's own event loop
(which also runs the kubelet simulator and receives ListAndWatch updates) would add that
loop's work to every round trip. Reads device IDs (JSON) on stdin, Allocates each in turn
over the socket given as argument, and prints the latencies in seconds (JSON) on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import grpc

from hostdev.kubelet.api import deviceplugin_pb2 as pb
from hostdev.kubelet.api import deviceplugin_pb2_grpc as pb_grpc


def allocate_request(device: str) -> pb.AllocateRequest:
    """One container asking for one device."""
    return pb.AllocateRequest(
        container_requests=[pb.ContainerAllocateRequest(devices_ids=[device])]
    )


async def allocate_each(socket: str, devices: list[str]) -> list[float]:
    """One Allocate per device, after one warm-up call; the round trip of each."""
    async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
        stub = pb_grpc.DevicePluginStub(channel)
        await stub.Allocate(allocate_request(devices[-1]))  # connect and warm up
        latencies = []
        for device in devices:
            started = time.perf_counter()
            await stub.Allocate(allocate_request(device))
            latencies.append(time.perf_counter() - started)
    return latencies


if __name__ == "__main__":
    ids = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(allocate_each(sys.argv[1], ids))))

"""`hostdev serve`: run the device plugin for this node until SIGTERM/SIGINT (SIGHUP: rescan
the host and reload the config now)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from hostdev.cli.allocation import add_allocation_flags, allocation_parts
from hostdev.cli.common import add_host_flags, host_fs, non_empty_path
from hostdev.cli.liveflags import add_live_flags, live_options, setup_logging
from hostdev.config import DEFAULT_CONFIG, Config, load_config
from hostdev.kubelet import constants
from hostdev.userfiles import ensure_directory

if TYPE_CHECKING:
    from hostdev.daemon.live import LiveNode
    from hostdev.host.fs import HostFS

log = logging.getLogger(__name__)

SERVE_MALLOC_ARENAS = 2  # hostdev.daemon.heap: a lower peak with threads coming and going


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the serve command."""
    parser = subparsers.add_parser("serve", help="serve devices to the kubelet (device plugin)")
    add_config_flags(parser)
    add_host_flags(parser)
    parser.add_argument(
        "--plugin-dir",
        type=non_empty_path,
        default=constants.DEVICE_PLUGIN_DIR,
        help=f"kubelet device plugin directory (default {constants.DEVICE_PLUGIN_DIR})",
    )
    parser.add_argument(
        "--kubelet-socket",
        default=None,
        help="kubelet registration socket (default <plugin-dir>/kubelet.sock)",
    )
    parser.add_argument(
        "--node-labels",
        metavar="FILE",
        help="this node's labels for nodeMediatedDeviceTypes (YAML/JSON map; default: "
        "the API server when running in a cluster)",
    )
    add_allocation_flags(parser)
    add_live_flags(parser)
    parser.set_defaults(handler=run)


def _provision(fs: HostFS, config: Config, args: argparse.Namespace) -> None:
    """Create the declared VFs and mdevs before the first selection."""
    from hostdev.cli.writing import writer_for
    from hostdev.daemon.provision import provision, start_facts

    labels, in_use = start_facts(
        config, args.node_labels, str(args.pod_resources_socket), os.environ
    )
    provision(fs, writer_for(args), config, labels=labels, in_use=in_use)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """--config and --kubevirt-entries, shared by serve and render."""
    parser.add_argument(
        "--config", metavar="FILE", help="config file (default: serve every vfio-pci device)"
    )
    parser.add_argument(
        "--kubevirt-entries",
        choices=("external", "all"),
        default=None,
        help="which permittedHostDevices entries to serve (default: only "
        "externalResourceProvider: true)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    """The config named by --config, or the serve-everything default."""
    if not args.config:
        return DEFAULT_CONFIG
    return load_config(args.config, kubevirt_entries=args.kubevirt_entries)


def run(args: argparse.Namespace) -> int:
    """Load the config, then serve until a signal arrives."""
    from hostdev.daemon.heap import cap_malloc_arenas
    from hostdev.daemon.live import LiveNode
    from hostdev.kubelet.plugin import check_plugin_dir

    cap_malloc_arenas(SERVE_MALLOC_ARENAS)  # before gRPC starts its threads
    config = config_from_args(args)
    live = live_options(args)
    setup_logging(args)
    plugin_dir = Path(args.plugin_dir)
    check_plugin_dir(plugin_dir)
    ensure_directory(plugin_dir, "the device plugin directory")  # before any host change
    kubelet_socket = (
        Path(args.kubelet_socket)
        if args.kubelet_socket
        else plugin_dir / constants.KUBELET_SOCKET_NAME
    )
    fs = host_fs(args)
    if config.sriov or config.mediated_devices is not None:
        _provision(fs, config, args)
    parts = allocation_parts(args)
    node = LiveNode(
        fs,
        config,
        plugin_dir,
        kubelet_socket,
        policy=parts.accounting,
        preferred=parts.preferred,
        reconciler=parts.reconciler,
        live=live,
    )
    asyncio.run(serve(node))
    return 0


async def serve(node: LiveNode) -> None:
    """Start the node, wait for SIGTERM or SIGINT, stop it (removing our sockets)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # the default action would end the daemon without removing its sockets
    loop.add_signal_handler(signal.SIGHUP, node.refresh, "SIGHUP")
    try:
        await node.start()
        await stop.wait()
        log.info("signal received: stopping")
    finally:
        await node.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

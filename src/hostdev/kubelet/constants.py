"""Constants of the kubelet device plugin API v1beta1 and the PodResources API v1."""

from __future__ import annotations

from typing import Final

API_VERSION: Final = "v1beta1"
SUPPORTED_VERSIONS: Final = (API_VERSION,)

DEVICE_PLUGIN_DIR: Final = "/var/lib/kubelet/device-plugins"
KUBELET_SOCKET_NAME: Final = "kubelet.sock"
CHECKPOINT_NAME: Final = "kubelet_internal_checkpoint"

POD_RESOURCES_DIR: Final = "/var/lib/kubelet/pod-resources"
POD_RESOURCES_SOCKET: Final = f"{POD_RESOURCES_DIR}/kubelet.sock"

HEALTHY: Final = "Healthy"
UNHEALTHY: Final = "Unhealthy"

# The kubelet's deadline for PreStartContainer (KubeletPreStartContainerRPCTimeoutInSecs).
PRE_START_CONTAINER_TIMEOUT_S: Final = 30.0
# The kubelet's blocking dial of a plugin socket during Register.
REGISTER_DIAL_TIMEOUT_S: Final = 10.0
# Channel options for dialling the kubelet: a connection of the channel's own. gRPC core
# otherwise shares one per target and arguments between channels, and a connection refused
# while the kubelet restarts puts it in reconnect backoff (1 s, growing) for every new
# channel too, so a Register right after the restart would fail until the backoff ends.
OWN_CONNECTION: Final = (("grpc.use_local_subchannel_pool", 1),)

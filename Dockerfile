# hostdev node daemon image: `hostdev serve` as a Kubernetes DaemonSet (see docs/deployment.md).
#
# Build:  docker build -t hostdev:0.1.0 .
#
# Stage 1 builds a wheel from the repository so that the runtime image carries no source tree,
# no build tools and no pip cache.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: the runtime.
#   pciutils  lspci, for people debugging inside the pod (`kubectl exec ... lspci -nnk`)
#   pci.ids   /usr/share/misc/pci.ids: vendor and device names for `hostdev list` and resource names
#   kmod      modprobe, used to load vfio-pci when a resource binds devices (privileged variant)
FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends pciutils pci.ids kmod \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="hostdev" \
      org.opencontainers.image.description="Host PCI devices (GPUs, SR-IOV VFs, mdevs) for KubeVirt VMs and containers through VFIO" \
      org.opencontainers.image.licenses="Apache-2.0"
# The daemon runs as root (UID 0) on purpose: the kubelet's device-plugins and pod-resources
# directories and the sysfs files it reads are owned by root. In the discovery-only DaemonSet
# it holds no capabilities at all (root without capabilities can only use what root owns);
# binding, SR-IOV and mdev need sysfs writes and modprobe, so that variant is privileged.
USER 0:0
ENTRYPOINT ["hostdev"]
CMD ["serve"]

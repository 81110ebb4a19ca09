"""Rendering host configuration: modprobe/modules-load files and OpenShift MachineConfigs."""

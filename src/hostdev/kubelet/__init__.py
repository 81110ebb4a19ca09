"""The kubelet device plugin API: generated protocol code, constants, the plugin side, a simulator.

gRPC's C core logs routine connection events (a peer's GOAWAY on shutdown) at INFO on stderr;
unless the user chose a verbosity, keep it to errors so command output stays readable.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

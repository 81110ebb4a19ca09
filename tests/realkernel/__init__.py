"""Tests that run inside the real-kernel QEMU guest (make test-realkernel)."""

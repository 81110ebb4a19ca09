"""The host: the only hardware seam (fs), the read-only model, the scanner and pci.ids names."""

"""Test support that ships with hostdev: fake hosts, the fake kernel, example hosts."""

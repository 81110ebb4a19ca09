"""The `hostdev` command line: one module per command group, output formats in output.py."""

"""The long-running side of hostdev: the node daemon behind `hostdev serve`."""

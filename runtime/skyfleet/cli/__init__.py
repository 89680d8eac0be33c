"""`skyfleet ...` commands: argument parsing and printing only; the work is done by the
runtime packages they call."""

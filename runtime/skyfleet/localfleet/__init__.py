"""Agents as real processes on this machine: the `local` environment, the real-process
tests and the benchmarks all start fleets through here."""

"""Domain logic as pure functions: no Beam, no I/O. Usable in the pipeline and outside it."""

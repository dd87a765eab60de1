"""Sample sources behind one interface (see :mod:`.base`)."""

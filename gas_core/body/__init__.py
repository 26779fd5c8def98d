"""Body models: SMPL through ``smplx`` and the open, Anny-derived body model in SMPL's format."""

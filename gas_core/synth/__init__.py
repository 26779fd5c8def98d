"""Synthetic humans made with Anny's full model, for tests, demos and fitting evaluation."""

"""Compute core: numpy, scipy, scikit-image and torch only (never napari or Qt)."""

"""napari dock widgets. Imported by napari through napari.yaml, never by the core."""
